#!/bin/sh
# Records the benchmark trace: sched + syscalls + raw_syscalls events of the syscall load
# (examples/syscall_load.rs: getpid, openat, read, write, close per iteration), system-wide,
# with trace-cmd, as trace.dat version 6 (raw pages) and a version 7 (zstd) copy.
#
#   host/traceevent/benches/record-big.sh OUT_DIR [ITERATIONS]
#
# 800000 iterations (the default) give about
# 16 million events, 680 MB. Needs root and trace-cmd. trace-cmd runs in a private mount
# namespace with scratch files over the function-tracer control files this kernel refuses
# (docs/ARCHITECTURE.md, "Measured"); buffer_size_kb and tracing_on of the top instance are put back after.
set -eu
out=${1:?usage: record-big.sh OUT_DIR [ITERATIONS]}
iters=${2:-800000}
here=$(cd "$(dirname "$0")/../../.." && pwd)
T=$(awk '$3 == "tracefs" { print $2; exit }' /proc/mounts)
T=${T:-/sys/kernel/tracing}
mkdir -p "$out"
out=$(cd "$out" && pwd)

(cd "$here" && cargo build --release -q -p traceevent --example syscall_load)
load="$here/target/release/examples/syscall_load"

kb=$(sed -e 's/.*expanded: //' -e 's/)//' "$T/buffer_size_kb")
on=$(cat "$T/tracing_on")
restore() { echo "$kb" > "$T/buffer_size_kb"; echo "$on" > "$T/tracing_on"; rm -rf "$out/ns"; }
trap restore EXIT
mkdir -p "$out/ns"

unshare -m sh -c '
  set -e; D=$1; T=$2; shift 2
  if [ -e /proc/sys/kernel/ftrace_enabled ]; then
    echo 1 > "$D/ftrace_enabled"; mount --bind "$D/ftrace_enabled" /proc/sys/kernel/ftrace_enabled
  fi
  for f in set_ftrace_filter set_ftrace_notrace set_ftrace_pid set_ftrace_notrace_pid; do
    if [ -e "$T/$f" ]; then : > "$D/$f"; mount --bind "$D/$f" "$T/$f"; fi
  done
  exec trace-cmd "$@"' record-big "$out/ns" "$T" \
  record -b 400000 --file-version 6 -e sched -e syscalls -e raw_syscalls -o "$out/big.dat" -- "$load" "$iters" 1

trace-cmd convert --file-version 7 -i "$out/big.dat" -o "$out/big-v7.dat" 2>/dev/null
trace-cmd report --stat -i "$out/big.dat" 2>/dev/null | grep -E 'overrun|dropped' | sort | uniq -c || true
ls -l "$out/big.dat" "$out/big-v7.dat"
