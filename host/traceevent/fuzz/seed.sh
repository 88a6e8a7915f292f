#!/bin/sh
# Seeds the fuzz corpora from this machine: every event format file of the running kernel
# (format), a few real ring-buffer pages (subbuf: the CPU data of a trace.dat), and small
# trace.dat files (tracedat). Run from host/traceevent/fuzz; needs read access to tracefs.
set -e
T=${TRACEFS:-/sys/kernel/tracing}
mkdir -p corpus/format corpus/subbuf corpus/tracedat
n=0
for f in "$T"/events/*/*/format; do
    n=$((n + 1))
    # Read to the end: one read(2) of a format file may return only its first part.
    cat "$f" > "corpus/format/$n" 2>/dev/null || true
done
cp ../tests/data/sched_switch.format corpus/format/sched_switch
for dat in "$@"; do
    base=$(basename "$dat")
    # Small files go in whole; of big ones the first 64 KiB (headers, formats).
    head -c 65536 "$dat" > "corpus/tracedat/$base"
    # Pages: the tail of the file is CPU data in v6 files; take a few 4 KiB pages
    # (prefixed by the selector byte the target reads first).
    size=$(stat -c %s "$dat")
    for k in 1 2 3 4; do
        off=$(( (size / 4096 - k) * 4096 ))
        [ "$off" -gt 0 ] || continue
        { printf '\000'; tail -c +$((off + 1)) "$dat" | head -c 4096; } > "corpus/subbuf/$base.$k"
    done
done
echo "format: $(ls corpus/format | wc -l) seeds, subbuf: $(ls corpus/subbuf | wc -l), tracedat: $(ls corpus/tracedat | wc -l)"
