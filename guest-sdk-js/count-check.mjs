#!/usr/bin/env node
// Checks Batch.count's sorted path (wasmprobe.js, sortedCount) against the walk of the records
// (countWalk) over random batches made to catch it out: field values equal to a header word
// (a pid-and-cpu word, the probe-and-length word, a timestamp of the batch), the words that
// are a NaN or -0 as doubles, many pids, small timestamps, fields of 1, 2, 4 and 8 bytes. Run
// by host/wasmprobe/tests/plugin_langs.rs (js_count_sorted_path_equals_the_walk):
//
//   node guest-sdk-js/count-check.mjs [BATCHES]   (3000 when omitted; the test runs 5000)
//
// It prints "count-check: N batches, S by the sorted path, all equal" or exits 1 with the
// first difference.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
// The SDK with its host imports stubbed (nothing here calls them), and Field exported.
const src = readFileSync(join(here, "wasmprobe.js"), "utf8").replace(/^import \* as (\w+) from "wasmprobe:plugin\/[^"]+";$/gm, "const $1 = {};");
const exported = `${src}\nexport { Field };\n`;
const work = mkdtempSync(join(tmpdir(), "count-check-"));
let sdk;
try {
  writeFileSync(join(work, "sdk.mjs"), exported);
  sdk = await import(join(work, "sdk.mjs"));
} finally {
  rmSync(work, { recursive: true, force: true });
}
const { Batch, Counter, Event } = sdk;

let seed = 0x2545f491;
const rand = (k) => {
  seed ^= seed << 13;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  return (seed >>> 0) % k;
};
const pick = (xs) => xs[rand(xs.length)];
const M64 = (1n << 64n) - 1n;

/** One uniform batch of n 32-byte records of a size-byte field, as the host packs it. */
function makeBatch(n, size, signed, offset) {
  const buf = new ArrayBuffer(offset + n * 32);
  const u8 = new Uint8Array(buf, offset, n * 32);
  const dv = new DataView(buf, offset, n * 32);
  // Timestamps near 0 (among the field's values), around the probe-and-length word, or as
  // a trace clock's.
  let ts = pick([BigInt(rand(50)), (BigInt(size) << 32n) - BigInt(rand(40)), BigInt(1e13) + BigInt(rand(1e9))]);
  const npids = pick([1, 1, 2, 3, 20, 200]);
  const pids = Array.from({ length: npids }, () => pick([0, 1, 7, rand(100), 1000 + rand(1e6), -5]));
  const cpus = [0, 1, 3, pick([0, 2, 0x80000000, 0x7ff80000])];
  if (rand(4) === 0) {
    // pid 0 on cpu 0 and on cpu 0x80000000: words 0 and -0 as doubles
    pids.splice(0, npids, 0, 0);
    cpus.splice(0, 4, 0, 0x80000000);
  }
  let pid = pick(pids);
  let cpu = pick(cpus);
  const vals = [];
  for (let i = 0; i < n; i++) {
    if (rand(npids > 3 ? 2 : 60) === 0) {
      pid = pick(pids);
      cpu = pick(cpus);
    }
    ts += BigInt(rand(3));
    const o = i * 32;
    dv.setUint32(o, 0, true);
    dv.setUint32(o + 4, size, true);
    dv.setBigUint64(o + 8, ts, true);
    dv.setInt32(o + 16, pid, true);
    dv.setUint32(o + 20, cpu >>> 0, true);
    const pidWord = (BigInt(pid >>> 0) | (BigInt(cpu >>> 0) << 32n)) & M64;
    let v = pick([
      BigInt(rand(8)),
      BigInt(rand(500)),
      pidWord,
      BigInt(size) << 32n,
      ts,
      ts - 1n,
      1n << 63n,
      0x7ff8000000000001n,
      M64,
      BigInt(rand(1 << 30)) * BigInt(rand(1 << 30)),
    ]);
    v &= size === 8 ? M64 : (1n << BigInt(8 * size)) - 1n;
    vals.push(v);
    for (let k = 0; k < size; k++) dv.setUint8(o + 24 + k, Number((v >> BigInt(8 * k)) & 0xffn));
  }
  const field = { name: "v", cType: "x", offset: 0, size, signed, kind: "integer", elemSize: size };
  return { u8, dv, field };
}

function entries(c) {
  return JSON.stringify(c.entries().sort((a, b) => String(a[0]).localeCompare(String(b[0]))));
}

const trials = Number(process.argv[2] ?? 3000);
let sorted = 0;
for (let t = 0; t < trials; t++) {
  const n = pick([1, 2, 3, 7, 8, 9, 31, 100, 1000, 4096]);
  const size = pick([8, 8, 8, 4, 2, 1]);
  const signed = rand(2) === 0;
  const offset = rand(8) === 0 ? 4 : 0;
  const { u8, dv, field } = makeBatch(n, size, signed, offset);
  const ev = new Event(0, "p", new Map(), () => "x");
  ev.fields = new Map([["v", new sdk.Field(field)]]);
  ev.view = dv;
  ev.u8 = u8;
  const words = offset % 4 === 0 ? u8.byteLength >> 2 : 0;
  const u32 = new Uint32Array(u8.buffer, u8.byteOffset, words);
  const i32 = new Int32Array(u8.buffer, u8.byteOffset, words);
  const batch = new Batch(u8, dv, i32, u32, [ev], true);
  const withPids = rand(3) !== 0;
  const [a, ap] = [new Counter(), withPids ? new Counter() : undefined];
  const [b, bp] = [new Counter(), withPids ? new Counter() : undefined];
  const took = batch.sortedCount(0, "v", a, ap);
  if (!took) batch.countWalk(0, "v", a, ap);
  else sorted++;
  batch.countWalk(0, "v", b, bp);
  if (entries(a) !== entries(b) || (withPids && entries(ap) !== entries(bp))) {
    console.error(`count-check: batch ${t} (n ${n}, size ${size}, signed ${signed}, sorted path ${took}) differs:`);
    console.error(`  count: ${entries(a)}${withPids ? ` pids ${entries(ap)}` : ""}`);
    console.error(`  walk:  ${entries(b)}${withPids ? ` pids ${entries(bp)}` : ""}`);
    process.exit(1);
  }
}
console.log(`count-check: ${trials} batches, ${sorted} by the sorted path, all equal`);
