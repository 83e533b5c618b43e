//! The host's control messages in shell and exec modes (docs/PROTOCOL.md):
//! the terminal's size, applied to the shell's PTY (the kernel then sends
//! SIGWINCH to its foreground job), and the dump and stop requests that
//! the wake bytes carry on hvc0 in test mode, where hvc0 is free.

use crate::byte_reader;
use crate::console::warning;
use crate::link::Link;
use crate::reactor::{Ctx, Interests, Rank, Source};
use crate::vports::{self, Wanted};
use crate::wake::sysrq_dump;
use guestinit::fmt::ErrnoText;
use guestinit::proto::{self, control, wake};
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

#[derive(Debug, PartialEq, Eq)]
pub enum Message {
    Dump,
    Stop,
    Resize { rows: u16, cols: u16 },
}

/// Messages from a byte stream that may split them anywhere.
#[derive(Default)]
pub struct Decoder {
    partial: [u8; control::RESIZE_LEN],
    len: usize,
}

impl Decoder {
    /// The message `byte` completes, if any; unknown kinds are passed over.
    pub fn push(&mut self, byte: u8) -> Option<Message> {
        if self.len == 0 {
            match byte {
                wake::DUMP => return Some(Message::Dump),
                wake::STOP => return Some(Message::Stop),
                control::RESIZE => {}
                _ => return None,
            }
        }
        self.partial[self.len] = byte;
        self.len += 1;
        if self.len < control::RESIZE_LEN {
            return None;
        }
        self.len = 0;
        let p = &self.partial;
        Some(Message::Resize {
            rows: u16::from_le_bytes([p[1], p[2]]),
            cols: u16::from_le_bytes([p[3], p[4]]),
        })
    }
}

pub struct Control {
    port: Option<OwnedFd>,
    /// The shell's PTY master, in shell mode.
    pty: Option<OwnedFd>,
    decoder: Decoder,
}

impl Control {
    pub fn new(port: OwnedFd, pty: Option<OwnedFd>) -> Control {
        Control {
            port: Some(port),
            pty,
            decoder: Decoder::default(),
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
        let bytes = byte_reader::read(&mut self.port, &mut buf, "the control port");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wake_bytes_inside_a_resize_are_its_size_and_unknown_bytes_are_skipped() {
        let stream = [b'?', wake::DUMP, control::RESIZE, wake::DUMP, 0, wake::STOP, 0, wake::STOP];
        let mut decoder = Decoder::default();
        let got: std::vec::Vec<Message> = stream.iter().filter_map(|&b| decoder.push(b)).collect();
        let size = Message::Resize { rows: 0xD1, cols: 0xD3 };
        assert_eq!(got, [Message::Dump, size, Message::Stop]);
    }
}
