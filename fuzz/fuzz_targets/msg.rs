//! The host's readers of structured payloads (KADR, WAIT, TIME, codes).
#![no_main]

// Shared with the property tests; this target uses one of its properties.
#[allow(dead_code)]
#[path = "../../tests/props/codec.rs"]
mod props;

libfuzzer_sys::fuzz_target!(|input: props::MsgInput| props::msg_payload(&input));
