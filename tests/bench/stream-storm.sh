#!/usr/bin/env bash
# Live capture under a syscall storm, ours and the peer's, on the same storm, in one run:
#   wasmprobe stream -e raw_syscalls > /dev/null     vs     trace-cmd record -e raw_syscalls
# Both trace system-wide at the kernel's default per-CPU buffer size while storm.c keeps both
# CPUs busy with getppid; both are stopped with SIGINT a second after the storm. Printed per
# run: events captured, events lost, and each tool's own CPU time (user+sys of the tool's
# processes only, from /usr/bin/time) per captured event.
#   THREADS=2 N=2000000 RUNS=3 tests/bench/stream-storm.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
THREADS=${THREADS:-2} N=${N:-2000000} RUNS=${RUNS:-3}
out=target/bench-storm; mkdir -p "$out"
gcc -O2 -pthread -o "$out/storm" tests/bench/storm.c
cargo build --release -q -p wasmprobe
echo "storm: $THREADS threads x $N getppid (x2 events: sys_enter + sys_exit)"
printf '%-10s %4s %10s %10s %8s %10s\n' tool run events lost lost% ns/event

child_of() { pgrep -P "$1" | head -1; }
for run in $(seq "$RUNS"); do
  # --- wasmprobe ---
  /usr/bin/time -f '%U %S' -o "$out/wp.time" ./target/release/wasmprobe stream -e raw_syscalls \
    >/dev/null 2>"$out/wp.err" &
  t=$!; sleep 1.5; wp=$(child_of $t)
  "$out/storm" "$THREADS" "$N"; sleep 1
  kill -INT "$wp"; wait "$t" || true
  read -r ev lost < <(sed -n 's/^wasmprobe: \([0-9]*\) events, \([0-9]*\) lost$/\1 \2/p' "$out/wp.err")
  read -r u s < <(tail -1 "$out/wp.time")
  printf '%-10s %4s %10s %10s %8s %10s\n' wasmprobe "$run" "$ev" "$lost" \
    "$(awk -v l="$lost" -v e="$ev" 'BEGIN{printf "%.3f", 100*l/(l+e)}')" \
    "$(awk -v u="$u" -v s="$s" -v e="$ev" 'BEGIN{printf "%.0f", (u+s)*1e9/e}')"
  # --- trace-cmd record (to a file, v6, as the peer baseline was taken) ---
  rm -f "$out/tc.dat"
  /usr/bin/time -f '%U %S' -o "$out/tc.time" tests/bench/trace-cmd-ns.sh record --file-version 6 \
    -e raw_syscalls -o "$out/tc.dat" >"$out/tc.out" 2>&1 &
  t=$!; sleep 2; tc=$(pgrep -o -f "^trace-cmd record --file-version 6 -e raw_syscalls")
  "$out/storm" "$THREADS" "$N"; sleep 1
  kill -INT "$tc"; wait "$t" || true
  lost=$(awk '/^overrun:/{s+=$2} END{print s+0}' "$out/tc.out")
  ev=$(trace-cmd report -i "$out/tc.dat" 2>/dev/null | grep -c ' sys_e' || true)
  read -r u s < <(tail -1 "$out/tc.time")
  printf '%-10s %4s %10s %10s %8s %10s\n' trace-cmd "$run" "$ev" "$lost" \
    "$(awk -v l="$lost" -v e="$ev" 'BEGIN{printf "%.3f", 100*l/(l+e)}')" \
    "$(awk -v u="$u" -v s="$s" -v e="$ev" 'BEGIN{printf "%.0f", (u+s)*1e9/e}')"
done
rm -f "$out/tc.dat"
# trace-cmd leaves tracing_on at 0 in the top instance; put it back.
echo 1 > /sys/kernel/tracing/tracing_on
