#!/bin/sh
# Plugin work on records in memory (keyed count, log2 histogram) and plugin start-up, cold and
# warm: the delivery benchmark, native and Wasm paired in every run, medians.
#
#   tests/bench/plugin-agg.sh [RUNS]        (default 7 runs; `uptime` first: load < 3 is best)
#   BENCH_ONLY=memory tests/bench/plugin-agg.sh 9   (only the table of work on records in memory)
#
# The in-memory table runs the same code on both sides: bench-count's `on_batch` (the Rust SDK's
# columns, `wasmprobe_abi::columns`) compiled to Wasm, and the same calls natively.
# Also times the warm start of the Python and JS plugins the plugin_langs tests built, if
# present (target/tmp/lang-guests/*.wasm).
set -eu
here=$(cd "$(dirname "$0")/../.." && pwd)
cd "$here"
uptime
extra=$(ls target/tmp/lang-guests/*.wasm 2>/dev/null | head -4 | paste -sd, -) || extra=
BENCH_RUNS=${1:-7} BENCH_STARTUP="$extra" cargo bench -q -p wasmprobe --bench plugin_delivery
