//! guestinit's no_std core: the wire codec, the buffer pool, the raw syscall
//! layer and the parsers of guest-side inputs. Host-testable; std only in tests.
#![cfg_attr(not(test), no_std)]

pub mod parse;
pub mod wire;
