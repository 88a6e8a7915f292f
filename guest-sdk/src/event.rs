//! One event, as a plugin's `on_event` sees it.

use std::borrow::Cow;
use std::rc::Rc;

use wasmprobe_abi::batch::{StackTrailer, KSTACK, USTACK, USTACK_TRUNCATED};

use crate::stacks::Stack;
use crate::{CommCache, Field, ProbeId, ProbeInfo, Record};

/// An event delivered to [`crate::Plugin::on_event`]: header fields plus named field access.
///
/// Field accessors take the field's name as a `&'static str` (a literal): the first access per
/// probe resolves it to an offset, later ones reuse that. Missing fields read as 0 / "".
pub struct Event<'a> {
    pub(crate) rec: Record<'a>,
    pub(crate) probe: &'a ProbeInfo,
    pub(crate) comms: &'a CommCache,
    /// The record's stack trailer (`wasmprobe_abi::batch::StackTrailer`); empty without stacks.
    pub(crate) stacks: &'a [u8],
}

impl<'a> Event<'a> {
    /// The probe that fired; compare with the [`ProbeId`] that [`crate::Plan`] returned.
    pub fn probe(&self) -> ProbeId {
        self.probe.id
    }

    /// The plugin's name for the probe that fired.
    pub fn probe_name(&self) -> &'a str {
        &self.probe.name
    }

    /// The task id (common_pid) of the event.
    pub fn pid(&self) -> i32 {
        self.rec.pid
    }

    /// The command name of [`Event::pid`] (asked of the host once per pid and batch);
    /// `<...>` when unknown, as the kernel prints it.
    pub fn comm(&self) -> Rc<str> {
        self.comms.get(self.rec.pid)
    }

    /// Timestamp in nanoseconds (the trace clock).
    pub fn ts(&self) -> u64 {
        self.rec.ts
    }

    /// The CPU whose ring buffer held the event.
    pub fn cpu(&self) -> u32 {
        self.rec.cpu
    }

    /// The raw event payload (common fields first), for decoding by hand.
    pub fn payload(&self) -> &'a [u8] {
        self.rec.payload
    }

    /// The layout of field `name`, if the event has it.
    pub fn field(&self, name: &'static str) -> Option<&'a Field> {
        self.probe.field(name)
    }

    /// Field `name` as text: a string field (`__data_loc char[]`, `char[16]`) up to its NUL,
    /// lossily decoded; an integer in decimal; "" when absent.
    pub fn str(&self, name: &'static str) -> Cow<'a, str> {
        match self.probe.field(name) {
            Some(f) => f.str(self.rec.payload),
            None => Cow::Borrowed(""),
        }
    }

    /// Integer field `name` as u64 (signed fields sign-extended first); 0 when absent.
    #[inline(always)]
    pub fn u64(&self, name: &'static str) -> u64 {
        self.try_u64(name).unwrap_or(0)
    }

    /// Integer field `name` as i64; 0 when absent.
    #[inline(always)]
    pub fn i64(&self, name: &'static str) -> i64 {
        self.probe.read_i64(name, self.rec.payload).unwrap_or(0)
    }

    /// Integer field `name`, or `None` if the event has no such integer field.
    #[inline(always)]
    pub fn try_u64(&self, name: &'static str) -> Option<u64> {
        self.probe.read_i64(name, self.rec.payload).map(|v| v as u64)
    }

    /// The bytes of field `name` (what a `__data_loc` field locates, else the field itself).
    pub fn field_bytes(&self, name: &'static str) -> Option<&'a [u8]> {
        self.probe.field(name).and_then(|f| f.bytes(self.rec.payload))
    }

    /// The kernel call stack of the event, innermost frame first, if its probe asked for it
    /// ([`crate::Plan::kstack`]) and the host matched one to the event.
    pub fn kstack(&self) -> Option<Stack<'a>> {
        let t = StackTrailer::parse(self.stacks)?;
        (t.flags & KSTACK != 0).then_some(Stack { frames: t.kernel, truncated: false })
    }

    /// The user-space call stack of the task, innermost frame first, if its probe asked for
    /// it ([`crate::Plan::ustack`]) and the host matched one to the event.
    pub fn ustack(&self) -> Option<Stack<'a>> {
        let t = StackTrailer::parse(self.stacks)?;
        (t.flags & USTACK != 0).then_some(Stack { frames: t.user, truncated: t.flags & USTACK_TRUNCATED != 0 })
    }

    /// Like [`Event::field`] for a name built at run time (a linear search each call).
    pub fn field_by_name(&self, name: &str) -> Option<&'a Field> {
        self.probe.field_by_name(name)
    }
}
