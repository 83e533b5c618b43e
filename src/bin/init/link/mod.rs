//! The init's one connection to the host: the bulk port, the frame pool and
//! the outbox over them. Frames are queued without blocking and leave as the
//! port takes them; `send` waits only while no buffer is free; `finish` ends
//! the stream with EXIT and, when the host asked, waits for its EACK.

mod port;

pub use port::{open, WAIT_MS};

use crate::clock;
use crate::console::warning;
use guestinit::cell::TakeOnce;
use core::fmt::{self, Write};
use guestinit::fmt::{ErrnoText, SliceWriter};
use guestinit::proto;
use guestinit::outbox::{self, Pumped, Quota, Reserved};
use guestinit::pool::Pool;
use guestinit::wire::{slice16, Decoder, Event, Tag};
use port::Port;
use rustix::event::{poll, PollFd, PollFlags};
use rustix::fd::BorrowedFd;
use rustix::io::Errno;

/// Frame buffers: 8 x 16 KiB in .bss, resident only once used.
const POOL_BUFS: usize = 8;
const BUF_SIZE: usize = 16 * 1024;
/// Buffers no source's quota may take, so control frames always find one.
const KEEP_FREE: usize = 2;
/// Payload bytes one frame carries.
pub const MAX_PAYLOAD: usize = BUF_SIZE - guestinit::wire::HEADER_LEN;

pub type FramePool = Pool<POOL_BUFS, BUF_SIZE>;
static POOL: TakeOnce<FramePool> = TakeOnce::new(Pool::new());

/// How long the init waits for the host's EACK after EXIT.
pub const ACK_WAIT_MS: u64 = 30_000;

/// Whether the host confirms EXIT (`guestinit.ack` on the command line).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Ack {
    Await,
    None,
}

pub struct Link {
    outbox: outbox::Outbox<'static, Port, POOL_BUFS, BUF_SIZE>,
}

impl Link {
    /// The link over `port`, with the init's static frame pool.
    pub fn new(port: Port) -> Link {
        Link::with_pool(port, POOL.take().expect("one link per boot"))
    }

    pub fn with_pool(port: Port, pool: &'static mut FramePool) -> Link {
        Link {
            outbox: outbox::Outbox::new(port, pool, KEEP_FREE),
        }
    }

    /// A link whose port is `fd` (non-blocking): a pipe in tests.
    #[cfg(test)]
    pub fn over(fd: rustix::fd::OwnedFd, pool: &'static mut FramePool) -> Link {
        Link::with_pool(Port::from_fd(fd), pool)
    }

    /// The port, for the reactor's poll set.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.outbox.sink().fd()
    }

    /// Frames are waiting for the port.
    pub fn pending(&self) -> bool {
        !self.outbox.is_empty()
    }

    pub fn has_room(&self, quota: Quota) -> bool {
        self.outbox.has_room(quota)
    }

    pub fn reserve(&mut self, quota: Quota) -> Option<Reserved> {
        self.outbox.reserve(quota)
    }

    pub fn payload_area(&mut self, r: &Reserved) -> &mut [u8] {
        self.outbox.payload_area(r)
    }

    /// The payload areas of `rs` at once, for one vectored read; commit
    /// `rs` in its order afterwards (see [`outbox::Outbox::payload_areas`]).
    pub fn payload_areas<'a>(
        &'a mut self,
        rs: &'a mut [Reserved],
    ) -> impl Iterator<Item = &'a mut [u8]> + 'a {
        self.outbox.payload_areas(rs)
    }

    pub fn commit(&mut self, r: Reserved, tag: Tag, len: usize) {
        self.outbox.commit(r, tag, len);
    }

    pub fn release(&mut self, r: Reserved) {
        self.outbox.release(r);
    }

    /// Any free buffer, kept-back ones included (control frames).
    pub fn reserve_control(&mut self) -> Option<Reserved> {
        self.outbox.reserve_control()
    }

    /// Queues a control frame, waiting for the port as long as it takes.
    pub fn send(&mut self, tag: Tag, payload: &[u8]) {
        if let Err(e) = self.outbox.send(tag, payload) {
            warning!("send {tag}: {}", ErrnoText(e));
            self.outbox.discard();
        }
        self.pump();
    }

    /// A warning the user sees: on COM2, and as SERR among the run's stderr.
    pub fn warn(&mut self, args: fmt::Arguments<'_>) {
        warning!("{args}");
        let mut buf = [0u8; 256];
        let mut w = SliceWriter::new(&mut buf);
        let _ = writeln!(w, "{}{args}", proto::prefix::WARNING);
        self.send(Tag::SERR, w.written());
    }

    /// Writes what the port takes now. A port that fails for good loses the
    /// queued output, loudly, rather than wedging the run.
    pub fn pump(&mut self) {
        match self.outbox.pump() {
            Ok(Pumped::Empty | Pumped::Blocked) => {}
            Err(e) => {
                warning!(
                    "bulk port write failed ({}): queued output dropped",
                    ErrnoText(e)
                );
                self.outbox.discard();
            }
        }
    }

    /// Writes everything queued, waiting at most `ms` (None: without bound).
    pub fn flush_within(&mut self, ms: Option<u64>) -> Result<(), Errno> {
        let deadline = ms.map(|ms| clock::now_ns() + ms * 1_000_000);
        self.outbox.sink_mut().set_deadline(deadline);
        let flushed = self.outbox.flush();
        self.outbox.sink_mut().set_deadline(None);
        flushed
    }

    /// Sends EXIT last of all. Everything before it is flushed; EXIT itself
    /// is written blocking, which returns once the host has taken the
    /// buffer. With [`Ack::Await`], waits (bounded) for the host to confirm
    /// that it read EXIT, which proves that it read every frame before it.
    pub fn finish(&mut self, code: i32, ack: Ack) {
        let delivered = self
            .outbox
            .flush()
            .and_then(|()| self.outbox.sink().set_blocking())
            .and_then(|()| self.outbox.send(Tag::EXIT, &code.to_le_bytes()))
            .and_then(|()| self.outbox.flush());
        if let Err(e) = delivered {
            warning!("could not deliver EXIT {code}: {}", ErrnoText(e));
            return;
        }
        if ack == Ack::Await && !self.await_ack() {
            warning!("no EACK from the host within {ACK_WAIT_MS} ms");
        }
    }

    /// Reads host -> guest frames until EACK or the deadline.
    fn await_ack(&self) -> bool {
        let deadline = clock::now_ns() + ACK_WAIT_MS * 1_000_000;
        let mut storage = [0u8; 64];
        let mut decoder = Decoder::with_crc(&mut storage, slice16::extend);
        let mut input = [0u8; 64];
        while clock::now_ns() < deadline {
            let mut fds = [PollFd::from_borrowed_fd(self.fd(), PollFlags::IN)];
            let timeout = clock::timespec_until(deadline);
            if !matches!(poll(&mut fds, Some(&timeout)), Ok(1..)) {
                continue;
            }
            match rustix::io::read(self.fd(), &mut input) {
                // The host closed its end: it has read everything it will.
                Ok(0) => clock::sleep_ms(10),
                Ok(n) if saw_ack(&mut decoder, &input[..n]) => return true,
                _ => {}
            }
        }
        false
    }
}

/// Feeds `bytes` to `decoder`; true once an EACK frame has come out.
fn saw_ack(decoder: &mut Decoder<'_>, mut bytes: &[u8]) -> bool {
    loop {
        let (taken, event) = decoder.push(bytes);
        bytes = &bytes[taken..];
        match event {
            Some(Event::Frame { tag: Tag::EACK, .. }) => return true,
            None if bytes.is_empty() => return false,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use guestinit::wire::encode;
    use rustix::fs::OFlags;

    fn frame(tag: Tag, payload: &[u8]) -> std::vec::Vec<u8> {
        let mut out = std::vec![0u8; payload.len() + 16];
        let n = encode(tag, payload, &mut out).unwrap();
        out.truncate(n);
        out
    }

    #[test]
    fn an_eack_is_found_across_reads_after_other_frames() {
        let mut stream = frame(Tag::SOUT, b"noise");
        stream.extend(frame(Tag::EACK, &[]));
        let mut storage = [0u8; 64];
        let mut decoder = Decoder::new(&mut storage);
        let (head, tail) = stream.split_at(stream.len() - 5);
        assert!(!saw_ack(&mut decoder, head));
        assert!(saw_ack(&mut decoder, tail));
    }

    #[test]
    fn finish_sends_exit_after_everything_queued_before_it() {
        let (r, w) = crate::test_pipe::pipe();
        rustix::fs::fcntl_setfl(&w, OFlags::NONBLOCK).unwrap();
        let pool: &'static mut FramePool = Box::leak(Box::new(Pool::new()));
        let mut link = Link::over(w, pool);
        let reader = std::thread::spawn(move || {
            let mut all = std::vec::Vec::new();
            let mut buf = [0u8; 65536];
            while let Ok(n @ 1..) = rustix::io::read(&r, &mut buf) {
                all.extend_from_slice(&buf[..n]);
            }
            all
        });
        let big = std::vec![7u8; 100_000];
        link.send(Tag::SOUT, &big);
        link.finish(3, Ack::None);
        drop(link);
        let mut expected = std::vec::Vec::new();
        for chunk in big.chunks(BUF_SIZE - 16) {
            expected.extend(frame(Tag::SOUT, chunk));
        }
        expected.extend(frame(Tag::EXIT, &3i32.to_le_bytes()));
        assert!(reader.join().unwrap() == expected);
    }
}
