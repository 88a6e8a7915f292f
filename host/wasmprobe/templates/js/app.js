// The libtracefs kprobe man page's example: the files a command opens, and what open returned.
//   1234-cat: open file='/etc/passwd'
//   1234-cat: open ret=3
// uprobes on libc's open/openat where the kernel has no kprobes; records with --json.
import { Plan, Plugin, emit, exportPlugin, kernelSupports, log, print, wantsRecords } from "wasmprobe";

class ExecOpen extends Plugin {
  init(_args) {
    this.records = wantsRecords();
    const plan = new Plan();
    if (kernelSupports("kprobe")) {
      const open = plan.kprobe("open", "do_sys_openat2", "file=+0($arg2):ustring flags=+0($arg3):x64 mode=+8($arg3):x64");
      const ret = plan.kretprobe("openret", "do_sys_openat2", "ret=%ax");
      plan.fields(open, ["file"]).fields(ret, ["ret"]);
      this.opens = new Set([open]);
    } else {
      log("info", "the kernel has no kprobes: tracing libc open/openat with uprobes instead");
      const open = plan.uprobe("open", "libc:open", "file=+0(%di):ustring");
      const openat = plan.uprobe("openat", "libc:openat", "file=+0(%si):ustring");
      const ret = plan.uretprobe("openret", "libc:open", "ret=$retval:s32");
      const atret = plan.uretprobe("openatret", "libc:openat", "ret=$retval:s32");
      plan.fields(open, ["file"]).fields(openat, ["file"]).fields(ret, ["ret"]).fields(atret, ["ret"]);
      this.opens = new Set([open, openat]);
    }
    return plan;
  }

  onEvent(ev) {
    const open = this.opens.has(ev.probe);
    if (this.records) emit(open ? { pid: ev.pid, comm: ev.comm, file: ev.str("file") } : { pid: ev.pid, comm: ev.comm, ret: ev.int("ret") });
    else if (open) print(`${ev.pid}-${ev.comm}: open file='${ev.str("file")}'`);
    else print(`${ev.pid}-${ev.comm}: open ret=${ev.int("ret")}`);
  }
}

export const { init, onBatch, finish } = exportPlugin(ExecOpen);
