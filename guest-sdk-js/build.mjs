#!/usr/bin/env node
// Builds a JavaScript plugin into a component:
//
//   node guest-sdk-js/build.mjs app.js -o plugin.wasm [--wit DIR] [--weval PATH]
//
// app.js imports the SDK as "wasmprobe". The app's directory is copied beside the SDK (its
// imports of the WIT set to the WIT's version), and componentize-js (pinned in package.json
// here; `npm ci` installs it) builds it against the `plugin` world with wasi:http and the
// fetch-event off (the host gives plugins no network). --wit defaults to ../wit from here.
// --weval PATH (or WASMPROBE_WEVAL=PATH) compiles the JS ahead of time with that weval binary
// (componentize-js --aot --weval-bin; `cargo install weval --version 0.5.1 --locked` builds
// one): about 1.5x faster per event, the build about 50 s instead of 10.
import { spawnSync } from "node:child_process";
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const argv = process.argv.slice(2);
let app, out, wit = join(here, "..", "wit");
let weval = process.env.WASMPROBE_WEVAL;
for (let i = 0; i < argv.length; i++) {
  if (argv[i] === "-o") out = argv[++i];
  else if (argv[i] === "--wit") wit = argv[++i];
  else if (argv[i] === "--weval") weval = argv[++i];
  else app = argv[i];
}
if (!app || !out) {
  console.error("usage: node build.mjs APP.js -o OUT.wasm [--wit DIR] [--weval PATH]");
  process.exit(2);
}
const fail = (msg) => {
  console.error(`build.mjs: error: ${msg}`);
  process.exit(1);
};
const cli = join(here, "node_modules", "@bytecodealliance", "componentize-js", "src", "cli.js");
if (!existsSync(cli)) fail(`no componentize-js in ${here}/node_modules: run \`npm ci\` there`);

const witText = readdirSync(wit).filter((f) => f.endsWith(".wit")).map((f) => readFileSync(join(wit, f), "utf8")).join("\n");
const version = /package\s+wasmprobe:plugin@([0-9][0-9A-Za-z.+-]*)\s*;/.exec(witText)?.[1];
if (!version) fail(`no \`package wasmprobe:plugin@X;\` in ${wit}`);

const work = mkdtempSync(join(tmpdir(), "wasmprobe-js-"));
try {
  cpSync(dirname(resolve(app)), work, { recursive: true, filter: (p) => !p.includes("node_modules") && !p.endsWith(".wasm") });
  const sdk = readFileSync(join(here, "wasmprobe.js"), "utf8").replace(/(wasmprobe:plugin\/[a-z-]+)@[0-9][0-9A-Za-z.+-]*/g, `$1@${version}`);
  writeFileSync(join(work, "wasmprobe.js"), sdk);
  for (const f of readdirSync(work).filter((f) => f.endsWith(".js") && f !== "wasmprobe.js")) {
    const p = join(work, f);
    writeFileSync(p, readFileSync(p, "utf8").replace(/from\s+(["'])wasmprobe\1/g, 'from "./wasmprobe.js"'));
  }
  const args = [cli, join(work, basename(app)), "-w", resolve(wit), "-n", "plugin", "-d", "http", "fetch-event", "-o", resolve(out)];
  if (weval) args.push("--aot", "--weval-bin", resolve(weval));
  const r = spawnSync(process.execPath, args, { stdio: "inherit" });
  if (r.status !== 0) fail(`componentize-js failed (${r.status ?? r.signal})`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
