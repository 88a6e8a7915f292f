#!/usr/bin/env bash
# `wasmprobe report` against `trace-cmd report` on the corpus of tests/bench/corpus.sh, one
# class after another, in one run: for each class and file (trace-cmd's own recordings, v6
# and v7/zstd) the two reports run in turn, A B A B ..., RUNS counted runs after a warm-up,
# output to /dev/null. Printed per class and file: events, each tool's median CPU time
# (user+sys, from wait4's rusage: microseconds, where /usr/bin/time shows centiseconds),
# events per CPU-second, the median of the pair-by-pair ratios (trace-cmd CPU / ours) with
# its min-max, and each tool's peak memory (/usr/bin/time -f %M, one more run each).
#   tests/bench/report-classes.sh [CORPUS] [CLASS...]
#   RUNS=5 FILES="tc-v6 tc-v7" tests/bench/report-classes.sh target/bench-corpus
# FILES may also name wp-v6 and wp-v7 (wasmprobe's own recordings). WP=PATH benchmarks that
# wasmprobe binary instead of building target/release/wasmprobe (e.g. a copy of an older build).
set -euo pipefail
cd "$(dirname "$0")/../.."
CORPUS=${1:-target/bench-corpus}; shift || true
RUNS=${RUNS:-5} FILES=${FILES:-"tc-v6 tc-v7"}
[ -d "$CORPUS" ] || { echo "no corpus at $CORPUS: make it with tests/bench/corpus.sh $CORPUS"; exit 1; }
[ -n "${WP:-}" ] || cargo build --release -q -p wasmprobe
export WP=${WP:-target/release/wasmprobe}
echo "load: $(cut -d' ' -f1-3 /proc/loadavg); runs: $RUNS paired after 1 warm-up"
exec python3 - "$CORPUS" "$RUNS" "$FILES" "$@" <<'EOF'
import os, re, sys, statistics as st, subprocess
corpus, runs, files, only = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(), sys.argv[4:]
WP = os.path.abspath(os.environ["WP"])

sys.path.insert(0, "tests/bench")
from cputime import run  # noqa: E402

def peak_kib(argv):
    """Peak memory of one run, as /usr/bin/time -f %M prints it (KiB)."""
    r = subprocess.run(["/usr/bin/time", "-f", "%M"] + argv, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, check=True)
    return int(r.stderr.decode().strip().splitlines()[-1])

def events(dat):
    out = subprocess.run([WP, "report", dat], capture_output=True, check=True).stdout
    return len(re.findall(rb"(?m)\[\d+\] +\d+\.\d+: ", out))

print(f"{'class':<12} {'file':<6} {'events':>9} {'wp cpu s':>9} {'tc cpu s':>9} "
      f"{'wp ev/cpu-s':>12} {'tc ev/cpu-s':>12} {'ratio':>6} {'(min-max)':>12} {'wp MiB':>7} {'tc MiB':>7}")
classes = sorted(os.listdir(corpus)) if not only else only
for c in classes:
    for f in files:
        dat = os.path.join(corpus, c, f + ".dat")
        if not os.path.exists(dat):
            continue
        ev = events(dat)
        a_cmd, b_cmd = [WP, "report", dat], ["trace-cmd", "report", "-i", dat]
        run(a_cmd); run(b_cmd)
        a, b = [], []
        for _ in range(runs):
            a.append(run(a_cmd)); b.append(run(b_cmd))
        ac, bc = st.median(a), st.median(b)
        ratios = [y / max(x, 1e-6) for x, y in zip(a, b)]
        print(f"{c:<12} {f:<6} {ev:>9} {ac:>9.3f} {bc:>9.3f} {ev / max(ac, 1e-6):>12.0f} "
              f"{ev / max(bc, 1e-6):>12.0f} {st.median(ratios):>6.1f} "
              f"{f'({min(ratios):.1f}-{max(ratios):.1f})':>12} "
              f"{peak_kib(a_cmd) / 1024:>7.1f} {peak_kib(b_cmd) / 1024:>7.1f}", flush=True)
EOF
