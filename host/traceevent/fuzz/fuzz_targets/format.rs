//! Format-file parsing and print-fmt compilation in both dialects (`traceevent_fuzz::format`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| traceevent_fuzz::format(data));
