//! `guestinit shell`: `run` with busybox as the payload and the init in
//! shell mode (an interactive shell on this terminal) or exec mode
//! (`--exec CMD`, its output streamed). The VM options are `run`'s.

use std::ffi::OsString;
use std::io::{self, IsTerminal};
use std::path::Path;

use guestinit::proto;

use crate::cli::{GuestMode, RunArgs, ShellArgs};
use crate::error::{Error, Result};
use crate::run::{self, Verdict};

pub fn main(args: ShellArgs) -> Result<Verdict> {
    let mode = match args.exec {
        Some(cmd) => GuestMode::Exec(cmd),
        None if io::stdin().is_terminal() => GuestMode::Shell,
        None => return Err(Error::NotATerminal),
    };
    if !Path::new(proto::path::BUSYBOX).is_file() {
        return Err(Error::NoBusybox {
            path: proto::path::BUSYBOX,
        });
    }
    let mut setup = args.setup;
    // The shell draws for the user's terminal, unless told otherwise.
    let term_given = setup
        .env
        .iter()
        .any(|v| v.as_encoded_bytes().starts_with(b"TERM="));
    if let (Some(term), false) = (std::env::var_os("TERM"), term_given) {
        let mut var = OsString::from("TERM=");
        var.push(term);
        setup.env.push(var);
    }
    run::main(RunArgs {
        initramfs: None,
        vm: args.vm,
        disks: args.disks,
        setup,
        bulk_log: None,
        stats_socket: None,
        trace: None,
        kernel_log: None,
        kernel_warnings: Default::default(),
        events: None,
        timeline: false,
        sched: args.sched,
        sched_run: args.sched_run,
        throttle_bulk: None,
        program: vec![proto::path::BUSYBOX.into()],
        mode,
    })
}
