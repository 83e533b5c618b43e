//! Target: a bzImage's payload and an ELF's PVH note (the host reads any
//! kernel image a user names), against transcriptions of the boot
//! protocol's fields and of the notes' layout.
#![no_main]

// Shared with the property tests; this target uses one of its properties.
#[allow(dead_code)]
#[path = "../../tests/props/parsers.rs"]
mod props;

libfuzzer_sys::fuzz_target!(|data: &[u8]| props::kernel_image(data));
