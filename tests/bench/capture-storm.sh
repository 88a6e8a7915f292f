#!/usr/bin/env bash
# Live capture under a syscall storm, ours and the peer's, paired: in each run, on the same
# storm (storm.c: THREADS threads x N getppid, both CPUs busy), at the kernel's default buffer
# size, system-wide, in turn (the order rotates from run to run):
#   tc      trace-cmd record --file-version 6 -e raw_syscalls -o F          (the peer)
#   record  wasmprobe record --file-version 6 -e raw_syscalls -o F          (same work: raw pages)
#   stream  wasmprobe stream -e raw_syscalls > /dev/null                    (also formats text)
#   syscnt  wasmprobe run syscount (its tables)      (built-in plugin, raw_syscalls:sys_enter only)
# Each tool is stopped with SIGINT a second after the storm. Printed per run and tool: events
# captured, events lost, and the tool's own CPU time (user+sys of its process tree, from
# /usr/bin/time) per captured event; then per tool the medians and the ratio to trace-cmd
# record (of the medians, and the median of the per-run ratios).
#   THREADS=2 N=2000000 RUNS=5 tests/bench/capture-storm.sh   (BUILD=0: use target/release as is;
#   TOOLS="tc record": a subset, tc always included; W=PATH: that wasmprobe binary; CHECK=1:
#   trace-cmd report counts what wasmprobe record wrote, not wasmprobe report)
set -euo pipefail
cd "$(dirname "$0")/../.."
THREADS=${THREADS:-2} N=${N:-2000000} RUNS=${RUNS:-5}
TOOLS=${TOOLS:-tc record stream syscnt}
case " $TOOLS " in *" tc "*) ;; *) TOOLS="tc $TOOLS" ;; esac
out=target/bench-capture; mkdir -p "$out"
gcc -O2 -pthread -o "$out/storm" tests/bench/storm.c
[ "${BUILD:-1}" = 0 ] || cargo build --release -q -p wasmprobe
W=${W:-$PWD/target/release/wasmprobe}
T=/sys/kernel/tracing
echo "storm: $THREADS threads x $N getppid; $(nproc) CPUs; buffer_size_kb $(cat $T/buffer_size_kb); $(uptime)"
printf '%-7s %4s %10s %8s %9s %9s %9s\n' tool run events lost ns/event usr_ns sys_ns
: > "$out/rows"

child_of() { pgrep -P "$1" | head -1; }
# Waits (up to 10 s) until raw_syscalls:sys_enter is enabled in the top instance ($1 = top) or
# in the instance of wasmprobe process $1.
wait_armed() {
  for _ in $(seq 100); do
    if [ "$1" = top ]; then
      [ "$(cat $T/events/raw_syscalls/sys_enter/enable)" = 1 ] && [ "$(cat $T/tracing_on)" = 1 ] && return
    else
      for f in $T/instances/wasmprobe-"$1"-*/events/raw_syscalls/sys_enter/enable; do
        [ -e "$f" ] && [ "$(cat "$f")" = 1 ] && return
      done
    fi
    sleep 0.1
  done
  echo "capture-storm: $2 did not start tracing" >&2; exit 1
}

one() { # tool run
  local tool=$1 run=$2 ev lost u s t pid
  rm -f "$out/f.dat"
  case $tool in
    tc)
      /usr/bin/time -f '%U %S' -o "$out/time" tests/bench/trace-cmd-ns.sh record --file-version 6 \
        -e raw_syscalls -o "$out/f.dat" >"$out/err" 2>&1 &
      t=$!; wait_armed top trace-cmd; sleep 0.5
      pid=$(pgrep -o -f "^trace-cmd record --file-version 6 -e raw_syscalls") ;;
    record)
      /usr/bin/time -f '%U %S' -o "$out/time" "$W" record --file-version 6 -e raw_syscalls -o "$out/f.dat" \
        >/dev/null 2>"$out/err" &
      t=$!; sleep 0.2; pid=$(child_of $t); wait_armed "$pid" record; sleep 0.5 ;;
    stream)
      /usr/bin/time -f '%U %S' -o "$out/time" "$W" stream -e raw_syscalls >/dev/null 2>"$out/err" &
      t=$!; sleep 0.2; pid=$(child_of $t); wait_armed "$pid" stream; sleep 0.5 ;;
    syscnt)
      /usr/bin/time -f '%U %S' -o "$out/time" "$W" run syscount --arg top=1000000 >"$out/sc.out" 2>"$out/err" &
      t=$!; sleep 0.2; pid=$(child_of $t); wait_armed "$pid" syscount; sleep 0.5 ;;
  esac
  "$out/storm" "$THREADS" "$N"; sleep 1
  kill -INT "$pid"; wait "$t" || true
  case $tool in
    tc)
      lost=$(awk '/^overrun:/{s+=$2} END{print s+0}' "$out/err")
      ev=$("$W" report "$out/f.dat" 2>/dev/null | grep -c ' sys_e' || true) ;;
    record)
      read -r ev lost < <(sed -n 's/^wasmprobe: recorded \([0-9]*\) events to .* (\([0-9]*\) lost)$/\1 \2/p' "$out/err")
      # The file must hold what was counted (CHECK=1: as trace-cmd reads it; slower).
      local inf rep=("$W" report "$out/f.dat")
      [ "${CHECK:-0}" = 1 ] && rep=(trace-cmd report -i "$out/f.dat")
      inf=$("${rep[@]}" 2>/dev/null | grep -c ' sys_e' || true)
      [ "$inf" = "$ev" ] || echo "capture-storm: record counted $ev events, its file holds $inf" >&2 ;;
    stream)
      read -r ev lost < <(sed -n 's/^wasmprobe: \([0-9]*\) events, \([0-9]*\) lost$/\1 \2/p' "$out/err") ;;
    syscnt)
      # Events: the sum of the per-syscall table; lost: its last line, if any.
      ev=$(awk '/^Top .* syscalls/{on=1; next} on && /^ *SYSCALL/{next} on && NF==0{exit} on{s+=$2} END{print s+0}' "$out/sc.out")
      lost=$(sed -n 's/^The kernel lost \([0-9]*\) events.*/\1/p' "$out/sc.out"); lost=${lost:-0} ;;
  esac
  if [ -z "${ev:-}" ] || [ "$ev" = 0 ]; then
    # trace-cmd now and then writes a file it cannot read back (saved_cmdlines changing size
    # while it copies it): the run is left out of the medians, and said so.
    echo "capture-storm: $tool run $run counted no events (left out):" >&2; tail -3 "$out/err" >&2; return
  fi
  read -r u s < <(tail -1 "$out/time")
  local row
  row=$(awk -v t="$tool" -v r="$run" -v e="$ev" -v l="$lost" -v u="$u" -v s="$s" \
    'BEGIN{printf "%-7s %4s %10d %8d %9.1f %9.1f %9.1f", t, r, e, l, (u+s)*1e9/e, u*1e9/e, s*1e9/e}')
  echo "$row"; echo "$row" >> "$out/rows"
}

read -ra tools <<< "$TOOLS"
for run in $(seq "$RUNS"); do
  k=${#tools[@]}
  for i in $(seq 0 $((k - 1))); do one "${tools[$(((i + run - 1) % k))]}" "$run"; done
  # trace-cmd leaves tracing_on at 0 in the top instance; put it back.
  echo 1 > $T/tracing_on
done
rm -f "$out/f.dat"

echo
echo "medians over $RUNS runs (ns/event = user+sys CPU of the tool per captured event)"
printf '%-7s %9s %9s %9s %10s %12s %12s\n' tool ns/event usr_ns sys_ns lost_max ratio_med per-run_ratio
awk '
  function med(a, n,   i, j, x) { for (i = 2; i <= n; i++) { x = a[i]; for (j = i - 1; j >= 1 && a[j] > x; j--) a[j+1] = a[j]; a[j+1] = x }
    return n % 2 ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2 }
  { t = $1; r = $2; n[t]++; ns[t, n[t]] = $5; us[t, n[t]] = $6; sy[t, n[t]] = $7; per[t, r] = $5
    if ($4 > lm[t]) lm[t] = $4; if (!(t in seen)) { seen[t] = 1; order[++k] = t } ; runs[r] = 1 }
  END {
    for (i = 1; i <= n["tc"]; i++) x[i] = ns["tc", i]; tcm = med(x, n["tc"])
    for (o = 1; o <= k; o++) { t = order[o]; m = n[t]
      for (i = 1; i <= m; i++) { a[i] = ns[t, i]; b[i] = us[t, i]; c[i] = sy[t, i] }
      q = 0; for (r in runs) if ((t, r) in per && ("tc", r) in per) q_[++q] = per[t, r] / per["tc", r]
      printf "%-7s %9.1f %9.1f %9.1f %10d %12.2f %12.2f\n", t, med(a, m), med(b, m), med(c, m), lm[t] + 0, med(a, m) / tcm, med(q_, q)
      delete a; delete b; delete c; delete q_ } }' "$out/rows"
