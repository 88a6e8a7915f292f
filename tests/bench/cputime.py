"""What the report benchmarks (report-classes.sh, report-ab.sh) time a command by."""
import os
import subprocess
import sys


def run(argv):
    """CPU seconds (user+sys, from wait4's rusage: microseconds, where /usr/bin/time shows
    centiseconds) of one run of argv, its output thrown away; exits with its stderr if it fails."""
    with open(os.devnull, "wb") as null:
        p = subprocess.Popen(argv, stdout=null, stderr=subprocess.PIPE)
        err = p.stderr.read()
        _, status, ru = os.wait4(p.pid, 0)
    if status != 0:
        sys.exit(f"{argv}: exit status {status}: {err.decode(errors='replace')[:300]}")
    return ru.ru_utime + ru.ru_stime
