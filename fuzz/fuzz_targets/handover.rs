//! The init's decode of the handover header (`proto::handover`) on any
//! bytes: it agrees with a model of the contract's checks, and what it
//! accepts encodes back to the same bytes.
#![no_main]

// Shared with the property tests; this target uses one of its properties.
#[allow(dead_code)]
#[path = "../../tests/props/handover.rs"]
mod props;

libfuzzer_sys::fuzz_target!(|data: &[u8]| props::decode_bytes(data));
