//! Parsers of inputs the guest or host reads from files it does not control.
//! No allocation and no panics on any input: each is a fuzz target.

pub mod modinfo;
