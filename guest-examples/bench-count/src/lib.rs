//! The work of the delivery benchmark (host/wasmprobe/benches/plugin_delivery.rs), chosen by
//! `--arg work=`: `count` (the default) counts the events per pid in an `agg::Count` and sums
//! the `id` field; `fxhash` does the same with an `FxHashMap` (std's hashbrown, as before the
//! aggregations); `hist` puts the `id` field in a log2 `agg::Hist`; `none` only counts the
//! events (delivery alone). `count`, `hist` and `none` read the batch's columns
//! (`Plugin::on_batch`, the SDK's path for aggregations), `fxhash` its events one by one.
//! `finish` prints the result so the host can check it against its native run of the same
//! work.

use wasmprobe_guest::agg::{Count as CountMap, Hist, Print};
use wasmprobe_guest::{println, Args, Batch, FxHashMap, Plan, Plugin, ProbeId};

#[derive(Default, PartialEq)]
enum Work {
    None,
    #[default]
    Count,
    FxHash,
    Hist,
}

#[derive(Default)]
struct Count {
    work: Work,
    fx: FxHashMap<i32, u64>,
    per_pid: Option<CountMap<i32>>,
    hist: Option<Hist>,
    sum: u64,
}

impl Plugin for Count {
    fn init(&mut self, args: &Args) -> Result<Plan, String> {
        self.work = match args.get("work") {
            None | Some("count") => Work::Count,
            Some("none") => Work::None,
            Some("fxhash") => Work::FxHash,
            Some("hist") => Work::Hist,
            Some(w) => return Err(format!("--arg work={w}: not none, count, fxhash or hist")),
        };
        self.per_pid = Some(CountMap::new("@"));
        self.hist = Some(Hist::new("@id"));
        let mut plan = Plan::new();
        let enter = plan.tracepoint("sys_enter", "raw_syscalls:sys_enter");
        plan.fields(enter, &["id"]);
        Ok(plan)
    }

    /// The columnar path (the SDK's recommended one for aggregations): whole columns of the
    /// batch in tight loops. `count`, `hist` and `none` read only `id` and the pids, so their
    /// work is a loop each; `fxhash` keeps the per-event path, as plugins did before.
    fn on_batch(&mut self, batch: &Batch) {
        let enter = ProbeId(0);
        match self.work {
            Work::None => self.sum += batch.count(enter) as u64,
            Work::Count => {
                if let Some(c) = &mut self.per_pid {
                    batch.pids(enter).for_each(|pid| c.inc(pid));
                }
                self.sum = batch.u64s(enter, "id").fold(self.sum, u64::wrapping_add);
            }
            Work::FxHash => batch.events(|ev| {
                *self.fx.entry(ev.pid()).or_default() += 1;
                self.sum = self.sum.wrapping_add(ev.u64("id"));
            }),
            Work::Hist => {
                if let Some(h) = &mut self.hist {
                    batch.u64s(enter, "id").for_each(|id| h.record((), id));
                }
            }
        }
    }

    fn finish(&mut self) {
        let per_pid = self.per_pid.as_ref().expect("init ran");
        match self.work {
            Work::None => println!("pids=0 events={} sum={}", self.sum, self.sum),
            Work::Count => {
                let events: u64 = per_pid.map().iter().map(|(_, n)| n.0).sum();
                println!("pids={} events={} sum={}", per_pid.len(), events, self.sum)
            }
            Work::FxHash => {
                println!("pids={} events={} sum={}", self.fx.len(), self.fx.values().sum::<u64>(), self.sum)
            }
            Work::Hist => self.hist.as_ref().expect("init ran").print(),
        }
    }
}

wasmprobe_guest::export!(Count);
