//! The payload's control socket ([`sched_ctl::SOCKET`]): the listener and
//! one connection at a time, polled as the scheduler source's descriptors.
//! A connection sends its request and shuts its side down within
//! [`REQUEST_MS`]; the scheduler source acts on it, and its outcome is the
//! reply, after which the connection closes. Others wait in the backlog
//! meanwhile: changes never overlap.

use crate::clock;
use crate::console::warning;
use crate::reactor::Interests;
use core::fmt::Write;
use guestinit::cell::TakeOnce;
use guestinit::fmt::{ErrnoText, SliceWriter};
use guestinit::proto::sched_ctl::{self, Code, Reply, Request, RequestError};
use rustix::event::PollFlags;
use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::Mode;
use rustix::io::Errno;
use rustix::net::{AddressFamily, SendFlags, SocketAddrUnix, SocketFlags, SocketType};

/// The tokens of the listener and the connection (the log's are 0 and 1).
pub const LISTENER: u8 = 2;
pub const CONN: u8 = 3;
/// A connection must have sent its whole request within this.
pub const REQUEST_MS: u64 = 5000;
/// A request, or /sched_args read for a restart, with room for a NUL.
const BUF: usize = sched_ctl::MAX_REQUEST + 1;
static BUFFER: TakeOnce<[u8; BUF]> = TakeOnce::new([0; BUF]);

struct Conn {
    fd: OwnedFd,
    /// The request's bytes so far, in the buffer.
    len: usize,
    deadline: u64,
    /// Its request is read whole: it waits for the outcome.
    read: bool,
}

pub struct Ctl {
    listener: OwnedFd,
    conn: Option<Conn>,
    buf: &'static mut [u8; BUF],
}

/// What a connection's readiness gave.
pub enum Event {
    Nothing,
    /// A whole request, or why it was refused (already answered).
    Request,
}

impl Ctl {
    /// The listening socket, made once the scheduler has attached; a
    /// failure is a warning (the payload's requests then find no socket).
    pub fn listen() -> Option<Ctl> {
        match bind() {
            Ok(listener) => Some(Ctl {
                listener,
                conn: None,
                buf: BUFFER.take()?,
            }),
            Err(e) => {
                warning!("the scheduler's control socket {}: {}", sched_ctl::SOCKET, ErrnoText(e));
                None
            }
        }
    }

    /// The listener while `accepting` and no request is served, or the
    /// connection while its request is incomplete.
    pub fn interests<'s>(&'s self, accepting: bool, out: &mut Interests<'s>) {
        match &self.conn {
            None if accepting => out.add(self.listener.as_fd(), PollFlags::IN, LISTENER),
            Some(c) if !c.read => out.add(c.fd.as_fd(), PollFlags::IN, CONN),
            _ => {}
        }
    }

    /// A connection's request that is taking too long.
    pub fn deadline(&self) -> Option<u64> {
        self.conn.as_ref().filter(|c| !c.read).map(|c| c.deadline)
    }

    pub fn on_deadline(&mut self) {
        if self.deadline().is_some_and(|at| at <= clock::now_ns()) {
            self.reply(Code::Refused, format_args!("refused: no whole request within {REQUEST_MS} ms"));
        }
    }

    pub fn on_ready(&mut self, token: u8) -> Event {
        match token {
            LISTENER => {
                let flags = SocketFlags::NONBLOCK | SocketFlags::CLOEXEC;
                if let Ok(fd) = rustix::net::accept_with(&self.listener, flags) {
                    let deadline = clock::now_ns() + REQUEST_MS * 1_000_000;
                    self.conn = Some(Conn { fd, len: 0, deadline, read: false });
                }
                Event::Nothing
            }
            CONN => self.read(),
            _ => Event::Nothing,
        }
    }

    fn read(&mut self) -> Event {
        let Some(c) = &mut self.conn else { return Event::Nothing };
        // One byte past the longest request tells a too-long one.
        match rustix::io::read(&c.fd, &mut self.buf[c.len..]) {
            Ok(0) => {
                c.read = true;
                if let Err(e) = self.request() {
                    self.reply(Code::Refused, format_args!("refused: {e}"));
                    return Event::Nothing;
                }
                Event::Request
            }
            Ok(n) if c.len + n < BUF => {
                c.len += n;
                Event::Nothing
            }
            Ok(_) => {
                self.reply(Code::Refused, format_args!("refused: {}", RequestError::TooLong));
                Event::Nothing
            }
            Err(Errno::AGAIN | Errno::INTR) => Event::Nothing,
            Err(_) => {
                self.conn = None;
                Event::Nothing
            }
        }
    }

    /// The request being served, decoded.
    pub fn request(&self) -> Result<Request<'_>, RequestError> {
        let len = self.conn.as_ref().map_or(0, |c| c.len);
        Request::decode(&self.buf[..len])
    }

    /// The buffer past the request (for /sched_args when a restart
    /// re-reads it), and the request's bytes.
    pub fn split_buf(&mut self) -> (&[u8], &mut [u8]) {
        let len = self.conn.as_ref().map_or(0, |c| c.len);
        let (req, rest) = self.buf.split_at_mut(len);
        (req, rest)
    }

    /// Answers the request being served and closes its connection.
    pub fn reply(&mut self, code: Code, text: core::fmt::Arguments<'_>) {
        let Some(c) = self.conn.take() else { return };
        let mut line = [0u8; sched_ctl::MAX_TEXT];
        let mut w = SliceWriter::new(&mut line);
        let _ = w.write_fmt(text);
        let mut out = [0u8; sched_ctl::MAX_TEXT + 1];
        let n = Reply { code, text: w.written() }.encode(&mut out);
        // The client waits for it; one that left gets nothing (no SIGPIPE).
        let _ = rustix::net::send(&c.fd, &out[..n], SendFlags::NOSIGNAL);
    }
}

/// The directory (0700), the socket bound in it and listening.
fn bind() -> Result<OwnedFd, Errno> {
    match rustix::fs::mkdir(sched_ctl::DIR, Mode::from_raw_mode(0o700)) {
        Ok(()) | Err(Errno::EXIST) => {}
        Err(e) => return Err(e),
    }
    let (fd, addr) = socket(SocketFlags::NONBLOCK)?;
    // The 0700 directory keeps it the payload's (root's): no chmod.
    rustix::net::bind(&fd, &addr)?;
    rustix::net::listen(&fd, 4)?;
    Ok(fd)
}

/// A unix stream socket and the control socket's address, for the
/// listener and the client alike (one copy of the address code).
#[inline(never)]
pub fn socket(flags: SocketFlags) -> Result<(OwnedFd, SocketAddrUnix), Errno> {
    let addr = SocketAddrUnix::new(sched_ctl::SOCKET)?;
    let fd = rustix::net::socket_with(AddressFamily::UNIX, SocketType::STREAM, flags | SocketFlags::CLOEXEC, None)?;
    Ok((fd, addr))
}
