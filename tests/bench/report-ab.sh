#!/usr/bin/env bash
# Two builds of `wasmprobe report` against each other on the corpus of tests/bench/corpus.sh
# (e.g. a copy of the binary before a change, and after it): for each class and file the two
# run in turn, A B A B ..., RUNS counted runs after a warm-up, output to /dev/null. Printed
# per class and file: each build's median CPU time (user+sys, from wait4's rusage) and the
# median of the pair-by-pair ratios A/B with its min-max. Both must print the same report
# (checked once per file, before timing).
#   tests/bench/report-ab.sh A_BINARY B_BINARY [CORPUS] [CLASS...]
#   RUNS=9 FILES="tc-v6 tc-v7" tests/bench/report-ab.sh /tmp/wp-before target/release/wasmprobe \
#       target/bench-report/corpus power timer workqueue kmem
set -euo pipefail
cd "$(dirname "$0")/../.."
[ $# -ge 2 ] || { sed -n 2,10p "$0"; exit 2; }
A=$1 B=$2; shift 2
CORPUS=${1:-target/bench-corpus}; shift || true
RUNS=${RUNS:-9} FILES=${FILES:-"tc-v6 tc-v7"}
[ -d "$CORPUS" ] || { echo "no corpus at $CORPUS: make it with tests/bench/corpus.sh $CORPUS"; exit 1; }
echo "load: $(cut -d' ' -f1-3 /proc/loadavg); runs: $RUNS paired after 1 warm-up"
exec python3 - "$A" "$B" "$CORPUS" "$RUNS" "$FILES" "$@" <<'EOF'
import os, sys, statistics as st, subprocess
a, b, corpus, runs, files, only = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5].split(), sys.argv[6:]

sys.path.insert(0, "tests/bench")
from cputime import run  # noqa: E402

classes = only or sorted(os.listdir(corpus))
print(f"{'class':<14}{'file':<7}{'A ms':>9}{'B ms':>9}{'A/B':>7}  min-max")
for c in classes:
    for f in files:
        path = os.path.join(corpus, c, f + ".dat")
        if not os.path.exists(path):
            continue
        outs = [subprocess.run([x, "report", path], capture_output=True, check=True).stdout for x in (a, b)]
        if outs[0] != outs[1]:
            sys.exit(f"{path}: the two builds print different reports")
        run([a, "report", path]); run([b, "report", path])
        ta, tb = [], []
        for _ in range(runs):
            ta.append(run([a, "report", path]))
            tb.append(run([b, "report", path]))
        r = sorted(x / y for x, y in zip(ta, tb))
        print(f"{c:<14}{f:<7}{st.median(ta)*1e3:9.2f}{st.median(tb)*1e3:9.2f}{st.median(r):7.3f}  {r[0]:.3f}-{r[-1]:.3f}")
EOF
