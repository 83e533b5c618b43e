//! The /dev/kmsg record parser and the splat collector: no panic, bounded
//! splats that round-trip, and no splat from a user's record.
#![no_main]

#[path = "../../tests/props/kmsg.rs"]
mod props;

libfuzzer_sys::fuzz_target!(|data: &[u8]| props::kmsg(data));
