#!/bin/sh
# Records the end-to-end input of the plugin_delivery benchmark: raw_syscalls:sys_enter events
# of the syscall load (getpid, openat, read, write, close per iteration), recorded by wasmprobe
# itself following the load command. Needs root.
#
#   host/wasmprobe/benches/record-syscalls.sh OUT.dat [ITERATIONS]
#   cargo bench -p wasmprobe --bench plugin_delivery -- OUT.dat
#
# 600000 iterations (the default) give about 3 million events, 220 MB.
set -eu
out=${1:?usage: record-syscalls.sh OUT.dat [ITERATIONS]}
iters=${2:-600000}
here=$(cd "$(dirname "$0")/../../.." && pwd)
cd "$here"
cargo build --release -q -p traceevent --example syscall_load
cargo build --release -q -p wasmprobe
./target/release/wasmprobe record -e raw_syscalls:sys_enter -o "$out" -- \
  ./target/release/examples/syscall_load "$iters"
