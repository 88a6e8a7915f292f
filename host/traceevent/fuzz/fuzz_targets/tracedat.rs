//! trace.dat reading, v6 and v7 (`traceevent_fuzz::tracedat`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| traceevent_fuzz::tracedat(data));
