//! Target 2: messages encoded, cut into chunks, decode to themselves.
#![no_main]

// Shared with the property tests; this target uses one of its properties.
#[allow(dead_code)]
#[path = "../../tests/props/codec.rs"]
mod props;

libfuzzer_sys::fuzz_target!(|input: props::Frames| props::round_trip(&input));
