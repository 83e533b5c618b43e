//! The kernel's trace, relayed to COM1 where the host (and ktstr's) reads
//! it: trace_pipe is read without blocking into COM1's own bounded queue,
//! and only while that queue has room, so a 115200-baud line slows the
//! trace, never the loop. At cleanup tracing stops first, then what is
//! left is drained within a bound.

use crate::clock;
use guestinit::cell::TakeOnce;
use crate::backlog::Backlog;
use crate::console::warning;
use crate::link::Link;
use crate::reactor::{Ctx, Interests, Rank, Source};
use crate::small_file::write_file;
use rustix::event::PollFlags;
use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::OFlags;
use rustix::io::Errno;

const TRACE_PIPE: &[u8] = b"/sys/kernel/tracing/trace_pipe";
const TRACING_ON: &[u8] = b"/sys/kernel/tracing/tracing_on";
const BUFFER_SIZE_KB: &[u8] = b"/sys/kernel/tracing/buffer_size_kb";
/// sched_ext's debug dump event, on kernels that have sched_ext.
const DUMP_EVENT: &[u8] = b"/sys/kernel/tracing/events/sched_ext/sched_ext_dump/enable";
/// Bytes COM1 may hold back.
const BACKLOG: usize = 8192;
/// trace_pipe may wake a poller only once a share of its buffer has
/// filled: it is also read this often.
const TICK_MS: u64 = 100;
/// What is left at cleanup is drained at most this long.
pub const DRAIN_MS: u64 = 5000;

const PIPE: u8 = 0;
const COM1: u8 = 1;

/// In .bss, not in the relay: the relay lives in a stack frame, which
/// stack probes make resident whole, used or not.
static BACKLOG_BUF: TakeOnce<Backlog<BACKLOG>> = TakeOnce::new(Backlog::new());

pub struct TraceRelay {
    pipe: Option<OwnedFd>,
    com1: OwnedFd,
    backlog: &'static mut Backlog<BACKLOG>,
    /// When trace_pipe is read next without waiting for poll.
    tick_at: u64,
    /// When the cleanup's drain ends, once it has begun.
    drain_until: Option<u64>,
}

/// Sizes the kernel's trace buffer to `kb` KiB per CPU (the host's
/// `guestinit.trace_kb`): until a tracer or event expands it, it holds a
/// few KiB, and a payload that traces faster than COM1 drains loses events.
pub fn size_buffer(kb: Option<u64>) {
    let Some(kb) = kb else { return };
    let mut buf = [0u8; 20];
    let mut text = guestinit::fmt::SliceWriter::new(&mut buf);
    let _ = core::fmt::Write::write_fmt(&mut text, format_args!("{kb}"));
    // Unsized, the buffer loses events, which the host reports: no warning.
    let _ = write_file(BUFFER_SIZE_KB, text.written());
}

/// The relay, when tracefs and COM1 are there; the dump event is enabled.
pub fn open() -> Option<TraceRelay> {
    let read = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let pipe = crate::small_file::open(TRACE_PIPE, read).ok()?;
    let write = OFlags::WRONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    let com1 = crate::small_file::open(b"/dev/ttyS0", write).ok()?;
    // Absent without sched_ext: nothing to enable then.
    let _ = write_file(DUMP_EVENT, b"1");
    Some(TraceRelay {
        pipe: Some(pipe),
        com1,
        backlog: BACKLOG_BUF.take().expect("one trace relay per boot"),
        tick_at: clock::now_ns(),
        drain_until: None,
    })
}

impl TraceRelay {
    /// Moves what trace_pipe holds, as much as COM1's queue takes, and
    /// writes what COM1 takes now.
    fn relay(&mut self) {
        let Some(pipe) = &self.pipe else { return };
        let mut buf = [0u8; 2048];
        let room = self.backlog.room().min(buf.len());
        if room == 0 {
            let _ = self.backlog.write_some(self.com1.as_fd());
            return;
        }
        match rustix::io::read(pipe, &mut buf[..room]) {
            Ok(0) => self.pipe = None,
            Ok(n) => {
                self.backlog.push(&buf[..n]);
            }
            // Empty: a draining relay is done with the pipe.
            Err(Errno::AGAIN) if self.drain_until.is_some() => self.pipe = None,
            Err(Errno::AGAIN | Errno::INTR) => {}
            Err(_) => self.pipe = None,
        }
        let _ = self.backlog.write_some(self.com1.as_fd());
    }
}

impl Source for TraceRelay {
    fn rank(&self) -> Rank {
        Rank::Relay
    }

    fn interests<'s>(&'s self, _link: &Link, out: &mut Interests<'s>) {
        if let (Some(pipe), true) = (&self.pipe, self.backlog.room() > 0) {
            out.add(pipe.as_fd(), PollFlags::IN, PIPE);
        }
        if !self.backlog.is_empty() {
            out.add(self.com1.as_fd(), PollFlags::OUT, COM1);
        }
    }

    fn on_ready(&mut self, token: u8, _events: PollFlags, _ctx: &mut Ctx<'_>) {
        match token {
            PIPE => self.relay(),
            _ => {
                let _ = self.backlog.write_some(self.com1.as_fd());
            }
        }
    }

    fn deadline(&self) -> Option<u64> {
        if self.done() {
            return None;
        }
        let tick = self.tick_at;
        Some(self.drain_until.map_or(tick, |until| until.min(tick)))
    }

    fn on_deadline(&mut self, _ctx: &mut Ctx<'_>) {
        let now = clock::now_ns();
        if self.drain_until.is_some_and(|until| now >= until) {
            warning!("the trace still flowed {DRAIN_MS} ms into the cleanup: the rest is dropped");
            self.pipe = None;
            self.backlog.clear();
            return;
        }
        self.relay();
        self.tick_at = now + TICK_MS * 1_000_000;
    }

    /// Tracing stops first, so the drain has an end.
    fn cleanup(&mut self, _ctx: &mut Ctx<'_>) {
        let _ = write_file(DUMP_EVENT, b"0");
        let _ = write_file(TRACING_ON, b"0");
        self.drain_until = Some(clock::now_ns() + DRAIN_MS * 1_000_000);
        self.relay();
    }

    fn done(&self) -> bool {
        self.pipe.is_none() && self.backlog.is_empty()
    }
}
