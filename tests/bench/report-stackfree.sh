#!/usr/bin/env bash
# Report speed on a trace WITHOUT stacks, before and after a change to the text layer (issue 15:
# stack records print as trace-cmd does; that must cost nothing on other events). Builds
# traceevent's report (the text layer of `wasmprobe report`, without the rest of wasmprobe) at
# two commits in scratch copies, records a stack-free trace with trace-cmd (sched + syscalls +
# raw_syscalls under storm.c), checks both print the same bytes as `trace-cmd report`, then
# runs them in turn (A B A B ...) and prints the median user+sys CPU seconds of each and the
# median of the pairwise ratios A/B.
#   tests/bench/report-stackfree.sh [BEFORE [AFTER]]    (default: HEAD~1 and HEAD)
#   RUNS=9 CALLS=500000 tests/bench/report-stackfree.sh 42a7ee3 51ea053
set -euo pipefail
cd "$(dirname "$0")/../.."
before=${1:-HEAD~1}; after=${2:-HEAD}
RUNS=${RUNS:-9}; CALLS=${CALLS:-500000}
work=$(mktemp -d /tmp/report-stackfree.XXXXXX)
trap 'rm -rf "$work"' EXIT

build() { # COMMIT DIR: a release build of a report example of traceevent at COMMIT
  mkdir -p "$2"; git archive "$1" | tar -x -C "$2"
  mkdir -p "$2/host/traceevent/examples"
  cat > "$2/host/traceevent/examples/report_bench.rs" <<'EOF'
use std::io::Write;
fn main() {
    let path = std::env::args().nth(1).expect("usage: report_bench FILE");
    let dat = traceevent::TraceDat::open(std::fs::File::open(path).expect("open")).expect("trace.dat");
    let mut report = traceevent::Report::new(&dat).expect("report");
    let mut out = std::io::stdout().lock();
    let mut buf = Vec::with_capacity(1 << 17);
    loop {
        buf.clear();
        report.fill(&mut buf, 1 << 16).expect("read");
        if buf.is_empty() { break; }
        out.write_all(&buf).expect("write");
    }
}
EOF
  (cd "$2" && cargo build --offline --release -q -p traceevent --example report_bench)
  echo "$2/target/release/examples/report_bench"
}
A=$(build "$after" "$work/after"); B=$(build "$before" "$work/before")

gcc -O2 -pthread -o "$work/storm" tests/bench/storm.c
kb=$(cat /sys/kernel/tracing/buffer_size_kb); on=$(cat /sys/kernel/tracing/tracing_on)
tests/bench/trace-cmd-ns.sh record -b 300000 --file-version 6 -e sched -e syscalls -e raw_syscalls \
  -o "$work/t.dat" -- "$work/storm" 2 "$CALLS" > "$work/record.log" 2>&1
echo "$on" > /sys/kernel/tracing/tracing_on; echo "${kb%% *}" > /sys/kernel/tracing/buffer_size_kb

want=$(trace-cmd report -i "$work/t.dat" 2>/dev/null | md5sum)
for bin in "$A" "$B"; do
  [ "$("$bin" "$work/t.dat" | md5sum)" = "$want" ] || { echo "$bin: differs from trace-cmd report" >&2; exit 1; }
done
echo "trace: $(trace-cmd report -i "$work/t.dat" 2>/dev/null | wc -l) lines, identical in A, B and trace-cmd report"

cpu() { /usr/bin/time -f '%U %S' "$1" "$work/t.dat" 2>&1 >/dev/null | awk '{print $1 + $2}'; }
"$A" "$work/t.dat" >/dev/null; "$B" "$work/t.dat" >/dev/null # warm the page cache
: > "$work/times"
for _ in $(seq "$RUNS"); do echo "$(cpu "$A") $(cpu "$B")" >> "$work/times"; done
median() { sort -g | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }
echo "A ($after) median cpu s: $(awk '{print $1}' "$work/times" | median)"
echo "B ($before) median cpu s: $(awk '{print $2}' "$work/times" | median)"
echo "A/B median of pairwise ratios: $(awk '$2 > 0 {print $1 / $2}' "$work/times" | median)"
