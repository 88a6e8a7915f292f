#!/usr/bin/env bash
# Captures the golden fixtures of host/traceevent/tests/golden.rs on this machine: the
# kernel's own `trace` text and trace-cmd's `report` text for real records, with the payloads
# and the format files they need (examples/golden_capture.rs says what is kept).
#
#   host/traceevent/tests/data/golden/capture.sh
#
# Needs root, tracefs and trace-cmd. trace-cmd records through tests/bench/trace-cmd-ns.sh
# (the function-tracer control files this kernel refuses are replaced by scratch files in a
# private mount namespace); tracing_on and buffer_size_kb of the top instance are put back.
# Exit status: 0 when both fixtures were written; otherwise the failing step's.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../../../.." && pwd)
cd "$root"
T=$(awk '$3 == "tracefs" { print $2; exit }' /proc/mounts)
T=${T:-/sys/kernel/tracing}

cargo build -q --release -p traceevent --example golden_capture
capture=$root/target/release/examples/golden_capture
rm -rf "$here/formats" "$here/kernel.txt" "$here/trace-cmd.txt"

"$capture" kernel "$here"

tmp=$(mktemp -d)
kb=$(sed -e 's/.*expanded: //' -e 's/)//' "$T/buffer_size_kb")
on=$(cat "$T/tracing_on")
restore() { echo "$kb" > "$T/buffer_size_kb"; echo "$on" > "$T/tracing_on"; rm -rf "$tmp"; }
trap restore EXIT
workload='for i in 1 2 3; do cat /etc/hostname > /dev/null; ls / > /dev/null; kill -0 $$; sleep 0.01; done'
tests/bench/trace-cmd-ns.sh record --file-version 6 -e sched -e irq -e timer -e workqueue -e signal -e task \
  -e kmem:kmalloc -e kmem:kfree -e syscalls:sys_enter_openat -e syscalls:sys_exit_openat \
  -e syscalls:sys_enter_read -e syscalls:sys_exit_read -e syscalls:sys_enter_close -e syscalls:sys_exit_close \
  -o "$tmp/trace.dat" -- sh -c "$workload" > "$tmp/record.log" 2>&1
trace-cmd report -i "$tmp/trace.dat" > "$tmp/report.txt" 2> /dev/null
"$capture" trace-cmd "$tmp/trace.dat" "$tmp/report.txt" "$here"
