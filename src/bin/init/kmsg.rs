//! The kernel's warnings: `/dev/kmsg` read without blocking from the start
//! of the kernel's buffer (so a splat during the boot counts), its
//! kernel-facility records only (a payload's writes get LOG_USER, see
//! `parse::kmsg::Record::facility`), gathered into splats that each go to
//! the host as one KWRN frame. At cleanup what is left is read to EAGAIN,
//! so a splat just before the payload ended is caught.

use crate::clock;
use crate::link::Link;
use crate::reactor::{Ctx, Interests, Rank, Source};
use guestinit::cell::{Exclusive, TakeOnce};
use guestinit::outbox::Quota;
use guestinit::parse::kmsg::record;
use guestinit::proto::splat::{Collector, Fed, TEXT_MAX};
use guestinit::wire::Tag;
use rustix::event::PollFlags;
use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::OFlags;
use rustix::io::Errno;

/// One buffer at a time, in a lane of its own: splats are rare, and one
/// waiting for the port holds back only the reading of /dev/kmsg, whose
/// records the kernel keeps meanwhile.
const QUOTA: Quota = Quota { lane: 3, max: 1 };
/// A record's text is at most 1 KiB before the kernel escapes it (up to
/// four bytes a byte); a shorter buffer makes the read fail with EINVAL.
const RECORD_MAX: usize = 8192;
/// A splat without an end marker (a hung task, an RCU stall) ends when the
/// kernel has been quiet this long.
const QUIET_MS: u64 = 1000;
/// How often a finished splat retries for a buffer.
const RETRY_MS: u64 = 20;
/// Records read in one round, so that a flood does not starve the loop.
const ROUND: usize = 64;
/// The cleanup's drain ends at EAGAIN, or after this long.
const DRAIN_MS: u64 = 2000;

struct Buffers {
    record: [u8; RECORD_MAX],
    splats: Collector<TEXT_MAX>,
}

/// In .bss, not in the source: stack probes would make a stack frame's
/// 16 KiB resident whole, used or not.
static BUFFERS: TakeOnce<Buffers> = TakeOnce::new(Buffers {
    record: [0; RECORD_MAX],
    splats: Collector::new(),
});

pub struct Kmsg {
    fd: Option<OwnedFd>,
    bufs: &'static mut Buffers,
    /// The record in `bufs.record` that waits for the splat before it to
    /// be sent: its length.
    pending: Option<usize>,
    /// When the open splat ends for quiet, or the finished one retries.
    due: Option<u64>,
    drain_until: Option<u64>,
}

/// The source read to the log's end before a snapshot (`read_ahead`), for
/// `open` to hand out: a restored run reads only what came after, not the
/// whole boot's log through cold kernel code.
static AHEAD: Exclusive<Option<Kmsg>> = Exclusive::new(None);

/// The source, when /dev/kmsg opens.
pub fn open() -> Option<Kmsg> {
    if let Some(ahead) = AHEAD.with(Option::take).flatten() {
        return ahead.fd.is_some().then_some(ahead);
    }
    Some(Kmsg::over(open_log()?, BUFFERS.take().expect("one kmsg source per boot")))
}

/// /dev/kmsg, read from its oldest record.
fn open_log() -> Option<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC;
    crate::small_file::open(b"/dev/kmsg", flags).ok()
}

/// Opens the source and reads the log to its end now, for the next `open`.
/// A record that starts a splat (or a read that fails) gives the source a
/// fresh descriptor, at the log's start, so that the run reports the
/// boot's splat as a cold run does. The source is kept either way: its
/// buffers are the boot's only ones.
pub fn read_ahead() {
    let Some(mut kmsg) = open() else { return };
    if kmsg.skim() != Skimmed::Clean {
        kmsg.fd = open_log();
    }
    let _ = AHEAD.with(|ahead| *ahead = Some(kmsg));
}

/// What reading the log to its end found.
#[derive(Debug, PartialEq, Eq)]
enum Skimmed {
    Clean,
    /// A record opened a splat; the collector was emptied again.
    Splat,
    Unreadable,
}

impl Kmsg {
    /// The source over `fd`, whose every read is one record.
    fn over(fd: OwnedFd, bufs: &'static mut Buffers) -> Kmsg {
        Kmsg {
            fd: Some(fd),
            bufs,
            pending: None,
            due: None,
            drain_until: None,
        }
    }

    /// Reads records to EAGAIN, sending nothing, or up to one that opens
    /// a splat.
    fn skim(&mut self) -> Skimmed {
        let Some(fd) = &self.fd else { return Skimmed::Unreadable };
        loop {
            let n = match rustix::io::read(fd, &mut self.bufs.record) {
                Ok(n) if n > 0 => n,
                Err(Errno::AGAIN) => return Skimmed::Clean,
                Err(Errno::PIPE | Errno::INTR) => continue,
                _ => return Skimmed::Unreadable,
            };
            let Some(r) = record(&self.bufs.record[..n]) else { continue };
            let _ = self.bufs.splats.feed(&r);
            if self.bufs.splats.is_open() || self.bufs.splats.ready().is_some() {
                self.bufs.splats.clear();
                return Skimmed::Splat;
            }
        }
    }

    /// No more reading: the open splat ends where it is and is sent.
    fn end_reading(&mut self, link: &mut Link) {
        self.fd = None;
        self.bufs.splats.close();
        self.send(link);
    }

    fn send(&mut self, link: &mut Link) -> bool {
        send(&mut self.bufs.splats, &mut self.due, link)
    }

    /// Feeds the record of `len` bytes; false when it waits for a send.
    fn feed(&mut self, len: usize, link: &mut Link) -> bool {
        let Buffers { record: buf, splats } = &mut *self.bufs;
        let Some(r) = record(&buf[..len]) else {
            return true;
        };
        if splats.feed(&r) == Fed::Again {
            if !send(splats, &mut self.due, link) {
                self.pending = Some(len);
                return false;
            }
            let _ = splats.feed(&r);
        }
        if splats.is_open() {
            self.due = Some(clock::now_ns() + QUIET_MS * 1_000_000);
        }
        send(splats, &mut self.due, link)
    }

    /// Reads records until EAGAIN, a splat that waits for a buffer, or
    /// the round's end.
    fn read(&mut self, link: &mut Link) {
        if let Some(len) = self.pending.take() {
            if !self.feed(len, link) {
                return;
            }
        }
        if !self.send(link) {
            return;
        }
        for _ in 0..ROUND {
            let Some(fd) = &self.fd else { return };
            match rustix::io::read(fd, &mut self.bufs.record) {
                Ok(0) => return self.end_reading(link),
                Ok(n) => {
                    if !self.feed(n, link) {
                        return;
                    }
                }
                // Records were overwritten before they were read: the
                // next read goes on from the oldest one left.
                Err(Errno::PIPE | Errno::INTR) => {}
                Err(Errno::AGAIN) if self.drain_until.is_some() => return self.end_reading(link),
                Err(Errno::AGAIN) => return,
                Err(_) => return self.end_reading(link),
            }
        }
    }
}

/// Sends the finished splat, if any, when a buffer is free; whether
/// nothing waits now.
fn send(splats: &mut Collector<TEXT_MAX>, due: &mut Option<u64>, link: &mut Link) -> bool {
    let Some(splat) = splats.ready() else {
        return true;
    };
    let Some(r) = link.reserve(QUOTA) else {
        *due = Some(clock::now_ns() + RETRY_MS * 1_000_000);
        return false;
    };
    // The buffer's payload area (16 KiB) holds MAX_LEN.
    match splat.encode(link.payload_area(&r)) {
        Some(len) => link.commit(r, Tag::KWRN, len),
        None => link.release(r),
    }
    splats.clear();
    *due = None;
    true
}

impl Source for Kmsg {
    /// After the scheduler: its stop may itself warn.
    fn rank(&self) -> Rank {
        Rank::Relay
    }

    fn interests<'s>(&'s self, _link: &Link, out: &mut Interests<'s>) {
        if let (Some(fd), None, None) = (&self.fd, self.pending, self.bufs.splats.ready()) {
            out.add(fd.as_fd(), PollFlags::IN, 0);
        }
    }

    fn on_ready(&mut self, _token: u8, _events: PollFlags, ctx: &mut Ctx<'_>) {
        self.read(ctx.link);
    }

    fn deadline(&self) -> Option<u64> {
        match (self.due, self.drain_until) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn on_deadline(&mut self, ctx: &mut Ctx<'_>) {
        let now = clock::now_ns();
        if self.drain_until.is_some_and(|until| now >= until) {
            if !self.done() {
                ctx.link.warn(format_args!(
                    "the kernel's log still flowed {DRAIN_MS} ms into the cleanup: later warnings are not reported"
                ));
            }
            self.fd = None;
            self.pending = None;
            self.bufs.splats.clear();
            self.due = None;
            self.drain_until = None;
            return;
        }
        if self.due.is_some_and(|at| now >= at) {
            self.due = None;
            // Quiet for long enough: the open splat ends here.
            self.bufs.splats.close();
            self.read(ctx.link);
        }
    }

    fn cleanup(&mut self, ctx: &mut Ctx<'_>) {
        self.drain_until = Some(clock::now_ns() + DRAIN_MS * 1_000_000);
        self.read(ctx.link);
    }

    fn done(&self) -> bool {
        self.fd.is_none() && self.pending.is_none() && self.bufs.splats.ready().is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reactor::Reactor;
    use crate::testkit::{collect, link};
    use guestinit::proto::splat::{Kind, Splat};
    use rustix::net::{socketpair, AddressFamily, SocketFlags, SocketType};

    /// A workload that is done once its deadline has passed.
    struct Timer(Option<u64>);

    impl Source for Timer {
        fn rank(&self) -> Rank {
            Rank::Workload
        }
        fn interests<'s>(&'s self, _: &Link, _: &mut Interests<'s>) {}
        fn on_ready(&mut self, _: u8, _: PollFlags, _: &mut Ctx<'_>) {}
        fn deadline(&self) -> Option<u64> {
            self.0
        }
        fn on_deadline(&mut self, _: &mut Ctx<'_>) {
            self.0 = None;
        }
        fn done(&self) -> bool {
            self.0.is_none()
        }
    }

    /// A source over a seqpacket socket holding `records`, and its writer.
    fn source_of(records: &[&[u8]]) -> (Kmsg, OwnedFd) {
        let (r, w) = socketpair(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            SocketFlags::NONBLOCK,
            None,
        )
        .unwrap();
        for rec in records {
            rustix::io::write(&w, rec).unwrap();
        }
        let bufs = Box::leak(Box::new(Buffers {
            record: [0; RECORD_MAX],
            splats: Collector::new(),
        }));
        (Kmsg::over(r, bufs), w)
    }

    #[test]
    fn skimming_a_clean_log_leaves_the_source_after_it_and_a_splat_is_found() {
        let boot: [&[u8]; 2] = [b"6,1,100,-;Linux version 6.1.0
", b"6,2,101,-;Freeing unused memory
"];
        let (mut kmsg, w) = source_of(&boot);
        assert_eq!(kmsg.skim(), Skimmed::Clean);
        let mut left = [0u8; 64];
        let fd = kmsg.fd.as_ref().unwrap();
        assert_eq!(rustix::io::read(fd, &mut left), Err(Errno::AGAIN), "the boot's records were read");
        for rec in [
            &b"4,3,300,-;WARNING: CPU: 0 PID: 80 at m.c:8 f+0x5/0x10\n"[..],
            b"4,4,303,-;---[ end trace 0000000000000000 ]---\n",
        ] {
            rustix::io::write(&w, rec).unwrap();
        }
        let (mut link, port) = link();
        let mut timer = Timer(Some(clock::now_ns() + 50_000_000));
        Reactor::new(None).run(&mut link, &mut [&mut timer, &mut kmsg]);
        drop(w);
        let splats: std::vec::Vec<_> = collect(link, port)
            .into_iter()
            .filter(|(t, _)| *t == Tag::KWRN)
            .collect();
        assert_eq!(splats.len(), 1, "the splat after the skim is sent");
        assert_eq!(Splat::decode(&splats[0].1).unwrap().seq, 3);

        let (mut kmsg, _w) = source_of(&[
            boot[0],
            b"4,2,200,-;------------[ cut here ]------------\n",
            b"4,3,201,-;WARNING: CPU: 0 PID: 1 at m.c:8 f+0x5/0x10\n",
            b"6,4,300,-;after it\n",
        ]);
        assert_eq!(kmsg.skim(), Skimmed::Splat);
        assert!(kmsg.bufs.splats.ready().is_none() && !kmsg.bufs.splats.is_open());
    }

    #[test]
    fn splats_go_as_kwrn_frames_and_the_drain_sends_the_last_one_open() {
        // A seqpacket socket keeps each write one read, as /dev/kmsg does.
        let (mut kmsg, w) = source_of(&[
            &b"6,1,100,-;Linux version 6.1.0\n"[..],
            b"12,2,200,-;WARNING: CPU: 0 PID: 1 at forged\n",
            b"4,3,300,-;------------[ cut here ]------------\n",
            b"4,4,301,-;WARNING: CPU: 0 PID: 80 at m.c:8 kwarn_init+0x5/0x1000 [kwarn]\n SUBSYSTEM=x\n",
            b"4,5,302,-;Call Trace:\n",
            b"4,6,303,-;---[ end trace 0000000000000000 ]---\n",
            b"3,7,400,-;BUG: kernel NULL pointer dereference, address: 0000000000000000\n",
            b"1,8,401,-;Oops: 0000 [#1] PREEMPT SMP NOPTI\n",
        ]);
        let (mut link, port) = link();
        let mut timer = Timer(Some(clock::now_ns() + 50_000_000));
        Reactor::new(None).run(&mut link, &mut [&mut timer, &mut kmsg]);
        assert!(kmsg.done(), "the drain read to EAGAIN and sent what it held");
        drop(w);
        let frames = collect(link, port);
        let splats: std::vec::Vec<_> = frames
            .iter()
            .filter(|(t, _)| *t == Tag::KWRN)
            .map(|(_, p)| p.clone())
            .collect();
        assert_eq!(splats.len(), 2, "the forged record is not one");
        let first = Splat::decode(&splats[0]).unwrap();
        assert_eq!((first.kind, first.seq, first.ts_usec, first.cut), (Kind::Warning, 4, 301, false));
        assert_eq!(
            first.text,
            b"WARNING: CPU: 0 PID: 80 at m.c:8 kwarn_init+0x5/0x1000 [kwarn]\nCall Trace:\n---[ end trace 0000000000000000 ]---\n"
        );
        let last = Splat::decode(&splats[1]).unwrap();
        assert_eq!((last.kind, last.seq), (Kind::Bug, 7));
        assert!(last.text.ends_with(b"Oops: 0000 [#1] PREEMPT SMP NOPTI\n"), "no end marker: the drain closed it");
    }
}
