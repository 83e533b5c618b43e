//! The init's decoder of the payload's scheduler requests on any bytes.
#![no_main]

// Shared with the property tests; this target uses one of its properties.
#[allow(dead_code)]
#[path = "../../tests/props/sched_ctl.rs"]
mod props;

libfuzzer_sys::fuzz_target!(|data: &[u8]| props::decode_bytes(data));
