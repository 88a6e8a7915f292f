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
// The columnar path (recommended for counters): override onBatch(batch) instead of onEvent and
// count whole columns, one call per batch: batch.count(probe, "id", counter) and
// batch.countPids(probe, counter) into a Counter. SpiderMonkey runs as an interpreter inside
// Wasm (no JIT), so what costs is the number of JS operations per event: these loops are a
// few operations an event, against a method call and a field lookup per event for onEvent.
// When the plan delivers the counted field alone (plan.fields(probe, ["id"])), count sorts
// the batch with the engine's native sort and does about one JS operation an event.
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
import * as mx from "wasmprobe:plugin/metrics@0.1.1";

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
    this.signed = f.signed;
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

// --- the columnar path ----------------------------------------------------------------

const SMALL = 1024;

/** Counts per key: keys 0..1023 in a typed array (no Map per event), others in a Map. */
export class Counter {
  constructor() {
    this.small = new Float64Array(SMALL);
    this.smallUsed = false; // whether small has a count (entries skips it otherwise)
    this.other = new Map();
  }
  /** Adds n (default 1) to key's count. */
  add(key, n = 1) {
    if (Number.isInteger(key) && key >= 0 && key < SMALL) {
      this.small[key] += n;
      this.smallUsed = true;
    } else this.other.set(key, (this.other.get(key) ?? 0) + n);
  }
  /** Forgets every count (to reuse the Counter, e.g. one per batch, without allocating). */
  clear() {
    if (this.smallUsed) this.small.fill(0);
    this.smallUsed = false;
    this.other.clear();
  }
  /** key's count (0 when never added). */
  get(key) {
    if (Number.isInteger(key) && key >= 0 && key < SMALL) return this.small[key];
    return this.other.get(key) ?? 0;
  }
  /** [key, count] of every key counted, small keys first in increasing order. */
  entries() {
    const out = [];
    const small = this.small;
    if (this.smallUsed) for (let k = 0; k < SMALL; k++) if (small[k] > 0) out.push([k, small[k]]);
    for (const e of this.other) out.push(e);
    return out;
  }
  [Symbol.iterator]() {
    return this.entries()[Symbol.iterator]();
  }
}

const scratch = new Int32Array(SMALL); // one batch's counts (int32 adds)
const pidKeys = new Int32Array(1024); // Batch.count's table of pid runs (see there)
const pidCounts = new Int32Array(1024);

// Batch.count's sorted path (see sortedCount): the batch's 8-byte words sorted, the
// (pid, cpu) words of its runs, and a word's bits as a double and as integers.
let sortWords = new BigInt64Array(0);
const runWords = new Float64Array(16);
const runCounts = new Float64Array(16);
const bitsF = new Float64Array(1);
const bitsI = new Int32Array(bitsF.buffer);
const bitsB = new BigInt64Array(bitsF.buffer);

/** The first index in s[lo, hi) whose value is > v (s sorted, no NaN). */
function after(s, lo, hi, v) {
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (s[mid] > v) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/** The first index in s[lo, hi) whose value is >= v (s sorted, no NaN). */
function notBefore(s, lo, hi, v) {
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (s[mid] < v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The end of the run of s[i]'s value in s[i, hi) (s sorted): galloping, then bisection. */
function runEnd(s, i, hi) {
  const v = s[i];
  let step = 1;
  let lo = i + 1;
  while (lo + step < hi && s[lo + step] === v) {
    lo += step;
    step += step;
  }
  return after(s, lo, Math.min(lo + step, hi), v);
}

/**
 * One batch of events, for plugins that override Plugin.onBatch (columnar access). A batch is
 * "uniform" when the plan has one probe and its records have a fixed size (no string or
 * other variable-size field is delivered): then count, countPids, column and pids run a
 * tight loop over the records' words. Otherwise they walk the events. Valid only during the
 * call.
 */
export class Batch {
  constructor(u8, view, i32, u32, events, fixed) {
    this.u8 = u8;
    this.view = view;
    this.i32 = i32;
    this.u32 = u32;
    this.events = events;
    this.uniform = -1; // the probe whose records fill the batch, or -1
    this.stride = 0; // words from one record to the next when uniform
    this.n = 0; // records when uniform
    const n = u8.byteLength;
    if (fixed && u32 && n >= HEADER_LEN) {
      const stride = (HEADER_LEN + u32[1] + 7) & ~7;
      const last = n - stride;
      if (n % stride === 0 && u32[0] < events.length && u32[last >> 2] === u32[0] && u32[(last >> 2) + 1] === u32[1]) {
        this.uniform = u32[0];
        this.stride = stride >> 2;
        this.n = n / stride;
      }
    }
  }
  /** Calls fn(ev) for every event, in order (as onEvent gets them; the Event is reused). */
  forEach(fn) {
    walk(this.u8, this.view, this.u32, this.i32, this.events, fn);
  }
  /** The number of events of probe in the batch. */
  length(probe) {
    if (this.uniform >= 0) return this.uniform === probe ? this.n : 0;
    let k = 0;
    this.forEach((ev) => ev.probe === probe && k++);
    return k;
  }
  /** Word index of field name of probe's records when it is a 4-aligned integer of 4 or 8
   * bytes of a uniform batch of probe, else -1. */
  wordOf(probe, name) {
    if (this.uniform !== probe) return -1;
    const f = this.events[probe].fields.get(name);
    if (!f || f.isString || f.kind === "array" || (f.size !== 4 && f.size !== 8) || f.offset % 4) return -1;
    return (HEADER_LEN + f.offset) >> 2;
  }
  /** Adds the count of each value of field name of probe's events to counter (a Counter,
   * made when omitted) and returns it. Values are Numbers as ev.int gives them. With pids (a
   * second Counter), also counts the events per pid in the same walk: one pass over the
   * batch instead of two (count then countPids). */
  count(probe, name, counter = new Counter(), pids = undefined) {
    if (this.sortedCount(probe, name, counter, pids)) return counter;
    return this.countWalk(probe, name, counter, pids);
  }
  /** count without its sorted path: the records walked (what tests check the sorted path
   * against; count takes it when the sorted path cannot). */
  countWalk(probe, name, counter = new Counter(), pids = undefined) {
    const at = this.wordOf(probe, name);
    if (at < 0) {
      this.forEach((ev) => {
        if (ev.probe !== probe) return;
        counter.add(ev.int(name));
        if (pids) pids.add(ev.pid);
      });
      return counter;
    }
    const f = this.events[probe].fields.get(name);
    const words = f.signed || f.size === 8 ? this.i32 : this.u32;
    const e = this.i32.length;
    const st = this.stride;
    const c = scratch;
    c.fill(0);
    let high = 0;
    // Four records a step, each of the four read through views of the batch that start at
    // its field (F0..F3), the field's high word (H0..H3) and its pid (P0..P3), all indexed by
    // the first record's start r: the interpreter's cost is per operation, and this leaves
    // none but the reads, the count and the compares. Values outside 0..1023 fall outside
    // the typed array and are dropped (a typed array ignores such writes): counted apart below.
    const st2 = st * 2;
    const st3 = st * 3;
    const st4 = st * 4;
    const R = this.n * st; // past the last record's start
    const R4 = R - st3;
    const view = (arr, w) => arr.subarray(Math.min(w, arr.length));
    const F0 = view(words, at);
    const F1 = view(words, at + st);
    const F2 = view(words, at + st2);
    const F3 = view(words, at + st3);
    const size8 = f.size === 8;
    const H0 = view(words, at + 1);
    const H1 = view(words, at + 1 + st);
    const H2 = view(words, at + 1 + st2);
    const H3 = view(words, at + 1 + st3);
    let r = 0;
    if (pids) {
      // With each record's pid compared with the current run's (a run of one pid costs a
      // compare an event). A run that ends is tallied in a small direct-mapped table
      // (pid & 1023; a clash goes to the Counter), so pids that take turns (two processes
      // on two CPUs) cost a few operations a switch, not a Map update.
      const p32 = this.i32;
      const P0 = view(p32, 4);
      const P1 = view(p32, 4 + st);
      const P2 = view(p32, 4 + st2);
      const P3 = view(p32, 4 + st3);
      const tk = pidKeys;
      const tc = pidCounts;
      let pid = p32[4];
      let run = 0;
      let tabled = false;
      for (; r < R4; r += st4) {
        c[F0[r]] += 1;
        c[F1[r]] += 1;
        c[F2[r]] += 1;
        c[F3[r]] += 1;
        if (size8) high |= H0[r] | H1[r] | H2[r] | H3[r];
        if (P0[r] === pid && P1[r] === pid && P2[r] === pid && P3[r] === pid) {
          run += 4;
          continue;
        }
        for (let k = r + 4; k < r + 4 + st4; k += st) {
          const p = p32[k];
          if (p === pid) {
            run += 1;
            continue;
          }
          const h = pid & 1023;
          if (tc[h] === 0) {
            tk[h] = pid;
            tc[h] = run;
            tabled = true;
          } else if (tk[h] === pid) tc[h] += run;
          else pids.add(pid, run);
          pid = p;
          run = 1;
        }
      }
      for (; r < R; r += st) {
        c[F0[r]] += 1;
        if (size8) high |= H0[r];
        const p = P0[r];
        if (p === pid) {
          run += 1;
          continue;
        }
        pids.add(pid, run);
        pid = p;
        run = 1;
      }
      pids.add(pid, run);
      if (tabled) {
        for (let h = 0; h < 1024; h++) {
          if (tc[h] !== 0) {
            pids.add(tk[h], tc[h]);
            tc[h] = 0;
          }
        }
      }
    } else if (size8) {
      // The low word indexes the counts; the high words are or-ed: all zero, or redo exactly.
      for (; r < R4; r += st4) {
        c[F0[r]] += 1;
        c[F1[r]] += 1;
        c[F2[r]] += 1;
        c[F3[r]] += 1;
        high |= H0[r] | H1[r] | H2[r] | H3[r];
      }
      for (; r < R; r += st) {
        c[F0[r]] += 1;
        high |= H0[r];
      }
    } else {
      for (; r < R4; r += st4) {
        c[F0[r]] += 1;
        c[F1[r]] += 1;
        c[F2[r]] += 1;
        c[F3[r]] += 1;
      }
      for (; r < R; r += st) c[F0[r]] += 1;
    }
    if (high !== 0) {
      const read = f.int;
      for (let b = HEADER_LEN; b < this.u8.byteLength; b += st << 2) counter.add(read(this.view, b));
      return counter;
    }
    // Values outside 0..1023 were dropped by the typed array: count those apart.
    const small = counter.small;
    const n = this.n;
    let counted = 0;
    for (let k = 0; k < SMALL && counted < n; k++) {
      const v = c[k];
      if (v !== 0) {
        small[k] += v;
        counted += v;
      }
    }
    if (counted > 0) counter.smallUsed = true;
    if (counted !== n) {
      for (let o = at; o < e; o += st) {
        const v = f.size === 8 ? words[o] >>> 0 : words[o];
        if (!(v >= 0 && v < SMALL)) counter.add(v);
      }
    }
    return counter;
  }
  /**
   * count's fast path, for a uniform batch whose records are 32 bytes and carry field name
   * alone (the header's four 8-byte words: probe and length, ts, pid and cpu, the field, zero
   * padded): the interpreter then does one operation an event, not a dozen. The batch's
   * words are copied and sorted by the engine's native sort; then every distinct value is
   * one run of the sorted words, found by bisection, so the JS work is per distinct value,
   * not per event. The runs of the pid-and-cpu words are found by one pass over them (a
   * compare an event: a process's events come in runs). A value's count in the field is its
   * count among all the words less the headers' (the same probe-and-length word in every
   * record; the pid-and-cpu words of the runs; the timestamps, which lie between the first
   * record's and the last one's, the batch being in timestamp order). When that cannot be
   * told apart exactly (a field value between the batch's first and last timestamps, a word
   * whose bits are a NaN or -0 as a double, too many distinct values), it returns false and
   * count walks the records instead.
   */
  sortedCount(probe, name, counter, pids) {
    if (this.uniform !== probe || this.stride !== 8 || this.u8.byteOffset % 8 !== 0) return false;
    const f = this.events[probe].fields.get(name);
    if (!f || f.isString || f.kind === "array" || f.offset !== 0 || this.u32[1] !== f.size) return false;
    const n = this.n;
    const len = n * 4;
    const w = new Float64Array(this.u8.buffer, this.u8.byteOffset, len);
    // The runs of (pid, cpu) words (word 2 of each record, read as doubles: no BigInt per
    // read), sixteen records a step.
    const rw = runWords;
    const rc = runCounts;
    let nruns = 0;
    let spill = null; // (pid, cpu) words beyond the 16 of rw, when there are that many
    let p = w[2];
    let run = 0;
    let r = 2;
    const at = (k) => w.subarray(Math.min(4 * k, len)); // record k's word 2 at index r
    const [P1, P2, P3, P4, P5, P6, P7, P8] = [at(1), at(2), at(3), at(4), at(5), at(6), at(7), at(8)];
    const [P9, P10, P11, P12, P13, P14, P15] = [at(9), at(10), at(11), at(12), at(13), at(14), at(15)];
    for (const end16 = len - 60; r < end16; r += 64) {
      if (
        w[r] === p &&
        P1[r] === p &&
        P2[r] === p &&
        P3[r] === p &&
        P4[r] === p &&
        P5[r] === p &&
        P6[r] === p &&
        P7[r] === p &&
        P8[r] === p &&
        P9[r] === p &&
        P10[r] === p &&
        P11[r] === p &&
        P12[r] === p &&
        P13[r] === p &&
        P14[r] === p &&
        P15[r] === p
      ) {
        run += 16;
        continue;
      }
      for (let k = r; k < r + 64; k += 4) {
        const q = w[k];
        if (q === p) {
          run += 1;
          continue;
        }
        let j = 0;
        while (j < nruns && rw[j] !== p) j++;
        if (j < nruns) rc[j] += run;
        else if (nruns < 16) {
          rw[nruns] = p;
          rc[nruns++] = run;
        } else {
          spill ??= new Map();
          spill.set(p, (spill.get(p) ?? 0) + run);
        }
        p = q;
        run = 1;
      }
    }
    for (; r < len; r += 4) {
      const q = w[r];
      if (q === p) {
        run += 1;
        continue;
      }
      let j = 0;
      while (j < nruns && rw[j] !== p) j++;
      if (j < nruns) rc[j] += run;
      else if (nruns < 16) {
        rw[nruns] = p;
        rc[nruns++] = run;
      } else {
        spill ??= new Map();
        spill.set(p, (spill.get(p) ?? 0) + run);
      }
      p = q;
      run = 1;
    }
    {
      let j = 0;
      while (j < nruns && rw[j] !== p) j++;
      if (j < nruns) rc[j] += run;
      else if (nruns < 16) {
        rw[nruns] = p;
        rc[nruns++] = run;
      } else {
        spill ??= new Map();
        spill.set(p, (spill.get(p) ?? 0) + run);
      }
    }
    // A NaN never equals itself and -0 equals 0: such words cannot be counted by value.
    for (let j = 0; j < nruns; j++) if (rw[j] !== rw[j] || (rw[j] === 0 && 1 / rw[j] < 0)) return false;
    if (spill) for (const k of spill.keys()) if (k !== k || (k === 0 && 1 / k < 0)) return false;
    // The (pid, cpu) words of the runs as the sorted words' BigInts, with their counts.
    const heads = [];
    for (let j = 0; j < nruns; j++) {
      bitsF[0] = rw[j];
      heads.push(bitsB[0], rc[j]);
    }
    if (spill) {
      for (const [k, c] of spill) {
        bitsF[0] = k;
        heads.push(bitsB[0], c);
      }
    }
    const headers = (v) => {
      for (let j = 0; j < heads.length; j += 2) if (heads[j] === v) return heads[j + 1];
      return 0;
    };
    // All the words, sorted (the engine sorts 64-bit integers far faster than doubles).
    if (sortWords.length < len) sortWords = new BigInt64Array(Math.max(len, 2 * sortWords.length));
    const s = sortWords.subarray(0, len);
    const b = new BigInt64Array(w.buffer, w.byteOffset, len);
    s.set(b);
    s.sort();
    // The one word that, as a double, is -0: the runs took it for 0 (never a pid-and-cpu word
    // in practice; a field's value perhaps): walk the records then.
    if (s[0] === -0x8000000000000000n) return false;
    // The timestamps: between the first record's and the last one's; nothing else may be.
    const a = b[0];
    const t0 = b[1];
    const t1 = b[len - 3];
    const tb = notBefore(s, 0, len, t0);
    const te = after(s, tb, len, t1);
    let others = te - tb - n;
    if (a >= t0 && a <= t1) others -= n;
    for (let j = 0; j < heads.length; j += 2) if (heads[j] >= t0 && heads[j] <= t1) others -= heads[j + 1];
    if (others !== 0) return false;
    // Every other run of equal words: the field's values, less the header words.
    const found = [];
    let total = 0;
    for (let i = 0, hi = tb; ; ) {
      if (i >= hi) {
        if (hi === len) break;
        i = te;
        hi = len;
        continue;
      }
      const v = s[i];
      const j = runEnd(s, i, hi);
      const c = j - i - (v === a ? n : 0) - headers(v);
      if (c < 0) return false;
      if (c > 0) {
        found.push(v, c);
        total += c;
        if (found.length > 512) return false; // many distinct values: walking is cheaper
      }
      i = j;
    }
    if (total !== n) return false;
    const size = f.size;
    for (let k = 0; k < found.length; k += 2) {
      bitsB[0] = found[k];
      const lo = bitsI[0];
      let key;
      if (size === 8) key = bitsI[1] * TWO32 + (lo >>> 0);
      else if (size === 4) key = f.signed ? lo : lo >>> 0;
      else if (size === 2) key = f.signed ? (lo << 16) >> 16 : lo & 0xffff;
      else key = f.signed ? (lo << 24) >> 24 : lo & 0xff;
      counter.add(key, found[k + 1]);
    }
    if (pids) {
      for (let j = 0; j < heads.length; j += 2) {
        bitsB[0] = heads[j];
        pids.add(bitsI[0], heads[j + 1]);
      }
    }
    return true;
  }
  /** Adds the count of probe's events per pid to counter (a Counter, made when omitted) and
   * returns it; a run of one pid costs one compare an event. */
  countPids(probe, counter = new Counter()) {
    if (this.uniform !== probe) {
      this.forEach((ev) => ev.probe === probe && counter.add(ev.pid));
      return counter;
    }
    const w = this.i32;
    const e = w.length;
    const st = this.stride;
    const st2 = st * 2;
    const st3 = st * 3;
    const st4 = st * 4;
    const e4 = e - st3;
    let o = 4;
    while (o < e) {
      const pid = w[o];
      const start = o;
      o += st;
      // Four records a step while the pid stays (the usual case: one process's run).
      while (o < e4 && w[o] === pid && w[o + st] === pid && w[o + st2] === pid && w[o + st3] === pid) o += st4;
      while (o < e && w[o] === pid) o += st;
      counter.add(pid, (o - start) / st);
    }
    return counter;
  }
  /** The values of field name of probe's events, in order, as a Float64Array of Numbers. */
  column(probe, name) {
    const out = [];
    this.forEach((ev) => ev.probe === probe && out.push(ev.int(name)));
    return Float64Array.from(out);
  }
  /** The pid of each of probe's events, in order (an Int32Array). */
  pids(probe) {
    if (this.uniform === probe) {
      const out = new Int32Array(this.n);
      const w = this.i32;
      for (let i = 0, o = 4; i < out.length; i++, o += this.stride) out[i] = w[o];
      return out;
    }
    const out = [];
    this.forEach((ev) => ev.probe === probe && out.push(ev.pid));
    return Int32Array.from(out);
  }
  /** The command name of pid (asked of the host once per pid and batch). */
  comm(pid) {
    return this.events.length ? this.events[0].comms(pid) : commOf(pid) ?? "<...>";
  }
}

/** Calls fn(ev) for each record of the batch (the events' view and u8 must be set). */
function walk(batch, view, u32, i32, events, fn) {
  const n = batch.byteLength;
  const nprobes = events.length;
  let off = 0;
  if (u32) {
    // Headers read through typed arrays: far cheaper than DataView calls in the
    // interpreter (records are 8-aligned, so their header words are 4-aligned).
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
      fn(ev);
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
    fn(ev);
    off = (end + 7) & ~7;
  }
  if (off < n) throw new PluginError(`batch truncated at offset ${off}`);
}

// --- the plugin and its export --------------------------------------------------------

/** Extend it: init returns a Plan; then onEvent per event (or override onBatch(batch) for
 * whole columns, see Batch); onLost; finish. */
export class Plugin {
  init(_args) {
    throw new PluginError("the plugin has no init");
  }
  onEvent(_ev) {}
  /** Called once per batch (a Batch); by default calls onEvent for each event. */
  onBatch(batch) {
    batch.forEach((ev) => this.onEvent(ev));
  }
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
  let fixed = false;
  let overridden = false;
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
        overridden = plugin.onBatch !== Plugin.prototype.onBatch;
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
          // Records of one probe with no variable-size field all have one size.
          fixed = events.length === 1 && [...events[0].fields.values()].every((f) => !LOCATED.has(f.kind));
          layouts = true;
        }
        comms = new Map();
        if (lost) plugin.onLost(Number(lost));
        const view = new DataView(batch.buffer, batch.byteOffset, batch.byteLength);
        for (const ev of events) {
          ev.view = view;
          ev.u8 = batch;
        }
        const aligned = batch.byteOffset % 4 === 0;
        const words = batch.byteLength >> 2;
        const u32 = aligned ? new Uint32Array(batch.buffer, batch.byteOffset, words) : null;
        const i32 = aligned ? new Int32Array(batch.buffer, batch.byteOffset, words) : null;
        if (overridden) {
          plugin.onBatch(new Batch(batch, view, i32, u32, events, fixed));
        } else {
          const onEvent = (ev) => plugin.onEvent(ev);
          walk(batch, view, u32, i32, events, onEvent);
        }
        flushMetrics();
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
        flushMetrics();
      } catch (e) {
        throw message("finish", e);
      }
    },
  };
}

// --- metrics --------------------------------------------------------------------------
// Counters, gauges and histograms with labels for Prometheus (wasmprobe agent, run
// --metrics-listen), declared in init and updated in bulk, as the Rust SDK's metrics: updates
// are buffered and sent in one call after each batch and after finish. Elsewhere
// metrics.enabled() is false and updates go nowhere (declaring still works).
//
//   this.calls = metrics.counter("syscount_syscalls", "System calls", ["comm", "syscall"]);
//   this.calls.add(["cat", "0"], 3);          // a batch's aggregated count, not one per event
//   this.lat = metrics.histogram("openlat_open_seconds", "open() latency", ["comm"], [1e-6, 1e-5]);
//   this.lat.observe(["cat"], 0.000012);
//
// Each metric keeps at most maxSeries label sets (0: 1000); the excess goes to an overflow
// series (label values "__overflow__"), counted. A counter's name does not end in _total. A
// declaration the host refuses throws its reason (init then fails with it).

const pendingMetrics = [];
let metricsOn;

function metricsEnabled() {
  if (metricsOn === undefined) metricsOn = mx.enabled();
  return metricsOn;
}

function declareMetric(name, help, kind, labels, buckets, maxSeries) {
  const metric = { name, help, kind, labels: labels.map(String), buckets: buckets.map(Number), maxSeries: maxSeries >>> 0 };
  try {
    return mx.declare(metric);
  } catch (e) {
    throw new PluginError(String(e?.payload ?? e));
  }
}

function pushMetric(metric, labels, op, value) {
  if (!metricsEnabled()) return;
  pendingMetrics.push({ metric, labels: labels.map(String), op, value: Number(value) });
  if (pendingMetrics.length >= 4096) flushMetrics();
}

function flushMetrics() {
  if (pendingMetrics.length === 0) return;
  const updates = pendingMetrics.splice(0);
  try {
    mx.update(updates);
  } catch (e) {
    output.log("warn", `metrics: ${e?.payload ?? e}`);
  }
}

export const metrics = {
  enabled: metricsEnabled,
  /** Sends the buffered updates now (the SDK does it after every batch and after finish). */
  flush: flushMetrics,
  /** Only goes up; exposed as NAME_total. */
  counter(name, help, labels = [], maxSeries = 0) {
    const id = declareMetric(name, help, "counter", labels, [], maxSeries);
    return { add: (l, v = 1) => pushMetric(id, l, "add", v) };
  },
  /** Any value. */
  gauge(name, help, labels = [], maxSeries = 0) {
    const id = declareMetric(name, help, "gauge", labels, [], maxSeries);
    return { set: (l, v) => pushMetric(id, l, "set", v), add: (l, v) => pushMetric(id, l, "add", v) };
  },
  /** Observations in buckets (upper bounds, increasing; +Inf implied): NAME_bucket/_sum/_count. */
  histogram(name, help, labels, buckets, maxSeries = 0) {
    const id = declareMetric(name, help, "histogram", labels, buckets, maxSeries);
    return { observe: (l, v) => pushMetric(id, l, "observe", v) };
  },
};
