#!/bin/sh
# trace-cmd in a private mount namespace where the function-tracer control files this kernel
# refuses even to root are replaced by scratch files (see docs/ARCHITECTURE.md, "Measured"):
# event-only tracing never needs them, and the host sees no change.
exec unshare -m sh -c '
 set -e; D=$(mktemp -d)
 echo 1 > $D/ftrace_enabled; mount --bind $D/ftrace_enabled /proc/sys/kernel/ftrace_enabled
 for f in set_ftrace_filter set_ftrace_notrace set_ftrace_pid set_ftrace_notrace_pid; do
   : > $D/$f; mount --bind $D/$f /sys/kernel/tracing/$f 2>/dev/null || true; done
 exec trace-cmd "$@"' trace-cmd "$@"
