//! The work of the delivery benchmark (host/wasmprobe/benches/plugin_delivery.rs), chosen by
//! `--arg work=`: `count` (the default) counts the events per pid in an `agg::Count` and sums
//! the `id` field; `fxhash` does the same with an `FxHashMap` (std's hashbrown, as before the
//! aggregations); `hist` puts the `id` field in a log2 `agg::Hist`; `none` only counts the
//! events (delivery alone). `finish` prints the result so the host can check it against its
//! native run of the same work.

use wasmprobe_guest::agg::{Count as CountMap, Hist, Print};
use wasmprobe_guest::{println, Args, Event, FxHashMap, Plan, Plugin};

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

    fn on_event(&mut self, ev: &Event) {
        match self.work {
            Work::None => self.sum += 1,
            Work::Count => {
                if let Some(c) = &mut self.per_pid {
                    c.inc(ev.pid());
                }
                self.sum = self.sum.wrapping_add(ev.u64("id"));
            }
            Work::FxHash => {
                *self.fx.entry(ev.pid()).or_default() += 1;
                self.sum = self.sum.wrapping_add(ev.u64("id"));
            }
            Work::Hist => {
                if let Some(h) = &mut self.hist {
                    h.record((), ev.u64("id"));
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
