//! Declares one event several times: `--arg event=SYSTEM:EVENT` (default
//! raw_syscalls:sys_enter) once per `;`-separated entry of `--arg filters=...` (an empty
//! entry: no filter; an entry starting with `+` also declares `fields` = common_pid, id), or
//! `--arg n=N` times unfiltered. At `finish` it prints `probeI COUNT` for each declaration.

use wasmprobe_guest::{println, Args, Event, Plan, Plugin};

#[derive(Default)]
struct Dupes {
    counts: Vec<u64>,
}

impl Plugin for Dupes {
    fn init(&mut self, args: &Args) -> Result<Plan, String> {
        let event = args.get("event").unwrap_or("raw_syscalls:sys_enter");
        let filters: Vec<String> = match (args.get("filters"), args.parse::<usize>("n")?) {
            (Some(f), _) => f.split(';').map(str::to_string).collect(),
            (None, Some(n)) => vec![String::new(); n],
            (None, None) => return Err("give --arg filters=F1;F2;... or --arg n=N".into()),
        };
        let mut plan = Plan::new();
        for (i, f) in filters.iter().enumerate() {
            let id = plan.tracepoint(&format!("probe{i}"), event);
            let (project, f) = match f.strip_prefix('+') {
                Some(rest) => (true, rest),
                None => (false, f.as_str()),
            };
            if !f.is_empty() {
                plan.filter(id, f);
            }
            if project {
                plan.fields(id, &["common_pid", "id"]);
            }
        }
        self.counts = vec![0; filters.len()];
        Ok(plan)
    }

    fn on_event(&mut self, ev: &Event) {
        self.counts[ev.probe().0 as usize] += 1;
    }

    fn finish(&mut self) {
        for (i, n) in self.counts.iter().enumerate() {
            println!("probe{i} {n}");
        }
    }
}

wasmprobe_guest::export!(Dupes);
