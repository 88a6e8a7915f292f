#!/usr/bin/env bash
# Four plugins in one `wasmprobe agent` against the same four as four separate `wasmprobe run`s
# and one `run` of one plugin alone (the yardstick), side by side on the same syscall storm
# (storm.c: THREADS threads x N getppid), paired: each round runs the storm untraced, then under
# each setup, and the ratios are taken round by round; the summary gives their medians.
#
# The four: syscount twice (different args), bench-count twice (with and without its work), all
# on raw_syscalls:sys_enter with the same fields. The agent arms the event once and packs each
# record once for the four (identical declarations); the runs arm it once each.
#
# What is measured (the definition docs/agent.md states):
#   tool    = CPU (user+sys, every thread) of our processes from the storm's start until 1 s
#             after it ended (everything delivered), read from /proc/PID/stat. Start-up
#             (loading and compiling plugins) and `finish` are outside the window: they are
#             paid once, not per event.
#   kernel  = what tracing adds to the traced program: the storm's CPU under the setup minus
#             its CPU untraced in the same round (the kernel writes each event once into every
#             instance that enabled it).
#   total   = tool + kernel, per storm event: the node's CPU per event for tracing.
#   Goal (issue 12): the agent with 4 plugins at most 1.5x one plugin's run, on total.
#   The tool-only ratio is printed as well.
#
# The yardstick is plain `run syscount` (1run). An agent's plugins also keep their metrics
# (syscount counts each call per (pid, syscall) for syscount_syscalls_total), which a plain
# run does not: the row 1run+m is the same run with `--metrics-listen`, the one plugin doing
# what each syscount of the agent does, and the agent's ratio to it is printed too.
#
#   BUILD=0 RUNS=5 tests/bench/agent-storm.sh      (BUILD=0: use target/release as it is;
#                                                   THREADS=2 N=1000000 PORT=19479
#                                                   OUT=target/bench-agent)
set -euo pipefail
cd "$(dirname "$0")/../.."
THREADS=${THREADS:-2} N=${N:-1000000} RUNS=${RUNS:-5} PORT=${PORT:-19479}
out=${OUT:-target/bench-agent}
mkdir -p "$out"
gcc -O2 -pthread -o "$out/storm" tests/bench/storm.c
[ "${BUILD:-1}" = 0 ] || cargo build --release -q -p wasmprobe
W=$PWD/target/release/wasmprobe
COUNT=$(ls target/guests/wasm32-wasip2/release/bench_count.wasm)
cat >"$out/agent.toml" <<TOML
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
# Whatever this script started is stopped when it ends, however it ends.
cleanup() { for p in $(jobs -p); do kill -INT "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
EVENTS=$((THREADS * N))
TCK=$(getconf CLK_TCK)
echo "storm: $THREADS threads x $N getppid = $EVENTS sys_enter events; $(nproc) CPUs; $RUNS paired rounds"
echo "tool = our processes' CPU from the storm's start to 1 s after it; kernel = the storm's CPU"
echo "traced minus untraced; total = tool + kernel; ns per storm event. Goal: agent <= 1.5x 1run (total)."
printf '%-6s %4s %12s %12s %12s %14s\n' mode run ns/ev_tool ns/ev_kernel ns/ev_total lost+dropped

# user+sys seconds of the storm (run under /usr/bin/time)
storm() {
  /usr/bin/time -f '%U %S' -o "$out/storm.time" "$out/storm" "$THREADS" "$N"
  awk '{print $1+$2}' "$out/storm.time" | tail -1
}
# CPU seconds so far of the processes given (every thread, live and ended); one that has
# ended (a plugin that failed ends its run) stops the benchmark
ticks() {
  for p in "$@"; do
    [ -r "/proc/$p/stat" ] || { echo "process $p ended early: see $out/*.err" >&2; exit 1; }
    awk '{print $14+$15}' "/proc/$p/stat"
  done | awk -v t="$TCK" '{s+=$1} END{printf "%.3f", s/t}'
}
# the storm under the running processes $@: sets TOOL (s) and KERN (s)
window() {
  local c0 c1 s
  c0=$(ticks "$@")
  s=$(storm)
  sleep 1
  c1=$(ticks "$@")
  TOOL=$(awk -v a="$c0" -v b="$c1" 'BEGIN{print b-a}')
  KERN=$(awk -v s="$s" -v b="$BASE" 'BEGIN{print s-b}')
}
ns() { awk -v c="$1" -v e="$EVENTS" 'BEGIN{printf "%.0f", c*1e9/e}'; }
declare -A TOT TL
row() { # mode run lost
  local t k
  t=$(ns "$TOOL")
  k=$(ns "$KERN")
  TL[$1,$2]=$t
  TOT[$1,$2]=$((t + k))
  printf '%-6s %4s %12s %12s %12s %14s\n' "$1" "$2" "$t" "$k" "${TOT[$1,$2]}" "$3"
}
delivered_lost() { sed -n 's/^wasmprobe: [0-9]* events delivered, \([0-9]*\) lost$/\1/p' "$@" | awk '{s+=$1} END{print s+0}'; }

for run in $(seq "$RUNS"); do
  BASE=$(storm)
  printf '%-6s %4s %12s (untraced storm: %s ns/event)\n' base "$run" - "$(ns "$BASE")"

  # --- one run, one plugin: the yardstick ---
  "$W" run syscount >/dev/null 2>"$out/one.err" &
  p=$!
  sleep 1.5
  window "$p"
  kill -INT "$p"
  wait "$p" || true
  row 1run "$run" "$(delivered_lost "$out/one.err")"

  # --- the same with its metrics kept and served, as in the agent ---
  "$W" run syscount --metrics-listen "127.0.0.1:$((PORT + 1))" >/dev/null 2>"$out/onem.err" &
  p=$!
  sleep 1.5
  window "$p"
  kill -INT "$p"
  wait "$p" || true
  row 1run+m "$run" "$(delivered_lost "$out/onem.err")"

  # --- one agent, four plugins ---
  "$W" agent --config "$out/agent.toml" >/dev/null 2>"$out/agent.err" &
  p=$!
  until curl -sf "localhost:$PORT/readyz" >/dev/null; do sleep 0.1; done
  sleep 0.5
  window "$p"
  curl -s "localhost:$PORT/metrics" >"$out/agent.metrics"
  kill -INT "$p"
  wait "$p" || true
  row agent "$run" "$(awk '/^wasmprobe_(events_lost|plugin_events_dropped)_total/{s+=$2} END{print s+0}' "$out/agent.metrics")"

  # --- four separate runs ---
  pids=()
  i=0
  for a in "syscount" "syscount --arg top=3" "$COUNT" "$COUNT --arg work=none"; do
    # shellcheck disable=SC2086
    "$W" run $a >/dev/null 2>"$out/run$i.err" &
    pids+=($!)
    i=$((i + 1))
  done
  sleep 2
  window "${pids[@]}"
  for p in "${pids[@]}"; do kill -INT "$p"; done
  for p in "${pids[@]}"; do wait "$p" || true; done
  row 4runs "$run" "$(delivered_lost "$out"/run?.err)"
done

median() { sort -g | awk '{a[NR]=$1} END{if (NR%2) print a[(NR+1)/2]; else printf "%.3f\n", (a[NR/2]+a[NR/2+1])/2}'; }
echo
echo "medians of $RUNS rounds (ratios taken round by round, then their median):"
printf '%-6s %12s %12s %14s %14s\n' mode ns/ev_tool ns/ev_total tool/1run total/1run
for m in 1run 1run+m agent 4runs; do
  tm=$(for r in $(seq "$RUNS"); do echo "${TL[$m,$r]}"; done | median)
  om=$(for r in $(seq "$RUNS"); do echo "${TOT[$m,$r]}"; done | median)
  tr=$(for r in $(seq "$RUNS"); do awk -v a="${TL[$m,$r]}" -v b="${TL[1run,$r]}" 'BEGIN{printf "%.3f\n", a/b}'; done | median)
  orr=$(for r in $(seq "$RUNS"); do awk -v a="${TOT[$m,$r]}" -v b="${TOT[1run,$r]}" 'BEGIN{printf "%.3f\n", a/b}'; done | median)
  printf '%-6s %12s %12s %13.2fx %13.2fx\n' "$m" "$tm" "$om" "$tr" "$orr"
done
# The agent against the one plugin keeping its metrics (1run+m), round by round.
tr=$(for r in $(seq "$RUNS"); do awk -v a="${TL[agent,$r]}" -v b="${TL[1run+m,$r]}" 'BEGIN{printf "%.3f\n", a/b}'; done | median)
orr=$(for r in $(seq "$RUNS"); do awk -v a="${TOT[agent,$r]}" -v b="${TOT[1run+m,$r]}" 'BEGIN{printf "%.3f\n", a/b}'; done | median)
printf 'agent against 1run+m: %.2fx (tool), %.2fx (total)\n' "$tr" "$orr"
