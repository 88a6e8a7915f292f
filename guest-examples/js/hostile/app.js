// A hostile JavaScript plugin for the sandbox tests: --arg attack=NAME picks what it tries in
// init: "loop" (never returns), "memory" (grows until stopped), "fetch" (the network),
// "throw" (an Error: must come back as the plugin's message, not crash the host's decoding).
import { Plan, Plugin, PluginError, exportPlugin } from "wasmprobe";

class Hostile extends Plugin {
  init(args) {
    const attack = args.get("attack");
    if (attack === "loop") for (;;) {}
    if (attack === "memory") {
      const hog = [];
      for (;;) hog.push(new Uint8Array(1 << 20).fill(1));
    }
    if (attack === "fetch") {
      if (typeof fetch !== "function") throw new PluginError("refused: no fetch in this runtime");
      fetch("http://127.0.0.1:22/");
      throw new PluginError("NOT CONTAINED: fetch returned");
    }
    if (attack === "throw") throw new TypeError("thrown on purpose");
    return new Plan();
  }
}

export const { init, onBatch, finish } = exportPlugin(Hostile);
