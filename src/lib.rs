//! guestinit's no_std core: the wire codec, the buffer pool and frame queue,
//! the raw syscall layer (feature `sys`) and the parsers of guest-side
//! inputs. Host-testable; std only in tests.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

#[allow(unsafe_code)]
pub mod cell;
pub mod fmt;
pub mod outbox;
pub mod parse;
pub mod pool;
pub mod proto;
// The init's alone; the codec and the parsers never import it.
#[cfg(feature = "sys")]
#[allow(unsafe_code)]
pub mod sys;
pub mod wire;
