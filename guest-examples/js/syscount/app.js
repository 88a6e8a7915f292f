// syscount in JavaScript: every system call entry (tracepoint raw_syscalls:sys_enter), counted
// per process and per syscall id; the top of both tables at the end. The same arguments and
// output as the Rust syscount (guest-examples/syscount); no timeline. It uses the SDK's
// columnar path: onBatch counts whole columns of each batch (batch.count, the syscall ids and
// the pids in one walk) instead of one onEvent call per event.
import { Counter, Plan, Plugin, emit, exportPlugin, lostEvents, print, wantsRecords } from "wasmprobe";

class Syscount extends Plugin {
  init(args) {
    this.top = args.int("top", 10);
    const records = args.int("records");
    this.records = records === undefined ? wantsRecords() : records !== 0;
    this.byId = new Counter();
    this.byPid = new Map(); // pid -> [comm as first seen, count]
    this.batchPids = new Counter(); // one batch's, reused
    const plan = new Plan();
    this.enter = plan.tracepoint("sys_enter", "raw_syscalls:sys_enter");
    plan.fields(this.enter, ["id"]);
    return plan;
  }

  onBatch(batch) {
    const pids = this.batchPids;
    pids.clear();
    batch.count(this.enter, "id", this.byId, pids);
    for (const [pid, n] of pids) {
      const seen = this.byPid.get(pid);
      if (seen === undefined) this.byPid.set(pid, [batch.comm(pid), n]);
      else seen[1] += n;
    }
  }

  finish() {
    const ids = this.byId.entries();
    ids.sort((a, b) => b[1] - a[1] || a[0] - b[0]);
    const pids = [...this.byPid].sort((a, b) => b[1][1] - a[1][1] || a[0] - b[0]);
    const topIds = ids.slice(0, this.top);
    const topPids = pids.slice(0, this.top);
    const lost = lostEvents();
    if (this.records) {
      for (const [id, n] of topIds) emit([["syscall", id], ["count", n]]);
      for (const [pid, [comm, n]] of topPids) emit([["pid", pid], ["comm", comm], ["count", n]]);
      if (lost > 0) emit([["lost", lost]]);
      return;
    }
    print(`Top ${this.top} syscalls by count:`);
    print(`${"SYSCALL".padStart(8)} ${"COUNT".padStart(10)}`);
    for (const [id, n] of topIds) print(`${String(id).padStart(8)} ${String(n).padStart(10)}`);
    print("");
    print(`Top ${this.top} processes by syscall count:`);
    print(`${"PID".padStart(8)} ${"COMM".padEnd(16)} ${"COUNT".padStart(10)}`);
    for (const [pid, [comm, n]] of topPids) print(`${String(pid).padStart(8)} ${comm.padEnd(16)} ${String(n).padStart(10)}`);
    if (lost > 0) {
      print("");
      print(`The kernel lost ${lost} events: the counts are low.`);
    }
  }
}

export const { init, onBatch, finish } = exportPlugin(Syscount);
