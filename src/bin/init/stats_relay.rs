//! The scheduler's stats socket (scx_stats' JSON lines), relayed to the
//! host's stats port, bytes unchanged both ways with backpressure. The
//! socket appears once the scheduler has started, and again if it
//! restarts: without one, connecting is retried every 250 ms (the folder
//! itself may not exist yet, so there is nothing to watch), and each
//! request line meanwhile gets one error line in scx_stats' shape, so no
//! client is left hanging. Every request line gets exactly one line back
//! (`stats_lines`), also when the scheduler goes away mid-request: the
//! host pairs replies with requests by their order.

use crate::backlog::Backlog;
use crate::clock;
use guestinit::cell::TakeOnce;
use crate::link::Link;
use crate::reactor::{Ctx, Interests, Rank, Source};
use crate::stats_lines::{Lines, REPLY_MAX};
use crate::vports::{self, Wanted};
use core::fmt::Write;
use guestinit::fmt::SliceWriter;
use guestinit::proto;
use rustix::event::PollFlags;
use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::OFlags;
use rustix::io::Errno;
use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};

/// How long the stats port may take to appear once the bulk port has.
const WAIT_MS: u64 = 1000;
const RETRY_MS: u64 = 250;

const PORT: u8 = 0;
const SOCKET: u8 = 1;

/// The stats port, when the host asked for one.
pub fn open_port() -> Option<OwnedFd> {
    let wanted = Wanted {
        names: &[proto::STATS_PORT, proto::KTSTR_STATS_PORT],
        unnamed: None,
    };
    let flags = OFlags::RDWR | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    vports::open(&wanted, flags, WAIT_MS).ok()
}

/// In .bss, not in the relay: the relay lives in a stack frame, which
/// stack probes make resident whole, used or not.
static BACKLOGS: TakeOnce<[Backlog<4096>; 2]> = TakeOnce::new([Backlog::new(), Backlog::new()]);

pub struct StatsRelay {
    port: Option<OwnedFd>,
    socket: Option<OwnedFd>,
    /// Host to scheduler.
    to_socket: &'static mut Backlog<4096>,
    /// Scheduler (or the error lines) to host.
    to_port: &'static mut Backlog<4096>,
    /// Why the last connect failed: what the error lines say.
    errno: Errno,
    retry_at: u64,
    lines: Lines,
}

impl StatsRelay {
    pub fn new(port: OwnedFd) -> StatsRelay {
        let [to_socket, to_port] = BACKLOGS.take().expect("one stats relay per boot");
        StatsRelay {
            port: Some(port),
            socket: None,
            to_socket,
            to_port,
            errno: Errno::NOENT,
            retry_at: clock::now_ns(),
            lines: Lines::default(),
        }
    }

    fn connect(&mut self) {
        let connected = SocketAddrUnix::new(proto::STATS_SOCKET).and_then(|addr| {
            let flags = SocketFlags::NONBLOCK | SocketFlags::CLOEXEC;
            let fd = rustix::net::socket_with(AddressFamily::UNIX, SocketType::STREAM, flags, None)?;
            rustix::net::connect(&fd, &addr)?;
            Ok(fd)
        });
        match connected {
            Ok(fd) => self.socket = Some(fd),
            Err(e) => self.errno = e,
        }
        self.retry_at = clock::now_ns() + RETRY_MS * 1_000_000;
    }

    /// Bytes of the port's that may be read now: every byte may end a
    /// line, and each line needs room for its answer.
    fn port_room(&self) -> usize {
        let budget = self.lines.port_budget(self.to_port.room());
        match self.socket {
            Some(_) => budget.min(self.to_socket.room()),
            None => budget,
        }
    }

    /// Reads the host's bytes: to the scheduler, or each line answered.
    fn read_port(&mut self) {
        let Some(port) = &self.port else { return };
        let mut buf = [0u8; 1024];
        let room = self.port_room().min(buf.len());
        if room == 0 {
            return;
        }
        match rustix::io::read(port, &mut buf[..room]) {
            Ok(0) => self.port = None,
            Ok(n) => {
                let said = self.lines.host_sent(&buf[..n], self.socket.is_some());
                for _ in 0..said.errors {
                    self.reply_error();
                }
                if self.socket.is_some() {
                    self.to_socket.push(&buf[said.send_from..n]);
                }
            }
            Err(Errno::AGAIN | Errno::INTR) => {}
            Err(_) => self.port = None,
        }
        self.flush_some();
    }

    fn reply_error(&mut self) {
        let mut line = [0u8; REPLY_MAX];
        let mut w = SliceWriter::new(&mut line);
        let _ = writeln!(w, "{{\"errno\":{},\"args\":{{}}}}", self.errno.raw_os_error());
        self.to_port.push(w.written());
    }

    /// Reads the scheduler's bytes for the host; its end means it is gone.
    fn read_socket(&mut self) {
        let Some(socket) = &self.socket else { return };
        let mut buf = [0u8; 1024];
        let room = self.lines.socket_budget(self.to_port.room()).min(buf.len());
        if room == 0 {
            return;
        }
        match rustix::io::read(socket, &mut buf[..room]) {
            Ok(0) => self.lost_socket(),
            Ok(n) => {
                self.lines.scheduler_sent(&buf[..n]);
                self.to_port.push(&buf[..n]);
            }
            Err(Errno::AGAIN | Errno::INTR) => {}
            Err(_) => self.lost_socket(),
        }
        self.flush_some();
    }

    /// A request half sent to a scheduler that went away is for nobody;
    /// each one sent whole is answered here, as it will not be there.
    fn lost_socket(&mut self) {
        self.socket = None;
        self.to_socket.clear();
        self.errno = Errno::CONNRESET;
        let owed = self.lines.lost();
        if owed.end_reply {
            self.to_port.push(b"\n");
        }
        for _ in 0..owed.errors {
            self.reply_error();
        }
    }

    fn flush_some(&mut self) {
        if let Some(port) = &self.port {
            let _ = self.to_port.write_some(port.as_fd());
        }
        if let Some(socket) = &self.socket {
            if let Err(Errno::PIPE | Errno::CONNRESET) = self.to_socket.write_some(socket.as_fd()) {
                self.lost_socket();
            }
        }
    }
}

impl Source for StatsRelay {
    fn rank(&self) -> Rank {
        Rank::Relay
    }

    fn interests<'s>(&'s self, _link: &Link, out: &mut Interests<'s>) {
        let Some(port) = &self.port else { return };
        let mut port_events = PollFlags::empty();
        if self.port_room() > 0 {
            port_events |= PollFlags::IN;
        }
        if !self.to_port.is_empty() {
            port_events |= PollFlags::OUT;
        }
        if !port_events.is_empty() {
            out.add(port.as_fd(), port_events, PORT);
        }
        if let Some(socket) = &self.socket {
            let mut events = PollFlags::empty();
            if self.lines.socket_budget(self.to_port.room()) > 0 {
                events |= PollFlags::IN;
            }
            if !self.to_socket.is_empty() {
                events |= PollFlags::OUT;
            }
            // Out of the set while it can be neither read nor written: poll
            // would report its hang-up at once, again and again.
            if !events.is_empty() {
                out.add(socket.as_fd(), events, SOCKET);
            }
        }
    }

    fn on_ready(&mut self, token: u8, events: PollFlags, _ctx: &mut Ctx<'_>) {
        match token {
            PORT if events.contains(PollFlags::IN) => self.read_port(),
            SOCKET if events.intersects(PollFlags::IN | PollFlags::HUP) => self.read_socket(),
            _ => self.flush_some(),
        }
    }

    fn deadline(&self) -> Option<u64> {
        (self.port.is_some() && self.socket.is_none()).then_some(self.retry_at)
    }

    fn on_deadline(&mut self, _ctx: &mut Ctx<'_>) {
        self.connect();
    }

    fn cleanup(&mut self, _ctx: &mut Ctx<'_>) {
        self.port = None;
        self.socket = None;
    }

    fn done(&self) -> bool {
        self.port.is_none()
    }
}
