"""exec-open in Python: the example of the libtracefs kprobe man page, as the Rust exec-open
(guest-examples/exec-open) does it, with the same output:

    1234-cat: open file='/etc/passwd'
    1234-cat: open ret=3

uprobes on libc's open/openat where the kernel has no kprobes; records with ``--json``.
"""

from wasmprobe import INFO, Plan, Plugin, emit, export, kernel_supports, log, print, wants_records


class ExecOpen(Plugin):
    def init(self, args):
        self.records = wants_records()
        plan = Plan()
        if kernel_supports("kprobe"):
            open_ = plan.kprobe("open", "do_sys_openat2",
                                "file=+0($arg2):ustring flags=+0($arg3):x64 mode=+8($arg3):x64")
            ret = plan.kretprobe("openret", "do_sys_openat2", "ret=%ax")
            plan.fields(open_, ["file"]).fields(ret, ["ret"])
            self.opens = {open_}
        else:
            log(INFO, "the kernel has no kprobes: tracing libc open/openat with uprobes instead")
            open_ = plan.uprobe("open", "libc:open", "file=+0(%di):ustring")
            openat = plan.uprobe("openat", "libc:openat", "file=+0(%si):ustring")
            ret = plan.uretprobe("openret", "libc:open", "ret=$retval:s32")
            atret = plan.uretprobe("openatret", "libc:openat", "ret=$retval:s32")
            plan.fields(open_, ["file"]).fields(openat, ["file"]).fields(ret, ["ret"]).fields(atret, ["ret"])
            self.opens = {open_, openat}
        return plan

    def on_event(self, ev):
        is_open = ev.probe in self.opens
        if self.records:
            if is_open:
                emit(pid=ev.pid, comm=ev.comm, file=ev.str("file"))
            else:
                emit(pid=ev.pid, comm=ev.comm, ret=ev.int("ret"))
        elif is_open:
            print(f"{ev.pid}-{ev.comm}: open file='{ev.str('file')}'")
        else:
            print(f"{ev.pid}-{ev.comm}: open ret={ev.int('ret')}")


WitWorld = export(ExecOpen)
