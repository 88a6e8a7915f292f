// wasmprobe: write wasmprobe plugins in JavaScript (built into a component by
// componentize-js, see build.mjs). The model is the Rust SDK's (guest-sdk/): a class with
// init(args) -> Plan, onEvent(ev), onLost(n) and finish(); exportPlugin(MyPlugin) gives the
// component's three exports:
//
//   import { Plugin, Plan, exportPlugin, print } from "wasmprobe";
//   class ExecOpen extends Plugin {
//     init(args) {
//       const plan = new Plan();
//       this.open = plan.kprobe("open", "do_sys_openat2", "file=+0($arg2):ustring");
//       plan.fields(this.open, ["file"]);
//       return plan;
//     }
//     onEvent(ev) { print(`${ev.pid}-${ev.comm}: open file='${ev.str("file")}'`); }
//   }
//   export const { init, onBatch, finish } = exportPlugin(ExecOpen);
//
// What the SDK takes care of (the traps of componentize-js):
// - each batch's ArrayBuffer is detached (transfer(0)) when onBatch returns, so batches do
//   not pile up on the heap until a GC (an empty plugin used to run out of 64 MiB);
// - an exception (an Error or anything else) becomes the plugin's error message: its
//   text and where it was thrown (componentize-js wants a string, not an Error);
// - 64-bit values: the WIT's u64/s64 are BigInt; events give Numbers (ev.ts, ev.int) and
//   BigInts where exactness matters (ev.tsBig, ev.bigint); emit takes either.
//
// The `@0.1.x` of the imports below is set to the WIT's version by build.mjs.

import * as output from "wasmprobe:plugin/output@0.1.1";
import * as kernel from "wasmprobe:plugin/kernel@0.1.1";
import * as run from "wasmprobe:plugin/run@0.1.1";
import * as tl from "wasmprobe:plugin/timeline@0.1.1";

export const HEADER_LEN = 24;
const TWO32 = 4294967296;

/** An error the plugin reports on purpose: its message alone stops the run. */
export class PluginError extends Error {}

// --- output and the host --------------------------------------------------------------

/** Prints one line of the plugin's output (the host adds the newline). */
export function print(line = "") {
  output.print(String(line));
}

function value(v) {
  switch (typeof v) {
    case "boolean":
      return { tag: "boolean", val: v };
    case "bigint":
      return v >= 0n && v > 0x7fffffffffffffffn ? { tag: "u64", val: v } : { tag: "s64", val: v };
    case "number":
      if (Number.isInteger(v)) return { tag: "s64", val: BigInt(v) };
      return { tag: "f64", val: v };
    default:
      return { tag: "str", val: String(v) };
  }
}

function values(fields) {
  if (!fields) return [];
  const pairs = Array.isArray(fields) ? fields : Object.entries(fields);
  return pairs.map(([k, v]) => [String(k), value(v)]);
}

/** Emits one record, its fields in order: emit({ pid: 1, comm: "cat" }) or [[k, v], ...]. */
export function emit(fields) {
  output.emit(values(fields));
}

/** Logs a message about the plugin itself to stderr: log("warn", "..."). */
export function log(level, message) {
  output.log(level, String(message));
}

let wants;
/** Whether the user asked for records (--json): then emit rather than print. */
export function wantsRecords() {
  if (wants === undefined) wants = output.wantsRecords();
  return wants;
}

/** Whether the kernel can do feature: "kprobe", "uprobe", "eprobe" or "tracepoint". */
export function kernelSupports(feature) {
  return kernel.supports(feature);
}

/** Whether the kernel has function name. */
export function hasSymbol(name) {
  return kernel.hasSymbol(name);
}

/** Events the kernel lost so far in this run (a Number). */
export function lostEvents() {
  return Number(run.lostEvents());
}

/** The command name of pid as the host knows it, or undefined (uncached). */
export function commOf(pid) {
  return kernel.comm(pid) ?? undefined;
}

// --- the timeline -------------------------------------------------------------------

const big = (t) => (typeof t === "bigint" ? t : BigInt(Math.round(t)));
let drawing;

/** Marks on the run's timeline (--perfetto FILE). Times are trace-clock ns (Number or BigInt). */
export const timeline = {
  thread: (pid, name = "") => ({ scope: { tag: "thread", val: pid }, name }),
  process: (pid, name = "") => ({ scope: { tag: "process", val: pid }, name }),
  global: (name = "") => ({ scope: { tag: "global" }, name }),
  enabled() {
    if (drawing === undefined) drawing = tl.enabled();
    return drawing;
  },
  slice: (track, name, ts, dur, args) => tl.slice(track, name, big(ts), big(dur), values(args)),
  begin: (track, name, ts, args) => tl.begin(track, name, big(ts), values(args)),
  end: (track, ts) => tl.end(track, big(ts)),
  instant: (track, name, ts, args) => tl.instant(track, name, big(ts), values(args)),
  counter: (track, ts, v) => tl.counter(track, big(ts), Number(v)),
};

// --- the plan -------------------------------------------------------------------------

/** The --arg key=value pairs, in order; the last value of a key wins. */
export class Args {
  constructor(pairs) {
    this.pairs = pairs;
  }
  get(key, dflt = undefined) {
    for (let i = this.pairs.length - 1; i >= 0; i--) if (this.pairs[i][0] === key) return this.pairs[i][1];
    return dflt;
  }
  int(key, dflt = undefined) {
    const v = this.get(key);
    if (v === undefined) return dflt;
    if (!/^[+-]?\d+$/.test(v)) throw new PluginError(`--arg ${key}=${v}: not an integer`);
    return Number(v);
  }
}

/** The probes a plugin asks for; each method returns the probe's id (its index). */
export class Plan {
  constructor() {
    this.probes = [];
  }
  add(kind, name, target, fetchargs = "") {
    this.probes.push({ kind, name, target, fetchargs, filter: undefined, maxactive: undefined, fields: undefined });
    return this.probes.length - 1;
  }
  kprobe(name, target, fetchargs = "") {
    return this.add("kprobe", name, target, fetchargs);
  }
  kretprobe(name, target, fetchargs = "") {
    return this.add("kretprobe", name, target, fetchargs);
  }
  uprobe(name, target, fetchargs = "") {
    return this.add("uprobe", name, target, fetchargs);
  }
  uretprobe(name, target, fetchargs = "") {
    return this.add("uretprobe", name, target, fetchargs);
  }
  tracepoint(name, target) {
    return this.add("tracepoint", name, target, "");
  }
  eprobe(name, target, fetchargs = "") {
    return this.add("eprobe", name, target, fetchargs);
  }
  filter(probe, expr) {
    this.probes[probe].filter = expr;
    return this;
  }
  maxactive(probe, n) {
    this.probes[probe].maxactive = n;
    return this;
  }
  /** Only these fields of probe's events are delivered; others read as 0 / "". */
  fields(probe, names) {
    this.probes[probe].fields = [...names];
    return this;
  }
}

// --- events ---------------------------------------------------------------------------

const decoder = new TextDecoder("utf-8");
const LOCATED = new Set(["data-loc-string", "data-loc-array", "rel-loc-string", "rel-loc-array"]);
const STRINGS = new Set(["char-array", ...LOCATED]);

function intReader(f) {
  const size = f.kind === "array" ? f.elemSize : f.size;
  const at = f.offset;
  switch (size) {
    case 1:
      return f.signed ? (v, b) => v.getInt8(b + at) : (v, b) => v.getUint8(b + at);
    case 2:
      return f.signed ? (v, b) => v.getInt16(b + at, true) : (v, b) => v.getUint16(b + at, true);
    case 4:
      return f.signed ? (v, b) => v.getInt32(b + at, true) : (v, b) => v.getUint32(b + at, true);
    case 8: // as the Rust SDK's i64: signed; exact up to 2^53
      return (v, b) => v.getInt32(b + at + 4, true) * TWO32 + v.getUint32(b + at, true);
    default:
      return () => 0;
  }
}

class Field {
  constructor(f) {
    this.name = f.name;
    this.offset = f.offset;
    this.size = f.size;
    this.kind = f.kind;
    this.isString = STRINGS.has(f.kind);
    this.int = this.isString ? () => 0 : intReader(f);
  }
  bytes(view, u8, base) {
    const at = base + this.offset;
    if (LOCATED.has(this.kind)) {
      const loc = view.getUint32(at, true);
      let start = base + (loc & 0xffff);
      if (this.kind.startsWith("rel")) start += this.offset + this.size;
      return u8.subarray(start, start + (loc >>> 16));
    }
    return u8.subarray(at, at + this.size);
  }
  str(view, u8, base) {
    if (!this.isString) return String(this.int(view, base));
    const b = this.bytes(view, u8, base);
    const end = b.indexOf(0);
    return decoder.decode(end < 0 ? b : b.subarray(0, end));
  }
}

/** One event. The SDK reuses one Event per probe: keep values, not the event. */
export class Event {
  constructor(id, name, fields, comms) {
    this.probe = id;
    this.probeName = name;
    this.fields = fields;
    this.comms = comms;
    this.pid = 0;
    this.cpu = 0;
    this.ts = 0;
    this.view = null;
    this.u8 = null;
    this.base = 0;
  }
  /** The command name of pid (asked of the host once per pid and batch). */
  get comm() {
    return this.comms(this.pid);
  }
  /** The timestamp as a BigInt (ev.ts is a Number: exact below 2^53 ns, 104 days). */
  get tsBig() {
    return this.view.getBigUint64(this.base - 16, true);
  }
  /** Field name as text (a string up to its NUL, an integer in decimal); "" when absent. */
  str(name) {
    const f = this.fields.get(name);
    return f ? f.str(this.view, this.u8, this.base) : "";
  }
  /** Integer field name as a Number (8-byte fields signed, as the Rust SDK's i64); 0 when absent. */
  int(name) {
    const f = this.fields.get(name);
    return f ? f.int(this.view, this.base) : 0;
  }
  /** Integer field name as an exact signed BigInt; 0n when absent. */
  bigint(name) {
    const f = this.fields.get(name);
    if (!f || f.isString) return 0n;
    return f.size === 8 ? this.view.getBigInt64(this.base + f.offset, true) : BigInt(f.int(this.view, this.base));
  }
  /** The bytes of field name (a view of the batch, valid during the call), or undefined. */
  bytes(name) {
    const f = this.fields.get(name);
    return f ? f.bytes(this.view, this.u8, this.base) : undefined;
  }
}

// --- the plugin and its export --------------------------------------------------------

/** Extend it: init returns a Plan; then onEvent per event; onLost; finish. */
export class Plugin {
  init(_args) {
    throw new PluginError("the plugin has no init");
  }
  onEvent(_ev) {}
  onLost(_count) {}
  finish() {}
}

function message(call, e) {
  if (e instanceof PluginError) return e.message;
  if (e instanceof Error) {
    const where = (e.stack || "").split("\n").find((l) => l.includes("@")) || "";
    if (e.stack) output.log("error", `${call}: ${e.name}: ${e.message}\n${e.stack}`);
    return `${e.name}: ${e.message}${where ? ` (at ${where.trim()})` : ""}`;
  }
  return String(e);
}

/** The component's exports for Plugin class cls: export const { init, onBatch, finish } = exportPlugin(cls). */
export function exportPlugin(cls) {
  let plugin = null;
  let events = [];
  let layouts = false;
  let comms = new Map();
  const comm = (pid) => {
    let c = comms.get(pid);
    if (c === undefined) {
      c = kernel.comm(pid) ?? "<...>";
      comms.set(pid, c);
    }
    return c;
  };
  return {
    init(args) {
      try {
        plugin = new cls();
        const plan = plugin.init(new Args(args));
        if (!(plan instanceof Plan)) throw new PluginError("init did not return a Plan");
        events = plan.probes.map((p, i) => new Event(i, p.name, new Map(), comm));
        return { probes: plan.probes };
      } catch (e) {
        throw message("init", e);
      }
    },
    onBatch(batch, lost) {
      if (!plugin) throw "on-batch called before init";
      try {
        if (!layouts) {
          for (const l of run.layouts()) {
            const ev = events[l.probeIndex];
            if (ev) ev.fields = new Map(l.fields.map((f) => [f.name, new Field(f)]));
          }
          layouts = true;
        }
        comms = new Map();
        if (lost) plugin.onLost(Number(lost));
        const view = new DataView(batch.buffer, batch.byteOffset, batch.byteLength);
        const n = batch.byteLength;
        const nprobes = events.length;
        for (const ev of events) {
          ev.view = view;
          ev.u8 = batch;
        }
        let off = 0;
        if (batch.byteOffset % 4 === 0) {
          // Headers read through typed arrays: far cheaper than DataView calls in the
          // interpreter (records are 8-aligned, so their header words are 4-aligned).
          const words = n >> 2;
          const u32 = new Uint32Array(batch.buffer, batch.byteOffset, words);
          const i32 = new Int32Array(batch.buffer, batch.byteOffset, words);
          while (off + HEADER_LEN <= n) {
            const w = off >> 2;
            const idx = u32[w];
            const end = off + HEADER_LEN + u32[w + 1];
            if (end > n) throw new PluginError(`batch truncated at offset ${off}`);
            if (idx >= nprobes) throw new PluginError(`batch names probe ${idx} but the plan has ${nprobes}`);
            const ev = events[idx];
            ev.ts = u32[w + 3] * TWO32 + u32[w + 2];
            ev.pid = i32[w + 4];
            ev.cpu = u32[w + 5];
            ev.base = off + HEADER_LEN;
            plugin.onEvent(ev);
            off = (end + 7) & ~7;
          }
        }
        while (off + HEADER_LEN <= n) {
          const idx = view.getUint32(off, true);
          const plen = view.getUint32(off + 4, true);
          const end = off + HEADER_LEN + plen;
          if (end > n) throw new PluginError(`batch truncated at offset ${off}`);
          if (idx >= nprobes) throw new PluginError(`batch names probe ${idx} but the plan has ${nprobes}`);
          const ev = events[idx];
          ev.ts = view.getUint32(off + 12, true) * TWO32 + view.getUint32(off + 8, true);
          ev.pid = view.getInt32(off + 16, true);
          ev.cpu = view.getUint32(off + 20, true);
          ev.base = off + HEADER_LEN;
          plugin.onEvent(ev);
          off = (end + 7) & ~7;
        }
        if (off < n) throw new PluginError(`batch truncated at offset ${off}`);
      } catch (e) {
        throw message("on-batch", e);
      } finally {
        for (const ev of events) {
          ev.view = null;
          ev.u8 = null;
        }
        // Free the batch now rather than at the next GC.
        if (typeof batch.buffer.transfer === "function") batch.buffer.transfer(0);
      }
    },
    finish() {
      if (!plugin) throw "finish called before init";
      try {
        plugin.finish();
      } catch (e) {
        throw message("finish", e);
      }
    },
  };
}
