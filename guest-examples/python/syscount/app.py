"""syscount in Python: every system call entry (tracepoint raw_syscalls:sys_enter), counted
per process and per syscall id; the top of both tables at the end. The same arguments and
output as the Rust syscount (guest-examples/syscount).

It uses the SDK's columnar path: ``on_batch`` counts whole columns of the batch
(``batch.count``, ``batch.count_pids``) in C instead of one Python call per event.
"""

from collections import Counter

from wasmprobe import Plan, Plugin, emit, export, lost_events, print, wants_records
from wasmprobe import timeline
from wasmprobe.timeline import Track

SECOND = 1_000_000_000


class Syscount(Plugin):
    def init(self, args):
        self.top = args.int("top", 10)
        records = args.int("records")
        self.records = wants_records() if records is None else records != 0
        self.by_id = Counter()
        self.by_pid = {}  # pid -> [comm as first seen, count]
        self.second = None  # (second, calls) for the timeline
        plan = Plan()
        self.enter = plan.tracepoint("sys_enter", "raw_syscalls:sys_enter")
        plan.fields(self.enter, ["id"])
        return plan

    def on_batch(self, batch):
        if timeline.enabled():
            self.draw(batch.ts(self.enter))
        batch.count(self.enter, "id", self.by_id)
        for pid, n in batch.count_pids(self.enter).items():
            seen = self.by_pid.get(pid)
            if seen is None:
                self.by_pid[pid] = [batch.comm(pid), n]
            else:
                seen[1] += n

    def draw(self, stamps):
        for ts in stamps:
            s = ts // SECOND
            if self.second is not None and self.second[0] == s:
                self.second = (s, self.second[1] + 1)
            else:
                self.close_second(s)
                self.second = (s, 1)

    def close_second(self, next_second):
        if self.second is None:
            return
        s, n = self.second
        track = Track.global_("syscalls per second")
        timeline.counter(track, s * SECOND, n)
        if next_second is not None and next_second > s + 1:
            timeline.counter(track, (s + 1) * SECOND, 0)

    def finish(self):
        self.close_second(None)
        ids = sorted(self.by_id.items(), key=lambda kv: (-kv[1], kv[0]))[: self.top]
        pids = sorted(self.by_pid.items(), key=lambda kv: (-kv[1][1], kv[0]))[: self.top]
        lost = lost_events()
        if self.records:
            for sc, n in ids:
                emit(syscall=sc, count=n)
            for pid, (comm, n) in pids:
                emit(pid=pid, comm=comm, count=n)
            if lost:
                emit(lost=lost)
            return
        print(f"Top {self.top} syscalls by count:")
        print(f"{'SYSCALL':>8} {'COUNT':>10}")
        for sc, n in ids:
            print(f"{sc:>8} {n:>10}")
        print("")
        print(f"Top {self.top} processes by syscall count:")
        print(f"{'PID':>8} {'COMM':<16} {'COUNT':>10}")
        for pid, (comm, n) in pids:
            print(f"{pid:>8} {comm:<16} {n:>10}")
        if lost:
            print("")
            print(f"The kernel lost {lost} events: the counts are low.")


WitWorld = export(Syscount)
