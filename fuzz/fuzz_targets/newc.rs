//! The init's newc reader (`parse::newc`), which unpacks the handover's
//! archive, on archives written from any entries, edited anywhere, with any
//! bytes after them and read in any chunks: it makes the same calls as a
//! whole-input model for every chunking.
#![no_main]

// Shared with the property tests; this target uses one of its properties.
#[allow(dead_code)]
#[path = "../../tests/props/newc.rs"]
mod props;

libfuzzer_sys::fuzz_target!(|input: props::NewcInput| props::newc(&input));
