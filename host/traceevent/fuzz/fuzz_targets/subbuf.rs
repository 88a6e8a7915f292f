//! Sub-buffer parsing and record printing (`traceevent_fuzz::subbuf`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| traceevent_fuzz::subbuf(data));
