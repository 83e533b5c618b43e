//! guestinit, the host tool: packs an initramfs around a program and the
//! guest init, boots it in QEMU and relays the program's output and exit
//! code from the guest's frame stream. Exit statuses: see `error`.

// Unsafe code only in the smallest items that allow it, each with its `reason`.
#![deny(unsafe_code)]

mod cli;
mod decode;
mod disk;
mod dispositions;
mod error;
mod locate;
mod mkdisk;
mod pack;
mod render;
mod run;
mod scratch;
mod shell;
#[cfg(test)]
mod testenv;

use std::process::ExitCode;

use cli::Command;

fn main() -> ExitCode {
    let command = match cli::parse() {
        Ok(cli) => cli.command,
        Err(status) => return ExitCode::from(status),
    };
    let result = match command {
        Command::Run(args) => run::main(*args),
        Command::Shell(args) => shell::main(*args),
        Command::Mkdisk(args) => mkdisk::main(*args),
        Command::Pack(args) => pack::main(*args).map(|()| 0),
        Command::Decode(args) => decode::main(args).map(|()| 0),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            error.report();
            ExitCode::from(error.exit_code())
        }
    }
}
