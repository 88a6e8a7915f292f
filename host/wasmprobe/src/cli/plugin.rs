//! `run` and `inspect`: a plugin, live, in replay, or only asked for its plan.

use std::process::ExitCode;

use anyhow::Result;
use tracefs::{resolve_target, Tracefs};

use super::args::{InspectArgs, PluginArgs, RunArgs, TraceArgs};
use crate::run::{PluginOptions, TraceOptions};

/// `--allow` as a policy.
pub(super) fn policy(allow: Option<&str>) -> Result<crate::plugin::Policy> {
    match allow {
        Some(a) => crate::plugin::Policy::from_allow_list(a).map_err(|e| anyhow::anyhow!("--allow: {e}")),
        None => Ok(crate::plugin::Policy::default()),
    }
}

/// The plugin options the flags give, for `plugin` writing to `output`.
pub(super) fn plugin_options(
    plugin: String,
    a: PluginArgs,
    output: Option<std::path::PathBuf>,
) -> Result<PluginOptions> {
    // A PLUGIN that is a registry reference is pulled with these (src/pack/oci/).
    a.registry.install_for_run()?;
    Ok(PluginOptions {
        trust: a.trust.policy()?,
        policy: policy(a.allow.as_deref())?,
        plugin,
        args: a.args,
        json: a.json,
        output,
        metrics_listen: None,
        timeline: None,
        sandbox: crate::plugin::Sandbox {
            memory_limit_bytes: a.memory_mib << 20,
            callback_budget: a.cpu_budget,
            setup_budget: a.setup_budget,
            max_plugin_bytes: a.max_plugin_mib << 20,
            ..Default::default()
        },
    })
}

/// What to trace, from the flags.
pub(super) fn trace_options(t: TraceArgs) -> TraceOptions {
    TraceOptions { pid: t.pid, duration: t.duration, command: t.command, perfetto: t.perfetto }
}

pub(super) fn run(a: RunArgs) -> Result<ExitCode> {
    let opts = plugin_options(a.plugin, a.plugin_args, a.output)?;
    let out = match &a.replay {
        Some(file) => crate::replay::replay_to(&opts, file, a.trace.perfetto.as_deref())?,
        None => crate::run::run(&PluginOptions { metrics_listen: a.metrics_listen, ..opts }, &trace_options(a.trace))?,
    };
    if out.lost > 0 {
        eprintln!("wasmprobe: {} events delivered, {} lost", out.events, out.lost);
    }
    Ok(super::exit_code(out.exit_code))
}

pub(super) fn inspect(a: InspectArgs) -> Result<()> {
    let (plugin, args, allow) = (a.plugin.as_str(), a.args, a.allow.as_deref());
    let tracefs = Tracefs::open()?;
    let policy = policy(allow)?;
    let source = crate::plugin::PluginSource::parse(plugin);
    let sandbox = crate::plugin::Sandbox {
        memory_limit_bytes: a.memory_mib << 20,
        setup_budget: a.setup_budget,
        ..Default::default()
    };
    let mut p = crate::plugin::Plugin::load(&source, &sandbox, Box::new(crate::plugin::StdOutput::default()))?;
    let plan = p.init(&args, std::sync::Arc::new(crate::kernel_info::LiveKernel::new(&tracefs)))?;
    println!("plugin {plugin}: {} probe(s)", plan.probes.len());
    // A uprobe target that is not a program or library is refused when the run arms it.
    let mut target_refusal = None;
    for d in &plan.probes {
        let uprobe = matches!(d.kind, crate::plugin::ProbeKind::Uprobe | crate::plugin::ProbeKind::Uretprobe);
        let verdict = match uprobe.then(|| resolve_target(&d.target)) {
            _ if !policy.allows(d.kind) => "REFUSED by --allow".to_string(),
            Some(Err(e)) => {
                target_refusal.get_or_insert(format!("probe {}: {e}", d.name));
                format!("REFUSED: {e}")
            }
            _ => "allowed".to_string(),
        };
        // Everything the plugin chose is shown escaped and cut (see `plan::shown`).
        let shown = crate::plugin::plan::shown;
        let filter = d.filter.as_deref().map(|f| format!(" if {}", shown(f))).unwrap_or_default();
        let fields = d.fields.as_ref().map(|f| format!(" reads {}", shown(&f.join(",")))).unwrap_or_default();
        let (name, target, fetchargs) = (shown(&d.name), shown(&d.target), shown(&d.fetchargs));
        let stacks = match d.stacks.any() {
            true => format!(" stacks {}", d.stacks.name()),
            false => String::new(),
        };
        println!("  {:<10} {name:<16} {target} {fetchargs}{filter}{fields}{stacks}  [{verdict}]", d.kind.name());
    }
    if plan.probes.iter().any(|d| d.stacks.user) {
        println!(
            "note: user stacks follow frame pointers (ftrace's userstacktrace, at most 8 frames): code built without \
             them (-fomit-frame-pointer, the default of most -O builds) gives stacks that stop early, and a uprobe \
             on a function's first instruction does not see its direct caller"
        );
    }
    let groups = crate::run::dynamic_groups(&tracefs)?;
    let validated = plan.validate(&policy).and_then(|()| crate::plugin::plan::check_sources(&plan.probes, &groups));
    match (validated, target_refusal) {
        (Err(e), _) => println!("plan: refused: {e}"),
        (Ok(()), Some(e)) => println!("plan: refused: {e}"),
        (Ok(()), None) => println!("plan: valid under this policy"),
    }
    Ok(())
}
