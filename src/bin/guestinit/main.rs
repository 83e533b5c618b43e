//! guestinit, the host tool: packs an initramfs around a program and the
//! guest init, boots it in QEMU and relays the program's output and exit
//! code from the guest's frame stream. Exit statuses: see `error`. A VM's
//! run ends in a `run::Verdict` (said, then its status); the tool's own
//! failures are `error::Error`s.

// Unsafe code only in the smallest items that allow it, each with its `reason`.
#![deny(unsafe_code)]
// Its own lines go through `say`: std's print macros panic on a closed pipe.
#![cfg_attr(not(test), deny(clippy::print_stdout, clippy::print_stderr))]

mod cache;
mod cli;
mod collect;
mod decode;
mod disk;
mod dispositions;
mod error;
mod file_kind;
mod guest_path;
mod kernel;
mod locate;
mod matrix;
mod mkdisk;
mod net;
mod pack;
mod render;
mod run;
mod say;
mod scratch;
mod share;
mod shell;
#[cfg(test)]
mod testenv;
mod topology;

use std::process::ExitCode;

use cli::Command;
use run::Verdict;

fn main() -> ExitCode {
    let command = match cli::parse() {
        Ok(cli) => cli.command,
        Err(status) => return ExitCode::from(status),
    };
    let result = match command {
        Command::Run(args) => run::main(*args).map(Verdict::conclude),
        Command::Shell(args) => shell::main(*args).map(Verdict::conclude),
        Command::Mkdisk(args) => mkdisk::main(*args).map(Verdict::conclude),
        Command::Matrix(args) => matrix::main(*args),
        Command::Pack(args) => pack::main(*args).map(|()| 0),
        Command::Decode(args) => decode::main(args).map(|()| 0),
        Command::Cache(command) => run::cache_command(command).map(|()| 0),
        Command::Kernel(cli::KernelCommand::Fetch(args)) => {
            kernel::fetch_command(&args.spec, args.update, args.root).map(|()| 0)
        }
        Command::Kernel(cli::KernelCommand::List) => kernel::list_command().map(|()| 0),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            error.report();
            ExitCode::from(error.exit_code())
        }
    }
}
