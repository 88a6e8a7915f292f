//! `wasmprobe agent --config FILE [--check]`.

use anyhow::Result;

use super::args::AgentArgs;

pub(super) fn agent(a: AgentArgs) -> Result<()> {
    if a.check {
        println!("{}", crate::agent::check(&a.config)?);
        return Ok(());
    }
    let mut agent = crate::agent::Agent::new(&a.config)?;
    let listen = a.metrics_listen.or_else(|| agent.config().metrics_listen.clone());
    if let Some(addr) = listen {
        let bound = crate::agent::metrics::serve(&addr, agent.metrics(), agent.ready_flag())?;
        eprintln!("wasmprobe: agent: metrics on http://{bound}/metrics");
    }
    agent.run()
}
