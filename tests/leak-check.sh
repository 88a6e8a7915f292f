#!/usr/bin/env bash
# leak-check.sh: report tracing state that wasmprobe left in the kernel; exit 1 if there is any.
#
#   tests/leak-check.sh [TRACEFS_DIR]
#
# Ours is: an instance named wasmprobe*, and a dynamic event (a line of kprobe_events,
# uprobe_events or dynamic_events) whose group starts with "wasmprobe". A test run, even a
# failing one, must leave none of it behind. tests/run-all.sh runs this on the host after the
# whole suite and inside the VM after the kprobe tier (the VM's tracefs dies with the VM).
# Exit status: 0 nothing left (or no tracefs to look at), 1 something left (printed).
set -euo pipefail

tracefs=${1:-}
if [ -z "$tracefs" ]; then
  for d in /sys/kernel/tracing /sys/kernel/debug/tracing; do
    if [ -e "$d/trace" ]; then tracefs=$d; break; fi
  done
fi
if [ -z "$tracefs" ] || [ ! -e "$tracefs/trace" ]; then
  echo "leak-check: tracefs is not mounted, nothing to check"
  exit 0
fi

left=$(
  for d in "$tracefs"/instances/wasmprobe*; do
    [ -d "$d" ] && echo "instance ${d##*/}"
  done
  # A probe line starts with TYPE[MAXACTIVE]:GROUP/EVENT; a kprobe shows up both in
  # kprobe_events and in dynamic_events, hence sort -u.
  for f in kprobe_events uprobe_events dynamic_events; do
    [ -r "$tracefs/$f" ] || continue
    awk '{ spec = $1; sub(/^[^:]*:/, "", spec) } spec ~ /^wasmprobe[^\/]*\// { print "event " $0 }' \
      "$tracefs/$f" 2>/dev/null || true
  done | sort -u
)

if [ -z "$left" ]; then
  echo "leak-check: no wasmprobe instances or probes left in $tracefs"
  exit 0
fi
echo "leak-check: FAILED: wasmprobe tracing state is still in the kernel ($tracefs):"
printf '%s\n' "$left" | sed 's/^/  /'
echo "leak-check: find the code path that leaks it. To remove it by hand: disable the event in every"
echo "leak-check: instance, then echo '-:GROUP/EVENT' >> $tracefs/dynamic_events; rmdir $tracefs/instances/NAME"
exit 1
