#!/usr/bin/env bash
# Four plugins in one `wasmprobe agent` against the same four as four separate `wasmprobe run`s
# (and one `run` alone, the yardstick), side by side on the same syscall storm (storm.c:
# THREADS threads x N getppid). The four: syscount twice (different args), bench-count twice
# (with and without its work), all on raw_syscalls:sys_enter: the agent arms it once and
# shares it, the runs arm it once each. Printed per run: the tools' CPU (user+sys of our
# processes only, /usr/bin/time), the storm's own CPU (the kernel writes each event once per
# instance that enabled it), per storm event, and the events lost or dropped.
#   THREADS=2 N=1000000 RUNS=3 tests/bench/agent-storm.sh     (BUILD=0: use target/release as it is)
set -euo pipefail
cd "$(dirname "$0")/../.."
THREADS=${THREADS:-2} N=${N:-1000000} RUNS=${RUNS:-3} PORT=${PORT:-19479}
out=target/bench-agent; mkdir -p "$out"
gcc -O2 -pthread -o "$out/storm" tests/bench/storm.c
[ "${BUILD:-1}" = 0 ] || cargo build --release -q -p wasmprobe
W=$PWD/target/release/wasmprobe
COUNT=$(ls target/guests/wasm32-wasip2/release/bench_count.wasm)
cat > "$out/agent.toml" <<TOML
metrics_listen = "127.0.0.1:$PORT"
queue_batches = 256
[[plugin]]
name = "sc1"
source = "syscount"
[[plugin]]
name = "sc2"
source = "syscount"
args = { top = "3" }
[[plugin]]
name = "cnt1"
source = "$PWD/$COUNT"
[[plugin]]
name = "cnt2"
source = "$PWD/$COUNT"
args = { work = "none" }
TOML
EVENTS=$((THREADS * N))
echo "storm: $THREADS threads x $N getppid = $EVENTS sys_enter events; $(nproc) CPUs"
printf '%-8s %4s %10s %10s %10s %12s %14s\n' mode run tool_cpu_s storm_cpu_s ns/ev_tool ns/ev_storm lost+dropped

storm() { # runs the storm under /usr/bin/time, prints its user+sys
  /usr/bin/time -f '%U %S' -o "$out/storm.time" "$out/storm" "$THREADS" "$N"
  awk '{print $1+$2}' "$out/storm.time" | tail -1
}
child_of() { pgrep -P "$1" | head -1; }
cpu_of() { awk '{s+=$1+$2} END{printf "%.3f", s}' "$@"; }
line() { # mode run tool_cpu storm_cpu lost
  printf '%-8s %4s %10s %10s %10.0f %12.0f %14s\n' "$1" "$2" "$3" "$4" \
    "$(awk -v c="$3" -v e="$EVENTS" 'BEGIN{print c*1e9/e}')" "$(awk -v c="$4" -v e="$EVENTS" 'BEGIN{print c*1e9/e}')" "$5"
}

for run in $(seq "$RUNS"); do
  # --- one agent, four plugins ---
  /usr/bin/time -f '%U %S' -o "$out/agent.time" "$W" agent --config "$out/agent.toml" >/dev/null 2>"$out/agent.err" &
  t=$!
  until curl -sf "localhost:$PORT/readyz" >/dev/null; do sleep 0.1; done
  ag=$(child_of $t)
  sc=$(storm); sleep 1
  curl -s "localhost:$PORT/metrics" > "$out/agent.metrics"
  kill -INT "$ag"; wait "$t" || true
  lost=$(awk '/^wasmprobe_(events_lost|plugin_events_dropped)_total/{s+=$2} END{print s+0}' "$out/agent.metrics")
  line agent "$run" "$(cpu_of "$out/agent.time")" "$sc" "$lost"

  # --- four separate runs ---
  pids=()
  i=0
  for p in "syscount" "syscount --arg top=3" "$COUNT" "$COUNT --arg work=none"; do
    # shellcheck disable=SC2086
    /usr/bin/time -f '%U %S' -o "$out/run$i.time" "$W" run $p >/dev/null 2>"$out/run$i.err" &
    pids+=($!); i=$((i + 1))
  done
  sleep 2
  sc=$(storm); sleep 1
  for t in "${pids[@]}"; do kill -INT "$(child_of "$t")"; done
  for t in "${pids[@]}"; do wait "$t" || true; done
  lost=$(cat "$out"/run?.err | sed -n 's/^wasmprobe: [0-9]* events delivered, \([0-9]*\) lost$/\1/p' | awk '{s+=$1} END{print s+0}')
  line 4runs "$run" "$(cpu_of "$out"/run0.time "$out"/run1.time "$out"/run2.time "$out"/run3.time)" "$sc" "$lost"

  # --- one run, one plugin: the yardstick ---
  /usr/bin/time -f '%U %S' -o "$out/one.time" "$W" run syscount >/dev/null 2>"$out/one.err" &
  t=$!; sleep 1.5
  sc=$(storm); sleep 1
  kill -INT "$(child_of $t)"; wait "$t" || true
  lost=$(sed -n 's/^wasmprobe: [0-9]* events delivered, \([0-9]*\) lost$/\1/p' "$out/one.err" | awk '{s+=$1} END{print s+0}')
  line 1run "$run" "$(cpu_of "$out/one.time")" "$sc" "$lost"
done
