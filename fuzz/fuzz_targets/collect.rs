//! The host's receiver of `--collect` (src/bin/guestinit/run/collect.rs)
//! on any frames from the guest: the records' decoders, the path check,
//! and that nothing is written outside HOST_DIR.
#![no_main]

// Shared with the property tests; this target uses two of its properties.
#[allow(dead_code)]
#[path = "../../tests/props/collect.rs"]
mod props;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    props::records(data);
    props::receiver_frames(data);
});
