//! Shell mode's console: the user's keys to hvc0, hvc0 to stdout, in the
//! run's reactor. Ctrl-A is the escape key, as in QEMU: Ctrl-A X quits the
//! VM, Ctrl-A Ctrl-A sends one Ctrl-A; every other key goes as it is
//! (Ctrl-C too: the guest's PTY makes it SIGINT for the shell's job).

use std::fs::File;
use std::io::Write;
use std::os::unix::net::UnixStream;

use guestinit::proto::control::{Encoded, Message};
use rustix::termios::tcgetwinsize;

use super::diag::Diagnostics;
use super::flow::{read_ready, Flow};
use super::gate::Gate;
use super::spool::Spool;

const CTRL_A: u8 = 0x01;
/// Keys not yet taken by the guest past which stdin is no longer read.
const PENDING_MAX: usize = 64 << 10;

/// The Ctrl-A escape: what typed bytes mean.
#[derive(Debug, Default)]
pub struct Escape {
    /// The last byte was a lone Ctrl-A.
    armed: bool,
}

impl Escape {
    /// Appends to `out` what `input` sends to the guest; true at Ctrl-A X
    /// (the bytes after it are not looked at). Ctrl-A and an unknown key
    /// send nothing, as in QEMU.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> bool {
        for &byte in input {
            match (std::mem::take(&mut self.armed), byte) {
                (true, b'x' | b'X') => return true,
                (true, CTRL_A) => out.push(CTRL_A),
                (true, _) => {}
                (false, CTRL_A) => self.armed = true,
                (false, _) => out.push(byte),
            }
        }
        false
    }
}

/// The terminal's rows and columns, when it knows them.
pub fn window_size(tty: &File) -> Option<(u16, u16)> {
    tcgetwinsize(super::terminal::borrow(tty))
        .ok()
        .map(|w| (w.ws_row, w.ws_col))
        .filter(|&(rows, cols)| rows > 0 && cols > 0)
}

/// The control message that gives the guest's shell this size.
pub fn resize_message(rows: u16, cols: u16) -> Encoded {
    Message::Resize { rows, cols }.encode()
}

pub struct Console {
    /// The user's terminal (raw, non-blocking).
    pub input: File,
    pub hvc0: UnixStream,
    stdout: Spool,
    escape: Escape,
    /// Keys the guest has not taken yet.
    pending: Vec<u8>,
    /// The user asked to quit (Ctrl-A X).
    pub quit: bool,
    /// The guest's output so far ends a line (or there is none).
    at_line_start: bool,
    /// stdout's spool: hvc0 is read while it has room.
    pub gate: Gate,
}

impl Console {
    pub fn new(input: File, hvc0: UnixStream, stdout: Spool, diag: &Diagnostics) -> Console {
        Console {
            input,
            hvc0,
            gate: Gate::new(diag).feeds(Some(&stdout), "stdout"),
            stdout,
            escape: Escape::default(),
            pending: Vec::new(),
            quit: false,
            at_line_start: true,
        }
    }

    /// Ends the guest's last line, so that guestinit's own words after the
    /// run start on a line of their own.
    pub fn finish_line(&mut self) {
        if !self.at_line_start {
            self.stdout.push(b"\r\n");
            self.at_line_start = true;
        }
    }

    /// Reads the user's keys; `Closed` at the terminal's end (a hang-up).
    pub fn on_input(&mut self) -> Flow {
        if self.pending.len() >= PENDING_MAX || self.quit {
            return Flow::Open;
        }
        let mut chunk = [0u8; 4096];
        read_ready(&self.input, &mut chunk, |keys| {
            self.quit = self.escape.feed(keys, &mut self.pending);
            send(&self.hvc0, &mut self.pending);
            (self.pending.len() >= PENDING_MAX || self.quit).then_some(Flow::Open)
        })
        .unwrap_or(Flow::Closed)
    }

    /// hvc0 is readable or writable: the guest's output to stdout, and
    /// keys that waited for room; `Closed` when QEMU is gone.
    pub fn on_hvc0(&mut self) -> Flow {
        let was_full = self.pending.len() >= PENDING_MAX;
        send(&self.hvc0, &mut self.pending);
        if was_full && self.pending.len() < PENDING_MAX {
            // Input was left unread while full: its readiness was spent.
            let _ = self.on_input();
        }
        if !self.gate.open() {
            return Flow::Paused;
        }
        let mut chunk = [0u8; 16 * 1024];
        read_ready(&self.hvc0, &mut chunk, |output| {
            self.stdout.push(output);
            self.at_line_start = output.last() == Some(&b'\n');
            (!self.gate.open()).then_some(Flow::Paused)
        })
        .unwrap_or(Flow::Closed)
    }
}

/// Writes what the guest takes of the pending keys.
fn send(mut hvc0: &UnixStream, pending: &mut Vec<u8>) {
    while !pending.is_empty() {
        match hvc0.write(pending) {
            Ok(n) => {
                pending.drain(..n);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            // WouldBlock: hvc0's writable event calls again. Another
            // error: QEMU is gone, and its exit ends the run.
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(input: &[&[u8]]) -> (Vec<u8>, bool) {
        let mut escape = Escape::default();
        let mut out = Vec::new();
        let quit = input.iter().any(|chunk| escape.feed(chunk, &mut out));
        (out, quit)
    }

    #[test]
    fn keys_pass_as_they_are_and_ctrl_a_ctrl_a_sends_one_ctrl_a() {
        assert_eq!(typed(&[b"ls\r\x03"]), (b"ls\r\x03".to_vec(), false));
        assert_eq!(typed(&[b"a\x01\x01b"]), (b"a\x01b".to_vec(), false));
        // The escape may end one read and its key start the next.
        assert_eq!(typed(&[b"a\x01", b"\x01b"]), (b"a\x01b".to_vec(), false));
        assert_eq!(typed(&[b"\x01\x01\x01\x01"]), (b"\x01\x01".to_vec(), false));
    }

    #[test]
    fn ctrl_a_x_quits_and_an_unknown_escape_is_dropped() {
        assert_eq!(typed(&[b"ab\x01", b"x", b"cd"]), (b"ab".to_vec(), true));
        assert_eq!(typed(&[b"\x01X"]), (Vec::new(), true));
        assert_eq!(typed(&[b"\x01qz"]), (b"z".to_vec(), false));
        // A plain x is just a key.
        assert_eq!(typed(&[b"x\x01"]), (b"x".to_vec(), false));
    }
}
