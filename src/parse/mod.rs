//! Parsers of the inputs the init reads: files and a command line that the
//! host wrote, and kernel files. None allocates or panics, and each does
//! work linear in its input.

pub mod args;
pub mod cmdline;
pub mod iomem;
pub mod kallsyms;
pub mod lines;
pub mod num;
pub mod sched_script;
