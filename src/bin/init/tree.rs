// The init's module tree, shared by the binary (main.rs) and its host unit
// tests (units.rs), which link the same modules with std.
mod backlog;
mod boot;
mod byte_reader;
mod collect;
mod clock;
mod console;
mod control;
mod crash;
mod disks;
mod environ;
mod failure;
mod handover;
mod kernel_addrs;
mod kmsg;
mod link;
mod modules;
mod mounts;
mod net;
mod output;
mod payload;
mod power;
mod pty;
mod reactor;
mod rss;
mod serial_drain;
mod sched;
mod shares;
mod shell;
mod small_file;
mod spawn;
mod stats_lines;
mod stats_relay;
mod stdin_relay;
#[cfg(test)]
mod test_pipe;
#[cfg(test)]
mod testkit;
mod trace;
mod tty_relay;
mod vports;
mod wake;
