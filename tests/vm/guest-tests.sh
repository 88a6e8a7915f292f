#!/usr/bin/env bash
# guest-tests.sh: the VM tier's payload, run inside the guest (tests/run-all.sh boots it with
# tests/vm/run-in-vm.sh, once per kernel).
#
#   tests/vm/run-in-vm.sh -k 6.1 -- bash tests/vm/guest-tests.sh TEST_BINARY...
#
# Runs each cargo test binary with --include-ignored --test-threads=1 --nocapture (so that
# every SKIP and note line shows), then the leak check of the guest's own tracefs (it is gone
# once the VM powers off). A binary fails when it exits non-zero, when it prints a SKIP line
# (the VM exists so that these tests really run: a skip there would pass without testing
# anything), or when it reports no passed test. A leak fails the tier even when every test
# passed. Exit status: 0 when all of that holds, else 1.
set -uo pipefail

leak_check=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)/leak-check.sh
say() { echo "guest-tests: $*"; }

if [ "${KP_IN_VM:-}" != 1 ]; then
  say "KP_IN_VM is not set: this runs inside tests/vm/run-in-vm.sh"
  exit 2
fi
if [ $# -eq 0 ]; then
  say "no test binaries given"
  exit 2
fi
say "kernel $(uname -r), $(nproc) CPUs"
if [ ! -e /sys/kernel/tracing/trace ]; then
  say "FAILED: no tracefs at /sys/kernel/tracing"
  exit 1
fi

rc=0
log=$(mktemp)
for bin in "$@"; do
  name=$(basename "$bin")
  "$bin" --include-ignored --test-threads=1 --nocapture 2>&1 | tee "$log"
  brc=${PIPESTATUS[0]}
  if [ "$brc" != 0 ]; then
    say "FAILED: $name (exit $brc)"
    rc=1
  elif grep -q '^SKIP ' "$log"; then
    say "FAILED: $name skipped tests in the VM:"
    grep '^SKIP ' "$log" | sed 's/^/  /'
    rc=1
  elif ! grep -Eq '^test result: ok\. [1-9][0-9]* passed' "$log"; then
    say "FAILED: $name passed no test"
    rc=1
  fi
done
rm -f "$log"
bash "$leak_check" || rc=1
exit "$rc"
