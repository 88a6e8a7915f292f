#!/usr/bin/env bash
# The cost of kernel stacks under a syscall storm: the same plugin run (guest-examples/stackdump
# on raw_syscalls:sys_enter, following the storm), without stacks and with the kernel stack of
# every event (the stacktrace trigger), alternating run by run. Printed per run: events
# delivered, events lost, stacks attached, the storm's own CPU time per syscall (the stack is
# taken in the traced task, in the kernel) and wasmprobe's CPU time per event (reading, matching
# each stack to its event, delivering the frames to the plugin); then the medians.
#   THREADS=2 N=300000 RUNS=5 tests/bench/stack-storm.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
THREADS=${THREADS:-2} N=${N:-300000} RUNS=${RUNS:-5}
out=target/bench-stack-storm; mkdir -p "$out"
gcc -O2 -pthread -o "$out/storm" tests/bench/storm.c
cargo build --release -q -p wasmprobe
plugin=$(ls -t target/release/build/wasmprobe-*/out/guests/stackdump.wasm | head -1)
echo "storm: $THREADS threads x $N getppid, raw_syscalls:sys_enter followed, plugin stackdump"
printf '%-7s %4s %9s %8s %9s %14s %14s\n' stacks run events lost stacks storm-ns/call wasmprobe-ns/ev
: > "$out/rows"
for run in $(seq "$RUNS"); do
  for stacks in none kernel; do
    /usr/bin/time -f '%U %S' -o "$out/all.time" ./target/release/wasmprobe run "$plugin" \
      --arg kind=tracepoint --arg target=raw_syscalls:sys_enter --arg stacks=$stacks --arg max=0 \
      -- /usr/bin/time -f '%U %S' -o "$out/storm.time" "$out/storm" "$THREADS" "$N" \
      >"$out/out" 2>"$out/err"
    ev=$(sed -n 's/^events=\([0-9]*\) .*/\1/p' "$out/out")
    st=$(sed -n 's/.* with_kstack=\([0-9]*\) .*/\1/p' "$out/out")
    lost=$(sed -n 's/^wasmprobe: [0-9]* events delivered, \([0-9]*\) lost$/\1/p' "$out/err"); lost=${lost:-0}
    read -r au as < "$out/all.time"; read -r su ss < <(tail -1 "$out/storm.time")
    calls=$((THREADS * N))
    sns=$(awk -v u="$su" -v s="$ss" -v n="$calls" 'BEGIN{printf "%.0f", (u+s)*1e9/n}')
    wns=$(awk -v au="$au" -v as="$as" -v su="$su" -v ss="$ss" -v e="$ev" 'BEGIN{printf "%.0f", (au+as-su-ss)*1e9/e}')
    printf '%-7s %4s %9s %8s %9s %14s %14s\n' "$stacks" "$run" "$ev" "$lost" "$st" "$sns" "$wns"
    echo "$stacks $sns $wns $lost" >> "$out/rows"
  done
done
med() { sort -n | awk '{a[NR]=$1} END{print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
for stacks in none kernel; do
  s=$(awk -v k=$stacks '$1==k{print $2}' "$out/rows" | med)
  w=$(awk -v k=$stacks '$1==k{print $3}' "$out/rows" | med)
  echo "median $stacks: storm $s ns/call, wasmprobe $w ns/event"
done
