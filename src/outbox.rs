//! The queue of frames waiting for the bulk port. Frames live in pool
//! buffers and leave in order; a write that takes part of a frame is resumed
//! where it stopped. The port is non-blocking: when it is full, frames wait
//! here, the pool drains, and the event loop stops reading the payload.
//!
//! Each frame belongs to a lane with a quota of buffers, so that a chatty
//! source cannot starve another, and a few buffers are kept back from every
//! quota so that control frames always find one.

use crate::pool::{BufId, Pool};
use crate::wire::{self, Tag, HEADER_LEN};
use heapless::Deque;
use rustix::io::Errno;

/// Where frames go: the bulk port in the init, a vector in tests.
pub trait Sink {
    /// Writes some of `bytes`; `Err(Errno::AGAIN)` when nothing fits now.
    fn write(&mut self, bytes: &[u8]) -> Result<usize, Errno>;

    /// Blocks until a write may take more; an error when none ever will
    /// (e.g. the sink's own deadline passed).
    fn wait_writable(&mut self) -> Result<(), Errno>;
}

/// How many lanes an outbox keeps counts for.
pub const LANES: usize = 4;

/// The lane of control frames ([`Outbox::send`]): no quota, and the
/// buffers kept back from the others are theirs.
pub const CONTROL_LANE: usize = 0;

/// A lane's share of the pool: at most `max` buffers held at once, reserved
/// or queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quota {
    /// Below [`LANES`]; not [`CONTROL_LANE`].
    pub lane: usize,
    pub max: usize,
}

/// A buffer reserved for a lane, to be committed or released.
#[derive(Debug)]
pub struct Reserved {
    id: BufId,
    lane: usize,
}

struct Queued {
    id: BufId,
    lane: usize,
    len: usize,
    sent: usize,
}

pub struct Outbox<'p, S, const N: usize, const SIZE: usize> {
    sink: S,
    pool: &'p mut Pool<N, SIZE>,
    queue: Deque<Queued, N>,
    /// Buffers each lane holds now.
    held: [usize; LANES],
    /// Buffers no quota may take: control frames' own.
    keep_free: usize,
}

/// The result of one attempt to empty the queue without blocking.
#[derive(Debug, PartialEq, Eq)]
pub enum Pumped {
    /// Everything queued has been written.
    Empty,
    /// The sink would block; frames remain.
    Blocked,
}

impl<'p, S: Sink, const N: usize, const SIZE: usize> Outbox<'p, S, N, SIZE> {
    /// Payload bytes one frame of this outbox carries.
    pub const MAX_PAYLOAD: usize = SIZE - HEADER_LEN;

    /// An outbox over `sink` that keeps `keep_free` buffers back from
    /// every quota.
    pub fn new(sink: S, pool: &'p mut Pool<N, SIZE>, keep_free: usize) -> Self {
        Outbox {
            sink,
            pool,
            queue: Deque::new(),
            held: [0; LANES],
            keep_free,
        }
    }

    /// Buffers free for new frames.
    pub fn spare(&self) -> usize {
        self.pool.available()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub fn sink(&self) -> &S {
        &self.sink
    }

    pub fn sink_mut(&mut self) -> &mut S {
        &mut self.sink
    }

    /// Whether [`Outbox::reserve`] would give `quota` a buffer now.
    pub fn has_room(&self, quota: Quota) -> bool {
        self.held[quota.lane] < quota.max && self.pool.available() > self.keep_free
    }

    /// A buffer whose payload area (see [`Outbox::payload_area`]) the caller
    /// fills, e.g. straight from a pipe, before [`Outbox::commit`]; `None`
    /// when the lane is at its quota or only the kept-back buffers are left.
    pub fn reserve(&mut self, quota: Quota) -> Option<Reserved> {
        if !self.has_room(quota) {
            return None;
        }
        self.take(quota.lane)
    }

    /// Any free buffer, kept-back ones included, for a control frame.
    pub fn reserve_control(&mut self) -> Option<Reserved> {
        self.take(CONTROL_LANE)
    }

    fn take(&mut self, lane: usize) -> Option<Reserved> {
        let id = self.pool.get()?;
        self.held[lane] += 1;
        Some(Reserved { id, lane })
    }

    pub fn payload_area(&mut self, r: &Reserved) -> &mut [u8] {
        &mut self.pool.buf(&r.id)[HEADER_LEN..]
    }

    /// The payload areas of `rs` at once, for one vectored read: `rs` is
    /// put in buffer order first, the order in which it must be committed.
    pub fn payload_areas<'a>(
        &'a mut self,
        rs: &'a mut [Reserved],
    ) -> impl Iterator<Item = &'a mut [u8]> + 'a {
        rs.sort_unstable_by_key(|r| r.id.index());
        self.pool
            .bufs(rs.iter().map(|r| &r.id))
            .map(|buf| &mut buf[HEADER_LEN..])
    }

    /// Gives back a reserved buffer that carries nothing.
    pub fn release(&mut self, r: Reserved) {
        self.held[r.lane] -= 1;
        self.pool.put(r.id);
    }

    /// Queues the reserved buffer as a frame of `tag` with `len` payload bytes.
    pub fn commit(&mut self, r: Reserved, tag: Tag, len: usize) {
        let Ok(frame_len) = wire::write_header(tag, self.pool.buf(&r.id), len) else {
            unreachable!("the payload area bounds the length")
        };
        // Cannot overflow: the queue holds at most the pool's N buffers.
        let _ = self.queue.push_back(Queued {
            id: r.id,
            lane: r.lane,
            len: frame_len,
            sent: 0,
        });
    }

    /// Queues `payload` as frames of `tag`, split to fit, waiting for the
    /// sink whenever no buffer is free. An empty payload is one frame.
    pub fn send(&mut self, tag: Tag, payload: &[u8]) -> Result<(), Errno> {
        let mut chunks = payload.chunks(Self::MAX_PAYLOAD);
        let mut next = chunks.next().unwrap_or(&[]);
        loop {
            let r = loop {
                match self.reserve_control() {
                    Some(r) => break r,
                    None => self.wait_for_room()?,
                }
            };
            self.payload_area(&r)[..next.len()].copy_from_slice(next);
            self.commit(r, tag, next.len());
            match chunks.next() {
                Some(chunk) => next = chunk,
                None => return Ok(()),
            }
        }
    }

    /// Writes queued frames until the queue is empty or the sink is full.
    pub fn pump(&mut self) -> Result<Pumped, Errno> {
        while let Some(head) = self.queue.front_mut() {
            let frame = &self.pool.buf(&head.id)[head.sent..head.len];
            match self.sink.write(frame) {
                Ok(n) => head.sent += n,
                Err(Errno::INTR) => continue,
                Err(Errno::AGAIN) => return Ok(Pumped::Blocked),
                Err(e) => return Err(e),
            }
            if head.sent == head.len {
                let done = self.queue.pop_front().expect("head exists");
                self.held[done.lane] -= 1;
                self.pool.put(done.id);
            }
        }
        Ok(Pumped::Empty)
    }

    /// Writes every queued frame, waiting while the sink is full.
    pub fn flush(&mut self) -> Result<(), Errno> {
        while self.pump()? == Pumped::Blocked {
            self.sink.wait_writable()?;
        }
        Ok(())
    }

    /// Drops every queued frame (the sink is gone) and frees the buffers.
    pub fn discard(&mut self) {
        while let Some(q) = self.queue.pop_front() {
            self.held[q.lane] -= 1;
            self.pool.put(q.id);
        }
    }

    fn wait_for_room(&mut self) -> Result<(), Errno> {
        if self.pump()? == Pumped::Blocked && self.pool.available() == 0 {
            self.sink.wait_writable()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Decoder, Event};

    /// Takes at most `step` bytes per write and refuses every `stall`th call.
    struct Slow {
        out: std::vec::Vec<u8>,
        step: usize,
        calls: usize,
        stall: usize,
    }

    impl Sink for Slow {
        fn write(&mut self, bytes: &[u8]) -> Result<usize, Errno> {
            self.calls += 1;
            if self.calls.is_multiple_of(self.stall) {
                return Err(Errno::AGAIN);
            }
            let n = bytes.len().min(self.step);
            self.out.extend_from_slice(&bytes[..n]);
            Ok(n)
        }

        fn wait_writable(&mut self) -> Result<(), Errno> {
            Ok(())
        }
    }

    fn decode(stream: &[u8]) -> std::vec::Vec<(Tag, std::vec::Vec<u8>)> {
        let mut storage = std::vec![0u8; 4096];
        let mut dec = Decoder::new(&mut storage);
        let mut frames = std::vec::Vec::new();
        let mut input = stream;
        loop {
            let (n, ev) = dec.push(input);
            input = &input[n..];
            match ev {
                Some(Event::Frame { tag, payload }) => frames.push((tag, payload.to_vec())),
                Some(other) => panic!("unexpected {other:?}"),
                None if input.is_empty() => return frames,
                None => {}
            }
        }
    }

    const DATA: Quota = Quota { lane: 1, max: 8 };

    /// Takes nothing; each wait counts and fails, as a deadline would.
    struct Full {
        waits: usize,
    }

    impl Sink for Full {
        fn write(&mut self, _: &[u8]) -> Result<usize, Errno> {
            Err(Errno::AGAIN)
        }

        fn wait_writable(&mut self) -> Result<(), Errno> {
            self.waits += 1;
            Err(Errno::TIMEDOUT)
        }
    }

    #[test]
    fn a_lane_at_its_quota_waits_while_others_and_control_get_buffers() {
        let mut pool: Pool<6, 32> = Pool::new();
        let mut outbox = Outbox::new(Full { waits: 0 }, &mut pool, 1);
        let chatty = Quota { lane: 1, max: 2 };
        let quiet = Quota { lane: 2, max: 4 };
        for _ in 0..2 {
            let r = outbox.reserve(chatty).unwrap();
            outbox.commit(r, Tag::SCLG, 0);
        }
        assert!(!outbox.has_room(chatty));
        assert!(outbox.reserve(chatty).is_none());
        for _ in 0..3 {
            let r = outbox.reserve(quiet).unwrap();
            outbox.commit(r, Tag::SOUT, 0);
        }
        assert!(
            outbox.reserve(quiet).is_none(),
            "the last buffer is kept back"
        );
        let r = outbox
            .reserve_control()
            .expect("control takes the kept-back buffer");
        outbox.release(r);
        outbox.discard();
        assert!(outbox.has_room(chatty));
    }

    #[test]
    fn payload_areas_fill_in_the_order_they_are_committed() {
        let mut pool: Pool<4, 20> = Pool::new();
        let sink = Slow {
            out: std::vec::Vec::new(),
            step: 64,
            calls: 0,
            stall: usize::MAX,
        };
        let mut outbox = Outbox::new(sink, &mut pool, 0);
        let a = outbox.reserve(DATA).unwrap();
        let b = outbox.reserve(DATA).unwrap();
        let mut rs = [b, a];
        let mut payload = b"abcdefgh".iter();
        for area in outbox.payload_areas(&mut rs) {
            area.iter_mut().zip(&mut payload).for_each(|(a, b)| *a = *b);
        }
        for r in rs {
            outbox.commit(r, Tag::SOUT, 4);
        }
        outbox.flush().unwrap();
        let frames = decode(&outbox.sink().out);
        assert_eq!(
            frames,
            [(Tag::SOUT, b"abcd".to_vec()), (Tag::SOUT, b"efgh".to_vec())]
        );
    }

    #[test]
    fn partial_writes_resume_and_order_holds() {
        let mut pool: Pool<4, 64> = Pool::new();
        let sink = Slow {
            out: std::vec::Vec::new(),
            step: 5,
            calls: 0,
            stall: 3,
        };
        let mut outbox = Outbox::new(sink, &mut pool, 0);
        outbox.send(Tag::SOUT, &[b'a'; 100]).unwrap();
        outbox.send(Tag::SERR, b"err").unwrap();
        outbox.send(Tag::EXIT, &0i32.to_le_bytes()).unwrap();
        outbox.flush().unwrap();
        assert_eq!(outbox.spare(), 4);
        let frames = decode(&outbox.sink().out);
        let sout: std::vec::Vec<u8> = frames
            .iter()
            .filter(|(t, _)| *t == Tag::SOUT)
            .flat_map(|(_, p)| p.clone())
            .collect();
        assert_eq!(sout, [b'a'; 100]);
        assert_eq!(
            frames.len(),
            5,
            "100 bytes in three 48-byte frames, then two"
        );
        assert_eq!(frames[3].0, Tag::SERR);
        assert_eq!(frames[3].1, b"err");
        assert_eq!(frames.last().unwrap().0, Tag::EXIT);
    }

    #[test]
    fn a_full_sink_keeps_frames_queued_and_the_pool_empty() {
        let mut pool: Pool<2, 32> = Pool::new();
        let mut outbox = Outbox::new(Full { waits: 0 }, &mut pool, 0);
        let id = outbox.reserve(DATA).unwrap();
        outbox.payload_area(&id)[..2].copy_from_slice(b"hi");
        outbox.commit(id, Tag::SOUT, 2);
        assert_eq!(outbox.pump(), Ok(Pumped::Blocked));
        assert_eq!(outbox.spare(), 1);
        assert!(!outbox.is_empty());
        assert_eq!(outbox.flush(), Err(Errno::TIMEDOUT));
        assert_eq!(outbox.sink().waits, 1);
        outbox.discard();
        assert!(outbox.is_empty());
        assert_eq!(outbox.spare(), 2);
    }
}
