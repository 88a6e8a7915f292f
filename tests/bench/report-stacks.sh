#!/usr/bin/env bash
# `wasmprobe report` vs `trace-cmd report` on a trace where every event carries its kernel stack
# (`trace-cmd record -T`, sched + syscalls + raw_syscalls under storm.c): checks the two print
# the same bytes, then runs them in turn (A B A B ...) and prints the median user+sys CPU
# seconds of each and the median of the pairwise ratios.
#   RUNS=5 CALLS=50000 tests/bench/report-stacks.sh [WASMPROBE]   (default target/release/wasmprobe)
set -euo pipefail
cd "$(dirname "$0")/../.."
W=${1:-target/release/wasmprobe}
RUNS=${RUNS:-5}; CALLS=${CALLS:-50000}
work=$(mktemp -d /tmp/report-stacks.XXXXXX)
trap 'rm -rf "$work"' EXIT

gcc -O2 -pthread -o "$work/storm" tests/bench/storm.c
kb=$(cat /sys/kernel/tracing/buffer_size_kb); on=$(cat /sys/kernel/tracing/tracing_on)
tests/bench/trace-cmd-ns.sh record -T -b 200000 --file-version 6 -e sched -e syscalls -e raw_syscalls \
  -o "$work/t.dat" -- "$work/storm" 2 "$CALLS" > "$work/record.log" 2>&1
echo "$on" > /sys/kernel/tracing/tracing_on; echo "${kb%% *}" > /sys/kernel/tracing/buffer_size_kb

[ "$("$W" report "$work/t.dat" | md5sum)" = "$(trace-cmd report -i "$work/t.dat" 2>/dev/null | md5sum)" ] \
  || { echo "wasmprobe report differs from trace-cmd report" >&2; exit 1; }
echo "trace: $(trace-cmd report -i "$work/t.dat" 2>/dev/null | wc -l) lines," \
  "$(trace-cmd report -i "$work/t.dat" 2>/dev/null | grep -c '<stack trace >') kernel stacks, identical"

cpu() { /usr/bin/time -f '%U %S' "$@" 2>&1 >/dev/null | tail -1 | awk '{print $1 + $2}'; }
: > "$work/times"
for _ in $(seq "$RUNS"); do
  echo "$(cpu "$W" report "$work/t.dat") $(cpu trace-cmd report -i "$work/t.dat")" >> "$work/times"
done
median() { sort -g | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }
echo "wasmprobe report median cpu s: $(awk '{print $1}' "$work/times" | median)"
echo "trace-cmd report median cpu s: $(awk '{print $2}' "$work/times" | median)"
echo "wasmprobe/trace-cmd median of pairwise ratios: $(awk '$2 > 0 {print $1 / $2}' "$work/times" | median)"
