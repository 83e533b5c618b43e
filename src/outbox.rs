//! The queue of frames waiting for the bulk port. Frames live in pool
//! buffers and leave in order; a write that takes part of a frame is resumed
//! where it stopped. The port is non-blocking: when it is full, frames wait
//! here, the pool drains, and the event loop stops reading the payload.

use crate::pool::{BufId, Pool};
use crate::sys::Errno;
use crate::wire::{self, Tag, HEADER_LEN};
use heapless::Deque;

/// Where frames go: the bulk port in the init, a vector in tests.
pub trait Sink {
    /// Writes some of `bytes`; `Err(Errno::AGAIN)` when nothing fits now.
    fn write(&mut self, bytes: &[u8]) -> Result<usize, Errno>;
}

struct Queued {
    id: BufId,
    len: usize,
    sent: usize,
}

pub struct Outbox<'p, S, const N: usize, const SIZE: usize> {
    sink: S,
    pool: &'p mut Pool<N, SIZE>,
    queue: Deque<Queued, N>,
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

    pub fn new(sink: S, pool: &'p mut Pool<N, SIZE>) -> Self {
        Outbox {
            sink,
            pool,
            queue: Deque::new(),
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

    /// A buffer whose payload area (see [`Outbox::payload_area`]) the caller
    /// fills, e.g. straight from a pipe, before [`Outbox::commit`].
    pub fn reserve(&mut self) -> Option<BufId> {
        self.pool.get()
    }

    pub fn payload_area(&mut self, id: &BufId) -> &mut [u8] {
        &mut self.pool.buf(id)[HEADER_LEN..]
    }

    /// Gives back a reserved buffer that carries nothing.
    pub fn release(&mut self, id: BufId) {
        self.pool.put(id);
    }

    /// Queues the reserved buffer as a frame of `tag` with `len` payload bytes.
    pub fn commit(&mut self, id: BufId, tag: Tag, len: usize) {
        let frame_len = wire::write_header(tag, self.pool.buf(&id), len)
            .expect("payload area bounds the length");
        // Cannot overflow: the queue holds at most the pool's N buffers.
        let _ = self.queue.push_back(Queued {
            id,
            len: frame_len,
            sent: 0,
        });
    }

    /// Queues `payload` as frames of `tag`, split to fit, waiting with
    /// `wait` whenever no buffer is free. An empty payload is one frame.
    pub fn send(
        &mut self,
        tag: Tag,
        payload: &[u8],
        wait: &mut dyn FnMut(&mut S) -> Result<(), Errno>,
    ) -> Result<(), Errno> {
        let mut chunks = payload.chunks(Self::MAX_PAYLOAD);
        let mut next = chunks.next().unwrap_or(&[]);
        loop {
            let id = loop {
                match self.pool.get() {
                    Some(id) => break id,
                    None => self.wait_for_room(wait)?,
                }
            };
            self.payload_area(&id)[..next.len()].copy_from_slice(next);
            self.commit(id, tag, next.len());
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
                self.pool.put(done.id);
            }
        }
        Ok(Pumped::Empty)
    }

    /// Writes every queued frame, calling `wait` while the sink is full.
    pub fn flush(
        &mut self,
        wait: &mut dyn FnMut(&mut S) -> Result<(), Errno>,
    ) -> Result<(), Errno> {
        while self.pump()? == Pumped::Blocked {
            wait(&mut self.sink)?;
        }
        Ok(())
    }

    /// Drops every queued frame (the sink is gone) and frees the buffers.
    pub fn discard(&mut self) {
        while let Some(q) = self.queue.pop_front() {
            self.pool.put(q.id);
        }
    }

    fn wait_for_room(
        &mut self,
        wait: &mut dyn FnMut(&mut S) -> Result<(), Errno>,
    ) -> Result<(), Errno> {
        if self.pump()? == Pumped::Blocked && self.pool.available() == 0 {
            wait(&mut self.sink)?;
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

    #[test]
    fn partial_writes_resume_and_order_holds() {
        let mut pool: Pool<4, 64> = Pool::new();
        let sink = Slow {
            out: std::vec::Vec::new(),
            step: 5,
            calls: 0,
            stall: 3,
        };
        let mut outbox = Outbox::new(sink, &mut pool);
        let mut wait = |_: &mut Slow| Ok(());
        outbox.send(Tag::SOUT, &[b'a'; 100], &mut wait).unwrap();
        outbox.send(Tag::SERR, b"err", &mut wait).unwrap();
        outbox
            .send(Tag::EXIT, &0i32.to_le_bytes(), &mut wait)
            .unwrap();
        outbox.flush(&mut wait).unwrap();
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
        struct Full;
        impl Sink for Full {
            fn write(&mut self, _: &[u8]) -> Result<usize, Errno> {
                Err(Errno::AGAIN)
            }
        }
        let mut pool: Pool<2, 32> = Pool::new();
        let mut outbox = Outbox::new(Full, &mut pool);
        let id = outbox.reserve().unwrap();
        outbox.payload_area(&id)[..2].copy_from_slice(b"hi");
        outbox.commit(id, Tag::SOUT, 2);
        assert_eq!(outbox.pump(), Ok(Pumped::Blocked));
        assert_eq!(outbox.spare(), 1);
        assert!(!outbox.is_empty());
        let mut waits = 0;
        let mut wait = |_: &mut Full| {
            waits += 1;
            Err(Errno::TIMEDOUT)
        };
        assert_eq!(outbox.flush(&mut wait), Err(Errno::TIMEDOUT));
        assert_eq!(waits, 1);
        outbox.discard();
        assert!(outbox.is_empty());
        assert_eq!(outbox.spare(), 2);
    }
}
