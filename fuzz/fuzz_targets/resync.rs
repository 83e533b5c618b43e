//! Target 3: valid frames after garbage are recovered, per the decoder's guarantee.
#![no_main]

// Shared with the property tests; this target uses one of its properties.
#[allow(dead_code)]
#[path = "../../tests/props/codec.rs"]
mod props;

libfuzzer_sys::fuzz_target!(|input: props::Resync| {
    props::resync(&input);
});
