#!/usr/bin/env bash
# run-all.sh: the whole test suite (CI runs it through `bash .ci/run`).
#
#   1. host tier:   cargo test --workspace, on the live kernel of this machine (tracepoints,
#                   uprobes, decoding, sandbox). The kprobe tests are #[ignore]d here: this
#                   kernel has no kprobe_events.
#   2. VM tier:     the kprobe, ring-buffer reader and exec-open-with-kprobes test binaries,
#                   built on the host and run with --include-ignored inside Debian 12's two
#                   kernels, 6.12 and 6.1 (its default), under QEMU (tests/vm/run-in-vm.sh -k),
#                   each followed by a leak check inside the guest (tests/vm/guest-tests.sh).
#   3. leak check:  nothing of ours may be left in the host's tracefs (tests/leak-check.sh).
#                   It runs from an EXIT trap, so it also runs when a step failed or on Ctrl-C.
#
# Every tier runs even if an earlier one failed; the exit status is non-zero if any failed.
# The test binaries must be visible in the guest: keep the cargo target dir inside the
# repository (the default) or anywhere on the root filesystem except /tmp.
# Needs: cargo, jq, and what tests/vm/run-in-vm.sh --setup installs (.ci/setup does both).
set -euo pipefail

# Here every prerequisite exists: a test that would skip for want of one fails instead.
export WASMPROBE_REQUIRE_ALL=1

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$root"

# A one-shot build from a clean clone gains nothing from incremental caches or full debug
# info, and they more than double the target dir (a run once died of a full disk). Line
# tables keep file:line in a failing test's backtrace.
export CARGO_INCREMENTAL=0
export CARGO_PROFILE_DEV_DEBUG=line-tables-only
# Say how much room the build has, and stop with one clear line when it cannot fit.
avail_gib=$(( $(df -Pk . | awk 'NR==2 {print $4}') / 1048576 ))
echo "run-all: ${avail_gib} GiB free on $(df -P . | awk 'NR==2 {print $6}') for the build"
if [ "$avail_gib" -lt 12 ]; then
  echo "run-all: error: only ${avail_gib} GiB free where the target dir goes; the build needs about 12 GiB" >&2
  exit 1
fi
logs=$(mktemp -d)
summary=()          # one line per step
passed=0 failed=0   # test counts, from the "test result:" lines of the test harness
status=0

banner() { printf '\n==== %s ====\n' "$*"; }
# Sum the "test result: ... N passed; M failed; ..." lines of log $1 into $counts and the totals.
count_tests() {
  local p f
  read -r p f < <(awk '/^test result: /{
      for (i = 1; i < NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i }
    } END { print p + 0, f + 0 }' "$1")
  passed=$((passed + p)) failed=$((failed + f))
  counts="$p passed, $f failed"
}
# record NAME RC START [DETAIL]: a summary line; a non-zero RC fails the run.
record() {
  local verdict=ok
  [ "$2" = 0 ] || { verdict="FAILED (exit $2)"; status=1; }
  summary+=("$(printf '%-34s %-17s %5ss  %s' "$1" "$verdict" "$((SECONDS - $3))" "${4:-}")")
}

finish() {
  local rc=$? t=$SECONDS
  trap - EXIT INT TERM
  [ "$rc" = 0 ] || status=1   # interrupted, or a bug in this script
  banner "leak check (host tracefs)"
  local leak=0
  bash tests/leak-check.sh || leak=$?
  record "leak check (host)" "$leak" "$t"
  banner "summary"
  printf '%s\n' "${summary[@]}"
  rm -rf "$logs"
  echo "tests: $passed passed, $failed failed"
  [ "$status" = 0 ] && echo "run-all: all steps passed" || echo "run-all: FAILED"
  exit "$status"
}
trap finish EXIT
trap 'echo "run-all: interrupted" >&2; exit 130' INT TERM

# ---- 1. host tier ------------------------------------------------------------------------
banner "host tier: cargo test --workspace"
t=$SECONDS rc=0
cargo test --workspace --no-fail-fast 2>&1 | tee "$logs/host.log" || rc=$?
count_tests "$logs/host.log"
record "host tests (cargo test)" "$rc" "$t" "$counts"

# The guest SDK is its own crate (built for wasm32-wasip2 in use); its unit tests run natively.
banner "guest SDK: cargo test (guest-sdk)"
t=$SECONDS rc=0
(cd guest-sdk && cargo test --target-dir ../target/guests) 2>&1 | tee "$logs/sdk.log" || rc=$?
count_tests "$logs/sdk.log"
record "guest SDK tests" "$rc" "$t" "$counts"

# Static checks, of every workspace: the host's, the guest SDK, the guest plugins, the fuzz
# targets. Formatting; lints as errors; API docs, where a public item without a doc comment
# is an error in the library crates.
banner "checks: cargo fmt --check"
t=$SECONDS rc=0
{ cargo fmt --all --check && (cd guest-sdk && cargo fmt --check) && (cd guest-examples && cargo fmt --check) \
    && (cd host/traceevent/fuzz && cargo fmt --check); } 2>&1 | tee "$logs/fmt.log" || rc=$?
record "cargo fmt --check" "$rc" "$t" "host, guest SDK, guests, fuzz"

banner "checks: cargo clippy --all-targets -- -D warnings"
t=$SECONDS rc=0
{ cargo clippy --workspace --all-targets -- -D warnings \
    && (cd guest-sdk && cargo clippy --all-targets --target-dir ../target/guests -- -D warnings); } 2>&1 \
  | tee "$logs/clippy.log" || rc=$?
record "cargo clippy -D warnings" "$rc" "$t" "host workspace, guest SDK"

banner "checks: cargo doc, missing docs denied"
t=$SECONDS rc=0
doc_crates=(tracefs traceevent wasmprobe wasmprobe-abi testkit)
RUSTDOCFLAGS="-D missing_docs" cargo doc --no-deps --lib "${doc_crates[@]/#/-p}" 2>&1 | tee "$logs/doc.log" || rc=$?
record "cargo doc -D missing_docs" "$rc" "$t" "${doc_crates[*]}"

# The fuzz targets of host/traceevent/fuzz: every saved input replayed on stable, then each
# target fuzzed for 30 s with nightly and cargo-fuzz (.ci/setup installs both), seeded with
# this kernel's formats and a trace.dat of each version recorded here.
banner "fuzz: saved inputs replayed (stable)"
t=$SECONDS rc=0
bash host/traceevent/fuzz/ci.sh replay 2>&1 | tee "$logs/fuzz-replay.log" || rc=$?
count_tests "$logs/fuzz-replay.log"
record "fuzz corpus replay (stable)" "$rc" "$t" "$counts"

banner "fuzz: each target for 30 s (nightly)"
t=$SECONDS rc=0 seeds=()
for v in 6 7; do
  if target/debug/wasmprobe record -o "$logs/seed-v$v.dat" --file-version "$v" -e sched -e raw_syscalls \
      -- sh -c 'ls / >/dev/null' >/dev/null 2>&1; then
    seeds+=("$logs/seed-v$v.dat")
  fi
done
bash host/traceevent/fuzz/ci.sh fuzz 30 "${seeds[@]}" 2>&1 | tee "$logs/fuzz.log" || rc=$?
record "fuzz 3 targets x 30 s (nightly)" "$rc" "$t" "$(grep -c ', no failure$' "$logs/fuzz.log" || true) of 3 passed"

# ---- 2. VM tier -------------------------------------------------------------------------
# The test binaries that run inside the VM (PACKAGE:TEST): the kprobe tests, the ring-buffer
# readers (6.12 can map the ring buffer, 6.1 cannot; a reader blocked on 6.1 must still stop),
# and exec-open with real kprobes. Each runs in every kernel of vm_kernels; a test that skips
# in the VM fails it (tests/vm/guest-tests.sh). On an idle 2-core machine a kernel takes 35 s
# (6.1) to 70 s (6.12), boot included.
vm_tests=(wasmprobe-tests:kprobe_vm wasmprobe-tests:readers wasmprobe:run_vm)
vm_kernels=(6.12 6.1)
banner "VM tier: build the ${vm_tests[*]} test binaries"
t=$SECONDS rc=0 bins=()
build_args=()
for pt in "${vm_tests[@]}"; do build_args+=(-p "${pt%%:*}" --test "${pt#*:}"); done
# json-render-diagnostics: artifacts as JSON on stdout, compiler errors readable on stderr.
cargo test "${build_args[@]}" --no-run --message-format=json-render-diagnostics > "$logs/build.json" || rc=$?
if [ "$rc" = 0 ]; then
  for pt in "${vm_tests[@]}"; do
    name=${pt#*:}
    bin=$(jq -r --arg n "$name" 'select(.profile.test == true and .target.name == $n) | .executable // empty' \
      "$logs/build.json" | tail -n 1)
    if [ -z "$bin" ] || [ ! -x "$bin" ]; then
      echo "run-all: cargo built no $name test executable" >&2; rc=1
    fi
    case $bin in /tmp/*)
      echo "run-all: $bin is under /tmp, which the VM cannot see; set CARGO_TARGET_DIR elsewhere" >&2; rc=1 ;;
    esac
    bins+=("$bin")
  done
fi
record "VM tier: build" "$rc" "$t" "${vm_tests[*]}"
built=$rc

for kernel in "${vm_kernels[@]}"; do
  banner "VM tier: the tests in Debian's $kernel kernel under QEMU"
  t=$SECONDS rc=0
  if [ "$built" = 0 ]; then
    tests/vm/run-in-vm.sh -k "$kernel" -e RUST_BACKTRACE=1 -e WASMPROBE_REQUIRE_ALL -- \
      bash tests/vm/guest-tests.sh "${bins[@]}" 2>&1 \
      | tee "$logs/vm-$kernel.log" || rc=$?
    count_tests "$logs/vm-$kernel.log"
    record "VM tier $kernel: tests in the VM" "$rc" "$t" "$counts"
  else
    echo "run-all: skipped: the test binaries did not build"
    record "VM tier $kernel: tests in the VM" 1 "$t" "not run: the build failed"
  fi
done
