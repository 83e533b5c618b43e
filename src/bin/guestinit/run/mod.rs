//! `guestinit run`: pack (or take) an initramfs, boot it in QEMU, relay the
//! payload's output from the bulk port, and turn the end of the VM into an
//! exit status (see `crate::error` for the codes).

mod qemu;
pub mod sched;
mod serial;
mod stream;
mod timeline;

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::time::Duration;

use crate::cli::{Compress, RunArgs};
use crate::error::{Error, Result};
use crate::locate;
use crate::pack;
use crate::scratch::ScratchDir;
use guestinit::proto;

use stream::{End, PumpOptions, Relay};

/// Lines of COM1 shown when the VM ends without an exit code.
const COM1_TAIL_LINES: usize = 20;

pub fn main(args: RunArgs) -> Result<u8> {
    let scratch = ScratchDir::new("run").map_err(|source| Error::VmSetup {
        what: "creating a temporary directory".into(),
        source,
    })?;
    let dir = scratch.path();
    let kernel = locate::kernel(args.kernel.as_deref())?;
    let initrd = match &args.initramfs {
        Some(path) if path.is_file() => path.clone(),
        Some(path) => {
            return Err(Error::Read {
                path: path.clone(),
                source: io::ErrorKind::NotFound.into(),
            })
        }
        None => {
            let spec = pack::Spec {
                argv: args.program.clone(),
                init: args.init.clone(),
                kernel: Some(kernel.clone()),
                modules: args.modules.clone(),
                sched: args.sched.clone(),
            };
            let path = dir.join("initramfs.cpio");
            pack::write(&pack::plan(&spec)?, &path, Compress::None)?;
            path
        }
    };
    let com1 = args
        .com1_log
        .clone()
        .unwrap_or_else(|| dir.join("com1.log"));
    let com2 = args
        .com2_log
        .clone()
        .unwrap_or_else(|| dir.join("com2.log"));
    let mut bulk_log = match &args.bulk_log {
        Some(path) => Some(BufWriter::new(File::create(path).map_err(|source| {
            Error::Write {
                path: path.clone(),
                source,
            }
        })?)),
        None => None,
    };

    // Listen before QEMU starts: it connects as a client, so the host's
    // reader exists before the guest can send a byte.
    let socket = dir.join("bulk.sock");
    let listener = UnixListener::bind(&socket).map_err(|source| Error::VmSetup {
        what: format!("listening on {}", socket.display()),
        source,
    })?;
    let accel = qemu::detect_accel();
    let with_scheduler = args.sched.scheduler.is_some();
    let append = sched::append(
        args.append.as_deref(),
        with_scheduler,
        &args.sched_run,
        accel,
    );
    let qemu_args = qemu::args(&qemu::VmConfig {
        accel,
        kernel: &kernel,
        initrd: &initrd,
        memory_mib: args.memory,
        cpus: args.cpus,
        append: append.as_deref(),
        com1: &com1,
        com2: &com2,
        bulk_socket: &socket,
    });
    if args.verbose {
        let shown: Vec<_> = qemu_args.iter().map(|a| a.to_string_lossy()).collect();
        eprintln!("guestinit: {} {}", qemu::QEMU, shown.join(" "));
    }

    let mut vm = qemu::Vm::spawn(&qemu_args, &dir.join("qemu.stderr"))?;
    let deadline = args
        .timeout
        .map(|secs| vm.spawned + Duration::from_secs(secs));
    let timed_out = || Error::Timeout {
        secs: args.timeout.unwrap_or_default(),
    };
    let Some(mut stream) = vm.accept(&listener, deadline)? else {
        return Err(timed_out());
    };
    stream
        .set_read_timeout(Some(stream::READ_TICK))
        .map_err(|source| Error::VmSetup {
            what: "setting up the bulk socket".into(),
            source,
        })?;
    let stdout = io::stdout();
    let stderr = io::stderr();
    let mut relay = Relay::new(stdout.lock(), stderr.lock(), args.verbose);
    let options = PumpOptions {
        log: bulk_log.as_mut().map(|w| w as &mut dyn Write),
        throttle_kib: args.throttle_bulk,
        deadline,
    };
    // The pump's only errors are those of writing the bulk log.
    let end = stream::pump(&mut stream, &mut relay, options).map_err(|source| Error::Write {
        path: args.bulk_log.clone().unwrap_or_default(),
        source,
    })?;
    let collected = relay.into_collected();
    let status = match end {
        End::Closed => vm.wait(deadline)?,
        End::Deadline => None,
    };

    if args.timeline {
        let spawn_to_exit = collected
            .exit_at
            .map(|at| at.saturating_duration_since(vm.spawned));
        eprint!(
            "{}",
            timeline::report(&collected.timeline, collected.wait.as_ref(), spawn_to_exit)
        );
    }
    let fatal = serial::first_line_starting(&serial::read_log(&com2), proto::prefix::FATAL)
        .map(str::to_owned);
    if let Some(path) = &args.sched_run.sched_log {
        sched::save_log(&collected.sched, path)?;
    }
    let sched_failed = sched::verdict(&collected.sched, collected.exit_code, fatal.as_deref());
    let outcome = match (status, collected.exit_code, fatal) {
        (None, _, _) => Err(timed_out()),
        // The init's EXIT after a FATAL line only tells a ktstr-style host
        // that the run failed; the line says why.
        (Some(_), _, Some(line)) => Err(Error::Fatal { line }),
        // As a shell reports exit(-1): the code modulo 256.
        (Some(_), Some(code), None) => Ok((code & 0xff) as u8),
        (Some(status), None, None) if !status.success() => Err(Error::QemuFailed {
            status,
            stderr: vm.stderr(),
        }),
        (Some(_), None, None) => Err(diagnose(&com1, &com2)),
    };
    // The scheduler's failure explains the exit code or FATAL line it caused.
    let outcome = match sched_failed {
        Some(e) if status.is_some() => Err(e),
        _ => outcome,
    };
    if outcome.is_err() && !collected.dmsg.is_empty() {
        eprintln!("guestinit: kernel log sent by the init:");
        eprintln!("{}", String::from_utf8_lossy(&collected.dmsg).trim_end());
    }
    outcome
}

/// Why a VM that exited cleanly sent no exit code, from the serial logs.
/// FATAL is checked first: it is the root cause of anything that went wrong
/// after it.
fn diagnose(com1: &Path, com2: &Path) -> Error {
    let com2_text = serial::read_log(com2);
    if let Some(line) = serial::first_line_starting(&com2_text, proto::prefix::FATAL) {
        return Error::Fatal { line: line.into() };
    }
    if let Some(line) = serial::first_line_starting(&com2_text, proto::prefix::PANIC) {
        return Error::InitPanic { line: line.into() };
    }
    Error::NoExit {
        com1_tail: serial::last_lines(&serial::read_log(com1), COM1_TAIL_LINES),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn diagnosed(com1: &str, com2: Option<&str>) -> Error {
        let dir = ScratchDir::new("test").unwrap();
        let (p1, p2) = (dir.path().join("com1"), dir.path().join("com2"));
        fs::write(&p1, com1).unwrap();
        if let Some(text) = com2 {
            fs::write(&p2, text).unwrap();
        }
        diagnose(&p1, &p2)
    }

    #[test]
    fn com2_lines_decide_between_253_254_and_251() {
        let e = diagnosed("", Some("x\r\nPANIC: init: bad\r\n"));
        assert_eq!(
            (e.exit_code(), e.to_string()),
            (253, "init crashed: PANIC: init: bad".into())
        );
        let e = diagnosed("", Some("PANIC: later\nFATAL: no /.guestinit-complete\n"));
        assert_eq!(e.exit_code(), 254);
        assert_eq!(e.to_string(), "init failed: FATAL: no /.guestinit-complete");
        let com1: String = (0..25).map(|i| format!("k{i}\n")).collect();
        let e = diagnosed(&com1, None);
        assert_eq!(e.to_string(), "VM ended without an exit code");
        match e {
            Error::NoExit { com1_tail } => {
                assert_eq!(com1_tail.lines().count(), COM1_TAIL_LINES);
                assert!(com1_tail.starts_with("k5\n") && com1_tail.ends_with("k24"));
            }
            other => panic!("{other:?}"),
        }
    }
}
