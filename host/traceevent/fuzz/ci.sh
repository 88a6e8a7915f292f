#!/usr/bin/env bash
# ci.sh: the fuzz steps of tests/run-all.sh (CI), runnable by hand from anywhere.
#
#   host/traceevent/fuzz/ci.sh replay
#       Stable Rust: every saved input (regressions/, and corpus/ and artifacts/ if present)
#       through its target's entry point (tests/replay.rs). About 30 s the first time.
#   host/traceevent/fuzz/ci.sh fuzz [SECONDS] [TRACE.dat ...]
#       Nightly Rust and cargo-fuzz (.ci/setup installs both): each target in turn for SECONDS
#       (default 30) under libFuzzer and AddressSanitizer, starting from regressions/ and from
#       seed.sh's corpus (this kernel's format files, pages and headers of the TRACE.dat files).
#       A target that fails leaves its input in artifacts/TARGET/ and fails the step; the replay
#       then keeps failing on it until it is fixed and the input moved to regressions/.
#
# Both build into <repo>/target/fuzz. Exit status: 0 when every target passed, 1 when one
# failed, 2 on bad usage or a missing tool.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
target_dir=$(cd "$here/../../.." && pwd -P)/target/fuzz
targets=(format subbuf tracedat)
say() { echo "fuzz: $*"; }

case ${1:-} in
replay)
  cargo test --manifest-path "$here/Cargo.toml" --no-default-features --target-dir "$target_dir" -- --nocapture
  ;;
fuzz)
  seconds=${2:-30}
  shift $(( $# >= 2 ? 2 : 1 ))
  if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    say "needs a nightly toolchain and cargo-fuzz (bash .ci/setup installs both)"
    exit 2
  fi
  cd "$here"
  sh ./seed.sh "$@"
  cargo +nightly fuzz build --target-dir "$target_dir"
  rc=0 log=$(mktemp)
  for t in "${targets[@]}"; do
    # corpus/T first: what libFuzzer finds goes there; regressions/T only seeds.
    trc=0
    cargo +nightly fuzz run "$t" --target-dir "$target_dir" "corpus/$t" "regressions/$t" -- \
      -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1 || trc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    if [ "$trc" = 0 ]; then
      say "$t: ${runs:-?} inputs in ${seconds}s, no failure"
    else
      grep -E 'panicked|^SUMMARY|^==[0-9]+==|Test unit written|^ERROR' "$log" | head -n 20 || tail -n 20 "$log"
      say "FAILED: $t (exit $trc; the input is in $here/artifacts/$t/)"
      rc=1
    fi
  done
  rm -f "$log"
  exit "$rc"
  ;;
*)
  sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
  exit 2
  ;;
esac
