//! The init's own modules as host unit tests (`cargo test --test
//! init_units`): the module tree of main.rs, linked with std. What only the
//! entry point reaches is unused here.
#![allow(dead_code)]
#![deny(unsafe_code)]

include!("tree.rs");
