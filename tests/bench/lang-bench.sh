#!/usr/bin/env bash
# Python and JavaScript plugins against the Rust one, side by side in one run over the same
# recording (issue 16): syscount in each language, `run P --replay big.dat --arg records=1
# --json`, the three alternated in each round (Rust, Python, JS, Rust, ...) so that the load of
# a shared machine falls on all of them alike; medians over the rounds, and the ratio to Rust
# taken round by round.
#
#   tests/bench/lang-bench.sh            # RUNS=5 rounds, warm start over WARM=15 runs, one cold start
#   RUNS=9 COLD=0 tests/bench/lang-bench.sh
#   SKIP_BUILD=1 tests/bench/lang-bench.sh   # reuse the binary and target/bench-lang/syscount-{py,js}.wasm
#   EXTRA="JS before=/tmp/old-js.wasm" tests/bench/lang-bench.sh   # more plugins in each round
#     (NAME=PATH, separated by ';'), e.g. an older build to pair with the current one
#   RUST=target/guests/wasm32-wasip2/release/syscount.wasm tests/bench/lang-bench.sh
#     # the Rust syscount as built now from guest-examples/ (default: the binary's built-in)
#
# Needs root (to record), the release build, componentize-py and guest-sdk-js's npm ci (as the
# tests: .ci/setup installs both). The recording (about 3 M raw_syscalls:sys_enter events,
# host/wasmprobe/benches/record-syscalls.sh) is made once into target/bench-lang/big.dat.
#
# A second recording, two.dat (1.5 M events), has the same load from two processes at once:
# its batches mix two pids, which the uniform-batch fast paths of the SDKs do not get.
#
# Figures, per plugin:
# - ns/event: CPU (user + sys) of the whole `run --replay` process over the events replayed;
# - warm start: wall time of `wasmprobe inspect P` (process start, the compiled component
#   mapped from the cache, instantiated, its init run and the plan printed, exit), with the
#   cache warm; its CPU time beside it;
# - cold start: the same with an empty cache (the compile), once;
# - the component's size and the replay's peak RSS.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
out=$root/target/bench-lang
mkdir -p "$out"
RUNS=${RUNS:-5}
weval=${WASMPROBE_WEVAL:-$HOME/.cache/wasmprobe-toolchains/weval/bin/weval}
WARM=${WARM:-15}
COLD=${COLD:-1}

[ "${SKIP_BUILD:-0}" = 1 ] || cargo build --release -q -p wasmprobe
wp=$root/target/release/wasmprobe
if [ ! -s "$out/big.dat" ]; then
  host/wasmprobe/benches/record-syscalls.sh "$out/big.dat"
fi
# The same load from two processes at once (on two CPUs): batches mix their pids.
if [ ! -s "$out/two.dat" ]; then
  cargo build --release -q -p traceevent --example syscall_load
  load=$root/target/release/examples/syscall_load
  "$wp" record -e raw_syscalls:sys_enter -o "$out/two.dat" -- sh -c "$load 150000 & $load 150000; wait"
fi

if [ "${SKIP_BUILD:-0}" != 1 ]; then  # SKIP_BUILD=1: the binary and the two components as they are
  py=${COMPONENTIZE_PY:-$HOME/.cache/wasmprobe-toolchains/py/bin/componentize-py}
  [ -x "$py" ] || py=$(command -v componentize-py)
  (cd guest-examples/python/syscount &&
    "$py" -d "$root/wit" -w plugin componentize -p "$root/guest-sdk-python" -p . app -o "$out/syscount-py.wasm" >/dev/null)
  node guest-sdk-js/build.mjs guest-examples/js/syscount/app.js -o "$out/syscount-js.wasm" >/dev/null
  # The JS plugin again, compiled ahead of time by weval (build.mjs --weval; see
  # docs/plugins-python-js.md): when weval is installed.
  rm -f "$out/syscount-js-aot.wasm"
  if [ -x "$weval" ]; then
    node guest-sdk-js/build.mjs guest-examples/js/syscount/app.js -o "$out/syscount-js-aot.wasm" --weval "$weval" >/dev/null
  fi
fi

exec python3 - "$wp" "$out" "$RUNS" "$WARM" "$COLD" "${EXTRA:-}" "${RUST:-syscount}" <<'EOF'
import json, os, shutil, statistics, subprocess, sys, tempfile, time

wp, out, runs, warm, cold = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5] == "1"
extra = [tuple(e.split("=", 1)) for e in sys.argv[6].split(";") if e.strip()]
rust = sys.argv[7]
big = os.path.join(out, "big.dat")
plugins = [("Rust", rust), ("Python", os.path.join(out, "syscount-py.wasm")), ("JS", os.path.join(out, "syscount-js.wasm"))]
if os.path.exists(os.path.join(out, "syscount-js-aot.wasm")):
    plugins.append(("JS AOT", os.path.join(out, "syscount-js-aot.wasm")))
plugins += [(n.strip(), p.strip()) for n, p in extra]
cache = tempfile.mkdtemp(prefix="lang-bench-cache-")
env = dict(os.environ, WASMPROBE_CACHE=cache)


def run(args):
    # Popen + wait4 ourselves to get this child's own rusage.
    t = time.perf_counter()
    p = subprocess.Popen([wp, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    so = p.stdout.read()
    se = p.stderr.read()
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        sys.exit(f"lang-bench: wasmprobe {' '.join(args)} failed:\n{se.decode()}")
    return wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss, so.decode()


# Cold start (the compile), then the cache is warm for everything below.
colds = {}
for name, p in plugins:
    if cold:
        shutil.rmtree(cache, ignore_errors=True)
        os.makedirs(cache, mode=0o700)
        colds[name] = run(["inspect", p])
    run(["inspect", p])

# A generous budget per call: on a loaded machine a batch's wall time can pass the default
# 100 ms (the budget costs nothing per event; the bench measures, it does not police).
replay = lambda p, rec: ["run", p, "--replay", rec, "--arg", "records=1", "--json", "--cpu-budget", "5s"]
recordings = [r for r in (big, os.path.join(out, "two.dat")) if os.path.exists(r)]
events, cpu, rss = {}, {}, {}
for rec in recordings:
    # The events of the recording, and the reference output (the Rust one's).
    _, _, _, ref = run(["run", rust, "--replay", rec, "--arg", "records=1", "--arg", "top=100000", "--json"])
    events[rec] = sum(r["count"] for r in map(json.loads, ref.splitlines()) if "syscall" in r)
    _, _, _, ref = run(replay(rust, rec))
    for name, p in plugins:  # one warm-up round, checking the outputs are equal
        _, _, _, o = run(replay(p, rec))
        if o != ref:
            sys.exit(f"lang-bench: {name} syscount's output differs from the Rust one's over {rec}:\n{o}\n---\n{ref}")
    cpu[rec] = {n: [] for n, _ in plugins}
    rss[rec] = {n: [] for n, _ in plugins}
    for r in range(runs):
        for name, p in plugins:
            _, c, m, _ = run(replay(p, rec))
            cpu[rec][name].append(c)
            rss[rec][name].append(m)

wall_w = {n: [] for n, _ in plugins}
cpu_w = {n: [] for n, _ in plugins}
for r in range(warm):
    for name, p in plugins:
        w, c, _, _ = run(["inspect", p])
        wall_w[name].append(w)
        cpu_w[name].append(c)

med = statistics.median
ms = lambda s: f"{s * 1000:.1f} ms"
print(f"lang-bench: {runs} rounds of {', '.join(n for n, _ in plugins)} over each recording; warm start over {warm} rounds")
print(f"load average at the end: {os.getloadavg()[0]:.2f}")
for rec in recordings:
    print()
    print(f"{os.path.basename(rec)}: {events[rec]} events")
    print()
    print("| plugin | component | ns/event (median, min-max) | vs Rust (median of rounds) | warm start wall (CPU), median | cold start wall | peak RSS |")
    print("|---|---|---|---|---|---|---|")
    for name, p in plugins:
        size = os.path.getsize(p) if os.path.exists(p) else None
        size = f"{size / 1e6:.1f} MB" if size else "built in"
        ns = [c / events[rec] * 1e9 for c in cpu[rec][name]]
        ratio = med([a / b for a, b in zip(cpu[rec][name], cpu[rec]["Rust"])])
        c = ms(colds[name][0]) if name in colds else "-"
        print(f"| {name} syscount | {size} | {med(ns):.0f} ({min(ns):.0f}-{max(ns):.0f}) | {ratio:.2f}x | "
              f"{ms(med(wall_w[name]))} ({ms(med(cpu_w[name]))}) | {c} | {med(rss[rec][name]) / 1024:.0f} MB |")
shutil.rmtree(cache, ignore_errors=True)
EOF
