#!/usr/bin/env bash
# Records the big trace.dat the replay and report benchmarks read: trace-cmd (the peer) records
# sched + syscalls + raw_syscalls while storm.c makes getppid calls on both CPUs, into
# target/bench-storm/big.dat (version 6; BIG7=1 also writes a zstd v7 copy with trace-cmd
# convert). Each getppid gives four events; the default makes about 6 million.
#   CALLS=750000 tests/bench/record-big.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
CALLS=${CALLS:-750000}
out=target/bench-storm; mkdir -p "$out"
gcc -O2 -pthread -o "$out/storm" tests/bench/storm.c
tests/bench/trace-cmd-ns.sh record -b 300000 --file-version 6 -e sched -e syscalls -e raw_syscalls \
  -o "$out/big.dat" -- "$out/storm" 2 "$CALLS" > "$out/record-big.log" 2>&1
if [ "${BIG7:-0}" = 1 ]; then
  trace-cmd convert --file-version 7 --compression zstd -i "$out/big.dat" -o "$out/big7.dat" >/dev/null 2>&1
fi
# trace-cmd leaves the top instance with tracing off and its big buffer: put both back.
echo 1 > /sys/kernel/tracing/tracing_on
echo 1408 > /sys/kernel/tracing/buffer_size_kb
ls -la "$out"/big*.dat
