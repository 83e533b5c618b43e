//! Target 5: the chunked line splitter every line reader goes through.
#![no_main]

// Shared with the property tests; this target uses one of its properties.
#[allow(dead_code)]
#[path = "../../tests/props/parsers.rs"]
mod props;

libfuzzer_sys::fuzz_target!(|input: props::LinesInput| props::lines(&input));
