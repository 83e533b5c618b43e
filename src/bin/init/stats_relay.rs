//! The scheduler's stats socket (scx_stats' JSON lines), relayed to the
//! host's stats port, bytes unchanged both ways with backpressure. The
//! socket appears some time after the scheduler has attached, and again if
//! it restarts: without one, connecting is retried every 250 ms (the
//! folder itself may not exist yet, so there is nothing to watch). While
//! sched_ext has a scheduler whose socket is missing, the host's lines wait
//! in the port for it (retried every 100 ms, for up to [`HOLD_MS`]); past
//! that, or without a scheduler, each request line gets one error line in
//! scx_stats' shape, so no client is left hanging. Every request line gets
//! exactly one line back (`stats_lines`), also when the scheduler goes
//! away mid-request: the host pairs replies with requests by their order.

use crate::backlog::Backlog;
use crate::clock;
#[cfg(not(test))]
use guestinit::cell::TakeOnce;
use crate::link::Link;
use crate::reactor::{Ctx, Interests, Rank, Source};
use crate::sched;
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
/// How long the port's lines wait for the socket of a scheduler that is
/// attached but not serving yet (bpfland serves only once attached), and
/// how often connecting is tried meanwhile.
pub const HOLD_MS: u64 = 5000;
const HOLD_RETRY_MS: u64 = 100;
const MS: u64 = 1_000_000;

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
#[cfg(not(test))]
static BACKLOGS: TakeOnce<[Backlog<4096>; 2]> = TakeOnce::new([Backlog::new(), Backlog::new()]);

#[cfg(not(test))]
fn backlogs() -> &'static mut [Backlog<4096>; 2] {
    BACKLOGS.take().expect("one stats relay per boot")
}

/// Host tests make several relays, each with backlogs of its own.
#[cfg(test)]
fn backlogs() -> &'static mut [Backlog<4096>; 2] {
    Box::leak(Box::new([Backlog::new(), Backlog::new()]))
}

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
    /// Since when sched_ext has had a scheduler without a socket to reach.
    attached_since: Option<u64>,
    /// The port is not read: its lines wait for the socket.
    holding: bool,
    lines: Lines,
    /// The scheduler's socket and the sched_ext sysfs directory (scratch
    /// paths in tests).
    path: &'static str,
    sysfs: &'static str,
}

impl StatsRelay {
    pub fn new(port: OwnedFd) -> StatsRelay {
        StatsRelay::at(port, proto::STATS_SOCKET, proto::sched::SYSFS)
    }

    fn at(port: OwnedFd, path: &'static str, sysfs: &'static str) -> StatsRelay {
        let [to_socket, to_port] = backlogs();
        let mut relay = StatsRelay {
            port: Some(port),
            socket: None,
            to_socket,
            to_port,
            errno: Errno::NOENT,
            retry_at: 0,
            attached_since: None,
            holding: false,
            lines: Lines::default(),
            path,
            sysfs,
        };
        // Before the port is first read: a line sent during the boot waits
        // if the scheduler that just attached does not serve yet.
        relay.connect();
        relay
    }

    fn connect(&mut self) {
        let connected = SocketAddrUnix::new(self.path).and_then(|addr| {
            let flags = SocketFlags::NONBLOCK | SocketFlags::CLOEXEC;
            let fd = rustix::net::socket_with(AddressFamily::UNIX, SocketType::STREAM, flags, None)?;
            rustix::net::connect(&fd, &addr)?;
            Ok(fd)
        });
        let now = clock::now_ns();
        match connected {
            Ok(fd) => {
                self.socket = Some(fd);
                self.attached_since = None;
            }
            Err(e) => {
                self.errno = e;
                let since = self.attached_since.unwrap_or(now);
                self.attached_since = sched::enabled(self.sysfs).then_some(since);
            }
        }
        self.holding = self.attached_since.is_some_and(|since| now < since + HOLD_MS * MS);
        let retry_ms = if self.holding { HOLD_RETRY_MS } else { RETRY_MS };
        self.retry_at = now + retry_ms * MS;
    }

    /// Bytes of the port's that may be read now: every byte may end a
    /// line, and each line needs room for its answer.
    fn port_room(&self) -> usize {
        let budget = self.lines.port_budget(self.to_port.room());
        match self.socket {
            Some(_) => budget.min(self.to_socket.room()),
            None if self.holding => 0,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::Payload;
    use crate::reactor::Reactor;
    use crate::testkit::{self, link};
    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::net::UnixListener;
    use std::string::String;
    use std::time::{Duration, Instant};

    /// A fake sched_ext sysfs whose state reads `state`, and the path
    /// in it where the scheduler's socket would be.
    fn scratch(state: &str) -> (&'static str, &'static str) {
        let sysfs = testkit::sched_ext_sysfs(state);
        (Box::leak(format!("{sysfs}/stats").into_boxed_str()), sysfs)
    }

    /// The port, with one request already in it as the host sends it at
    /// the boot, and the host's end reading one line back on a thread:
    /// the line and how long after the send it came.
    fn port_with_a_request() -> (OwnedFd, std::thread::JoinHandle<(String, Duration)>) {
        let (host, port) =
            rustix::net::socketpair(AddressFamily::UNIX, SocketType::STREAM, SocketFlags::CLOEXEC, None).unwrap();
        rustix::fs::fcntl_setfl(&port, OFlags::NONBLOCK).unwrap();
        let sent = Instant::now();
        let request = b"{\"req\":\"stats\",\"args\":{}}\n";
        assert_eq!(rustix::io::write(&host, request), Ok(request.len()));
        let reader = std::thread::spawn(move || {
            let mut line = std::vec::Vec::new();
            let mut byte = [0u8];
            while line.last() != Some(&b'\n') && rustix::io::read(&host, &mut byte) == Ok(1) {
                line.push(byte[0]);
            }
            (String::from_utf8(line).unwrap(), sent.elapsed())
        });
        (port, reader)
    }

    /// The relay runs beside a payload of `secs` seconds.
    fn relay_for(secs: &str, relay: &mut StatsRelay) {
        let (mut link, _r) = link();
        let (pid, out, err) = testkit::sh(&format!("sleep {secs}"));
        let mut payload = Payload::new(pid, out, err);
        Reactor::new(None).run(&mut link, &mut [&mut payload, relay]);
    }

    #[test]
    fn a_request_sent_before_an_attached_scheduler_serves_waits_for_its_reply() {
        let (path, sysfs) = scratch("enabled");
        let (port, reader) = port_with_a_request();
        let mut relay = StatsRelay::at(port, path, sysfs);
        // The scheduler serves 600 ms later; it answers the line it gets.
        let scheduler = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(600));
            let listener = UnixListener::bind(path).unwrap();
            let (conn, _) = listener.accept().unwrap();
            conn.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let mut line = String::new();
            let _ = BufReader::new(&conn).read_line(&mut line);
            if !line.is_empty() {
                (&conn).write_all(b"{\"errno\":0,\"args\":{\"resp\":{}}}\n").unwrap();
            }
            line
        });
        relay_for("1.5", &mut relay);
        let (reply, took) = reader.join().unwrap();
        assert_eq!(reply, "{\"errno\":0,\"args\":{\"resp\":{}}}\n", "after {took:?}");
        assert_eq!(scheduler.join().unwrap(), "{\"req\":\"stats\",\"args\":{}}\n");
    }

    /// With sched_ext's state `state` and no socket ever, beside a payload
    /// of `secs` seconds: the request's reply is an error line; how long
    /// it took.
    fn errored_after(state: &str, secs: &str) -> Duration {
        let (path, sysfs) = scratch(state);
        let (port, reader) = port_with_a_request();
        let mut relay = StatsRelay::at(port, path, sysfs);
        relay_for(secs, &mut relay);
        let (reply, took) = reader.join().unwrap();
        assert_eq!(reply, "{\"errno\":2,\"args\":{}}\n");
        took
    }

    #[test]
    fn without_a_scheduler_a_request_is_answered_with_an_error_at_once() {
        let took = errored_after("disabled", "1");
        assert!(took < Duration::from_millis(HOLD_MS / 2), "held {took:?}");
    }

    #[test]
    fn a_scheduler_that_never_serves_gets_its_request_answered_with_an_error_after_the_hold() {
        let took = errored_after("enabled", "7");
        let hold = Duration::from_millis(HOLD_MS);
        assert!((hold..hold + Duration::from_secs(1)).contains(&took), "answered after {took:?}");
    }
}
