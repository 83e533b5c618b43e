//! The host's control messages (docs/PROTOCOL.md) as a source, on the
//! control port in shell and exec modes and on hvc0 in test mode, where
//! hvc0 is free: a dump, a stop, and the terminal's size, applied to the
//! shell's PTY (the kernel then sends SIGWINCH to its foreground job). The
//! library's decoder reads them, and this source's `apply` acts on them, in
//! every mode.

use crate::byte_reader;
use crate::console::warning;
use crate::link::Link;
use crate::reactor::{Ctx, Interests, Rank, Source};
use crate::small_file::write_file;
use crate::vports::{self, Wanted};
use guestinit::fmt::ErrnoText;
use guestinit::proto;
use guestinit::proto::control::{Decoder, Message};
use rustix::event::PollFlags;
use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::OFlags;
use rustix::termios::{tcsetwinsize, Winsize};

/// How long the control port may take to appear once the bulk port has.
const WAIT_MS: u64 = 1000;

/// The control port; a warning when the host gave none.
pub fn open_port() -> Option<OwnedFd> {
    let wanted = Wanted {
        names: &[proto::CONTROL_PORT],
        unnamed: None,
    };
    let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    vports::open(&wanted, flags, WAIT_MS)
        .map_err(|_| warning!("no {} port: no resize, dump or stop from the host", proto::CONTROL_PORT))
        .ok()
}

pub struct Control {
    /// The control port, or hvc0 in test mode.
    port: Option<OwnedFd>,
    /// What `port` is, for a warning.
    name: &'static str,
    /// The shell's PTY master, in shell mode.
    pty: Option<OwnedFd>,
    decoder: Decoder,
}

impl Control {
    /// Shell and exec modes: the control port, with the shell's PTY in shell mode.
    pub fn new(port: OwnedFd, pty: Option<OwnedFd>) -> Control {
        Control {
            port: Some(port),
            name: "the control port",
            pty,
            decoder: Decoder::default(),
        }
    }

    /// Test mode: hvc0 (`wake::open`), where a size has no terminal to go to.
    pub fn on_hvc0(tty: OwnedFd) -> Control {
        Control {
            name: "hvc0",
            ..Control::new(tty, None)
        }
    }

    fn apply(&self, message: Message, ctx: &mut Ctx<'_>) {
        match message {
            Message::Dump => sysrq_dump(),
            Message::Stop => ctx.stop_run(),
            Message::Resize { rows, cols } => {
                let Some(pty) = &self.pty else { return };
                let size = Winsize {
                    ws_row: rows,
                    ws_col: cols,
                    ws_xpixel: 0,
                    ws_ypixel: 0,
                };
                if let Err(e) = tcsetwinsize(pty, size) {
                    warning!("set the shell's window size: {}", ErrnoText(e));
                }
            }
        }
    }
}

impl Source for Control {
    fn rank(&self) -> Rank {
        Rank::Relay
    }

    fn interests<'s>(&'s self, _link: &Link, out: &mut Interests<'s>) {
        if let Some(port) = &self.port {
            out.add(port.as_fd(), PollFlags::IN, 0);
        }
    }

    fn on_ready(&mut self, _token: u8, _events: PollFlags, ctx: &mut Ctx<'_>) {
        let mut buf = [0u8; 64];
        let bytes = byte_reader::read(&mut self.port, &mut buf, self.name);
        for &byte in bytes {
            if let Some(message) = self.decoder.push(byte) {
                self.apply(message, ctx);
            }
        }
    }

    fn cleanup(&mut self, _ctx: &mut Ctx<'_>) {
        self.port = None;
    }

    fn done(&self) -> bool {
        self.port.is_none()
    }
}

/// SysRq D: sched_ext writes its debug dump to the trace.
fn sysrq_dump() {
    if let Err(e) = write_file(b"/proc/sysrq-trigger", b"D") {
        warning!("SysRq D for a debug dump: {}", ErrnoText(e));
    }
}
