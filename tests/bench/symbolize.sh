#!/usr/bin/env bash
# Stack symbolization throughput: ours (symbolize::StackSymbolizer: kallsyms, /proc/PID/maps,
# blazesym, the per-build-id cache) against `perf script` on the same stacks.
#
# A workload (symbolize-work.c, frame pointers, calls into libc and the kernel) is sampled by
# `perf record -g --call-graph fp` while busy, then waits alive. `perf script -F pid,ip,sym,dso`
# gives every sample's stack with perf's names; those addresses (user ones rebased to the
# process's mappings) are the corpus. Each round, alternating:
#   perf-sym  = `perf script -F ip,sym,dso` (read perf.data, symbolize, print), whole process
#   perf-raw  = `perf script -F ip`          (no names printed; perf still resolves every map)
#   ours      = the bench binary as a whole process (read the corpus, one cold and one cached
#               pass), and inside it: cold (a new symbolizer: kallsyms parsed, /proc/PID/maps
#               read, every ELF file opened) and cached, one call per stack part
# Printed: medians over RUNS rounds, stack parts per second, and how many of our names equal
# perf's.
#
#   RUNS=5 SECS=2 tests/bench/symbolize.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${RUNS:-5} SECS=${SECS:-2} FREQ=${FREQ:-4000}
out=$PWD/target/bench-symbolize
mkdir -p "$out"
command -v perf >/dev/null || { echo "perf is not installed (apt-get install linux-perf)"; exit 1; }
gcc -O1 -fno-omit-frame-pointer -g -o "$out/work" tests/bench/symbolize-work.c
cargo bench -q -p wasmprobe --bench symbolize --no-run 2>/dev/null
BENCH=$(ls -t target/release/deps/symbolize-* | grep -v '\.d$' | head -1)

"$out/work" "$SECS" wait &
W=$!
trap 'kill $W 2>/dev/null || true' EXIT
sleep 0.2
perf record -q -g --call-graph fp -F "$FREQ" -e cpu-clock -o "$out/perf.data" -p "$W" -- sleep "$(echo "$SECS - 0.5" | bc)" 2>/dev/null
sleep 0.5 # the workload now waits, alive
perf script -i "$out/perf.data" -F pid,ip,sym,dso 2>/dev/null >"$out/script.txt"
python3 - "$out/script.txt" "/proc/$W/maps" "$W" >"$out/corpus.txt" <<'PY'
import sys
script, maps_path, pid = sys.argv[1], sys.argv[2], sys.argv[3]
maps = []
for l in open(maps_path):
    f = l.split(None, 5)
    if 'x' not in f[1] or len(f) < 6:
        continue
    s, e = (int(x, 16) for x in f[0].split('-'))
    maps.append((f[5].strip(), s, e, int(f[2], 16)))
def rebase(rel, dso):
    for path, s, e, off in maps:
        if path == dso and s <= s + rel - off < e:
            return s + rel - off
    return None
def flush(k, u):
    if k: print('K 0 %s %s' % (','.join('%x' % a for a, _ in k), ','.join(n for _, n in k)))
    if u: print('U %s %s %s' % (pid, ','.join('%x' % a for a, _ in u), ','.join(n for _, n in u)))
k, u = [], []
for line in open(script):
    if not line.startswith('\t'):
        flush(k, u); k, u = [], []
        continue
    f = line.split()
    addr, name, dso = int(f[0], 16), f[1], f[-1].strip('()')
    if addr == 0:
        continue
    if dso == '[kernel.kallsyms]':
        k.append((addr, name))
    elif dso.startswith('/'):
        a = rebase(addr, dso)
        if a is not None:
            u.append((a, name))
flush(k, u)
PY
echo "corpus: $(grep -c . "$out/corpus.txt") stack parts ($(grep -c '^K' "$out/corpus.txt") kernel, $(grep -c '^U' "$out/corpus.txt") user) from $(grep -c '^ *[0-9]' "$out/script.txt") samples"

ms() { local t0 t1; t0=$(date +%s%N); "$@" >/dev/null 2>&1; t1=$(date +%s%N); echo $(((t1 - t0) / 1000)); }
med() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
: >"$out/perf-sym" ; : >"$out/perf-raw" ; : >"$out/ours-cold" ; : >"$out/ours-cached" ; : >"$out/ours-whole"
for r in $(seq "$RUNS"); do
    ms perf script -i "$out/perf.data" -F ip,sym,dso >>"$out/perf-sym"
    ms perf script -i "$out/perf.data" -F ip >>"$out/perf-raw"
    t0=$(date +%s%N)
    SYMBOLIZE_CORPUS="$out/corpus.txt" SYMBOLIZE_ROUNDS=1 "$BENCH" >"$out/ours.txt"
    echo $((($(date +%s%N) - t0) / 1000)) >>"$out/ours-whole"
    sed -n 's/^us: cold=\([0-9]*\) .*/\1/p' "$out/ours.txt" >>"$out/ours-cold"
    sed -n 's/^us: .*cached=\([0-9]*\)/\1/p' "$out/ours.txt" >>"$out/ours-cached"
done
N=$(grep -c . "$out/corpus.txt")
ps=$(med <"$out/perf-sym") pr=$(med <"$out/perf-raw") oc=$(med <"$out/ours-cold") oh=$(med <"$out/ours-cached")
ow=$(med <"$out/ours-whole")
echo "medians of $RUNS rounds (microseconds for the whole corpus; stack parts per second):"
printf '  %-44s %10s us %12s/s\n' "perf script -F ip,sym,dso (whole process)" "$ps" "$((N * 1000000 / ps))"
printf '  %-44s %10s us\n' "perf script -F ip (no names printed)" "$pr"
printf '  %-44s %10s us %12s/s\n' "ours, whole process (cold + cached pass)" "$ow" "$((N * 1000000 / ow))"
printf '  %-44s %10s us %12s/s\n' "ours, cold (new symbolizer, in process)" "$oc" "$((N * 1000000 / (oc > 0 ? oc : 1)))"
printf '  %-44s %10s us %12s/s\n' "ours, cached" "$oh" "$((N * 1000000 / (oh > 0 ? oh : 1)))"
grep '^names' "$out/ours.txt" | sed 's/^/  /'
grep '^first round' "$out/ours.txt" | sed 's/^/  /'
