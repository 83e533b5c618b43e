//! Parsers of the inputs the init reads (files and a command line that the
//! host wrote, the shares it mounts, kernel files, a disk's superblock) and of module metadata and
//! kernel images the host reads. None
//! allocates or panics, and each does work linear in its input: each is a
//! fuzz target.

pub mod args;
pub mod cmdline;
pub mod collect;
pub mod elf_note;
pub mod iomem;
pub mod kallsyms;
pub mod kernel_image;
pub mod kmsg;
pub mod lines;
pub mod modinfo;
pub mod newc;
pub mod num;
pub mod sched_script;
pub mod shares;
pub mod superblock;
