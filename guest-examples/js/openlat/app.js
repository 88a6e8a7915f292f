// openlat in JavaScript: how long open() takes, from entry to return per thread, as a
// power-of-2 histogram in microseconds printed at the end like bpftrace's hist(). The same
// probes, arguments and output as the Rust openlat (guest-examples/openlat).
import { Plan, Plugin, emit, exportPlugin, kernelSupports, print, timeline, wantsRecords } from "wasmprobe";

class OpenLat extends Plugin {
  init(_args) {
    const plan = new Plan();
    if (kernelSupports("kprobe")) {
      this.entries = [plan.kprobe("open", "do_sys_openat2", "file=+0($arg2):ustring")];
      plan.kretprobe("openret", "do_sys_openat2", "ret=%ax");
    } else {
      this.entries = [
        plan.uprobe("open", "libc:open", "file=+0(%di):ustring"),
        plan.uprobe("openat", "libc:openat", "file=+0(%si):ustring"),
      ];
      plan.uretprobe("openret", "libc:open", "ret=$retval:s32");
      plan.uretprobe("openatret", "libc:openat", "ret=$retval:s32");
    }
    // Pairs are matched by pid and timed by timestamp (every record's header): the histogram
    // needs no field, the timeline the file and the result.
    this.drawing = timeline.enabled();
    plan.probes.forEach((_, id) => {
      const entry = this.entries.includes(id);
      plan.fields(id, !this.drawing ? [] : entry ? ["file"] : ["ret"]);
    });
    this.isEntry = plan.probes.map((_, id) => this.entries.includes(id));
    this.started = new Map(); // pid -> [entry ts, file]
    this.hist = []; // hist[0] counts 0, hist[k] counts [2^(k-1), 2^k)
    return plan;
  }

  onEvent(ev) {
    if (this.isEntry[ev.probe]) {
      this.started.set(ev.pid, [ev.tsBig, this.drawing ? ev.str("file") : ""]);
      return;
    }
    const s = this.started.get(ev.pid);
    if (s === undefined) return;
    this.started.delete(ev.pid);
    const end = ev.tsBig;
    const dur = end > s[0] ? end - s[0] : 0n;
    if (this.drawing) timeline.slice(timeline.thread(ev.pid), "open", s[0], dur, { file: s[1], ret: ev.int("ret") });
    const usecs = Number(dur / 1000n);
    const bucket = usecs === 0 ? 0 : 32 - Math.clz32(usecs);
    while (this.hist.length <= bucket) this.hist.push(0);
    this.hist[bucket]++;
  }

  finish() {
    if (wantsRecords()) {
      for (const [, low, high, n] of rows(this.hist)) emit([["hist", "@usecs"], ["low", low], ["high", high], ["count", n]]);
      return;
    }
    print("@usecs:");
    const max = Math.max(0, ...this.hist);
    for (const [k, low, high, n] of rows(this.hist)) {
      const range = k <= 1 ? `[${low}]` : `[${short(low)}, ${short(high)})`;
      const bar = "@".repeat(Math.floor((n * 52) / max));
      print(`${range.padEnd(16)}${String(n).padStart(8)} |${bar.padEnd(52)}|`);
    }
  }
}

/** The rows of the histogram, first to last non-empty bucket: [k, low, high, count]. */
function rows(hist) {
  const first = hist.findIndex((n) => n > 0);
  if (first < 0) return [];
  let last = hist.length - 1;
  while (hist[last] === 0) last--;
  const out = [];
  for (let k = first; k <= last; k++) out.push(k === 0 ? [0, 0, 1, hist[0]] : [k, 2 ** (k - 1), 2 ** k, hist[k]]);
  return out;
}

/** 1024 -> "1K", 1048576 -> "1M", as bpftrace labels buckets. */
function short(v) {
  for (const [shift, unit] of [[30, "G"], [20, "M"], [10, "K"]]) {
    const d = 2 ** shift;
    if (v >= d && v % d === 0) return `${v / d}${unit}`;
  }
  return String(v);
}

export const { init, onBatch, finish } = exportPlugin(OpenLat);
