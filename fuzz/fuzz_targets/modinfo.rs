//! Target 5: the `.modinfo` section parser, against a model. Out of the
//! build until src/parse/modinfo.rs is merged (see fuzz/Cargo.toml).
#![no_main]

#[path = "../../tests/props/modinfo.rs"]
mod props;

libfuzzer_sys::fuzz_target!(|data: &[u8]| props::modinfo(data));
