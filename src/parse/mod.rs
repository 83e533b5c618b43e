//! Parsers of the inputs the init reads: files and a command line that the
//! host wrote, and kernel files. None allocates or panics, and each does
//! work linear in its input.

pub mod lines;
pub mod num;
