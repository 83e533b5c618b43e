//! Target 4: the encoder into buffers of any size.
#![no_main]

// Shared with the property tests; this target uses one of its properties.
#[allow(dead_code)]
#[path = "../../tests/props/codec.rs"]
mod props;

libfuzzer_sys::fuzz_target!(|input: props::EncodeInto| props::encode_into(&input));
