//! Recurses without end, in the call `--arg at=init|event|finish` names (default init): the
//! guest's stack overflows, which must be a clear trap, not a crash of the host. `--arg
//! stack=shadow` (default) overflows the stack Rust keeps in linear memory (big frames);
//! `--arg stack=native` the engine's own call stack (frames of wasm locals only).

use wasmprobe_guest::{Args, Event, Plan, Plugin};

#[derive(Default)]
struct Deep {
    at: String,
    native: bool,
}

#[inline(never)]
#[allow(unconditional_recursion)]
fn down(n: u64, pad: [u64; 16]) -> u64 {
    let mut next = std::hint::black_box(pad);
    next[(n % 16) as usize] = n;
    down(n + 1, next).wrapping_add(next[0])
}

/// No linear memory: every frame is wasm locals, on the engine's stack.
#[inline(never)]
#[allow(unconditional_recursion)]
fn native(n: u64) -> u64 {
    native(std::hint::black_box(n + 1)).wrapping_mul(3).wrapping_add(n)
}

fn overflow(native_stack: bool) {
    if native_stack {
        std::hint::black_box(native(0));
    } else {
        std::hint::black_box(down(0, [0; 16]));
    }
}

impl Plugin for Deep {
    fn init(&mut self, args: &Args) -> Result<Plan, String> {
        self.at = args.get("at").unwrap_or("init").to_string();
        self.native = args.get("stack") == Some("native");
        if self.at == "init" {
            overflow(self.native);
        }
        let mut plan = Plan::new();
        plan.tracepoint("enter", "raw_syscalls:sys_enter");
        Ok(plan)
    }

    fn on_event(&mut self, _ev: &Event) {
        if self.at == "event" {
            overflow(self.native);
        }
    }

    fn finish(&mut self) {
        if self.at == "finish" {
            overflow(self.native);
        }
    }
}

wasmprobe_guest::export!(Deep);
