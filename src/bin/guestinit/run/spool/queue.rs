//! A spool's queue, oldest first: bytes in memory, then the spill file,
//! then bytes kept in memory after the file could not take them. Order is
//! kept whatever fails: nothing newer is ever taken before something older.
//! A leaf: it imports nothing of `run`.

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// Bytes a queue keeps in memory (head and tail together). Past it new
/// bytes spill to the file; when the file cannot take them either, the
/// queue has no room and its reader pauses (see [`Queue::has_room`]). A
/// reader overshoots it by at most what it read in one go.
pub const MEMORY_BOUND: usize = 8 << 20;
/// The largest piece read back from the spill file at once.
const READ_BACK: usize = 256 << 10;

/// Where a queue spills: an unlinked temporary file, or a test's stand-in.
pub trait Spill {
    /// Writes all of `bytes` at `at`; a failure may leave a part written.
    fn write_all_at(&mut self, bytes: &[u8], at: u64) -> io::Result<()>;
    fn read_exact_at(&self, buf: &mut [u8], at: u64) -> io::Result<()>;
    /// Empties it, so a drained file gives its space back.
    fn clear(&mut self) -> io::Result<()>;
}

impl Spill for File {
    fn write_all_at(&mut self, bytes: &[u8], at: u64) -> io::Result<()> {
        FileExt::write_all_at(self, bytes, at)
    }
    fn read_exact_at(&self, buf: &mut [u8], at: u64) -> io::Result<()> {
        FileExt::read_exact_at(self, buf, at)
    }
    fn clear(&mut self) -> io::Result<()> {
        self.set_len(0)
    }
}

/// Makes the spill file when a queue first needs one.
pub type Open<S> = Box<dyn FnMut() -> io::Result<S> + Send>;

pub struct Queue<S> {
    /// The oldest bytes: pushed while the file held nothing.
    head: VecDeque<Vec<u8>>,
    spill: Option<S>,
    open: Open<S>,
    /// Bytes written to / taken from the file since it was last empty.
    spilled: u64,
    taken: u64,
    /// The newest bytes: pushed while the file held older ones and could
    /// not take more. They go out after the file's.
    tail: VecDeque<Vec<u8>>,
    in_memory: usize,
    /// The file failed since it was last empty: it is not tried again
    /// until it is (its space is given back then).
    spill_failed: bool,
    /// The first spill error, until the run's warning takes it.
    spill_error: Option<io::Error>,
    spill_error_taken: bool,
}

impl<S: Spill> Queue<S> {
    pub fn new(open: Open<S>) -> Queue<S> {
        Queue {
            head: VecDeque::new(),
            spill: None,
            open,
            spilled: 0,
            taken: 0,
            tail: VecDeque::new(),
            in_memory: 0,
            spill_failed: false,
            spill_error: None,
            spill_error_taken: false,
        }
    }

    fn spill_pending(&self) -> bool {
        self.taken < self.spilled
    }

    /// Whether the reader may hand over more: false once memory is at its
    /// bound and the file cannot take more.
    pub fn has_room(&self) -> bool {
        !(self.spill_failed && self.in_memory >= MEMORY_BOUND)
    }

    /// The first spill failure, once (the run says it once).
    pub fn take_spill_error(&mut self) -> Option<io::Error> {
        let error = self.spill_error.take()?;
        self.spill_error_taken = true;
        Some(error)
    }

    /// New bytes go to the file while it holds older ones, or past the
    /// bound; to memory when it fails, after whatever the file holds.
    pub fn push(&mut self, bytes: &[u8]) {
        let over = self.in_memory + bytes.len() > MEMORY_BOUND;
        let to_file = self.tail.is_empty() && (self.spill_pending() || over);
        if to_file && !self.spill_failed {
            match self.spill_to_file(bytes) {
                Ok(()) => return,
                Err(e) => {
                    self.spill_failed = true;
                    if !self.spill_error_taken && self.spill_error.is_none() {
                        self.spill_error = Some(e);
                    }
                }
            }
        }
        self.in_memory += bytes.len();
        if self.spill_pending() {
            self.tail.push_back(bytes.to_vec());
        } else {
            self.head.push_back(bytes.to_vec());
        }
    }

    fn spill_to_file(&mut self, bytes: &[u8]) -> io::Result<()> {
        let file = match &mut self.spill {
            Some(file) => file,
            None => self.spill.insert((self.open)()?),
        };
        file.write_all_at(bytes, self.spilled)?;
        self.spilled += bytes.len() as u64;
        Ok(())
    }

    /// The next piece to write, in order; `None` when there is none yet.
    pub fn take(&mut self) -> io::Result<Option<Vec<u8>>> {
        if let Some(chunk) = self.head.pop_front() {
            self.in_memory -= chunk.len();
            return Ok(Some(chunk));
        }
        let Some(file) = self.spill.as_mut().filter(|_| self.taken < self.spilled) else {
            // Nothing waits anywhere: a file that could not be made may be
            // tried again.
            self.spill_failed = false;
            return Ok(None);
        };
        let len = (self.spilled - self.taken).min(READ_BACK as u64) as usize;
        let mut chunk = vec![0u8; len];
        file.read_exact_at(&mut chunk, self.taken)?;
        self.taken += len as u64;
        if self.taken == self.spilled {
            // Drained: the file starts over (its space given back), and
            // what waited behind it is now the oldest.
            (self.spilled, self.taken) = (0, 0);
            file.clear()?;
            self.spill_failed = false;
            self.head = std::mem::take(&mut self.tail);
        }
        Ok(Some(chunk))
    }

    /// Everything still queued is dropped (the destination failed).
    pub fn clear(&mut self) {
        self.head.clear();
        self.tail.clear();
        self.in_memory = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A spill file that takes `room` bytes in all, then fails as a full
    /// disk does (a part of the last write may land).
    struct Capped {
        bytes: Vec<u8>,
        room: usize,
    }

    impl Spill for Capped {
        fn write_all_at(&mut self, bytes: &[u8], at: u64) -> io::Result<()> {
            let at = at as usize;
            self.bytes.truncate(at);
            let fits = bytes.len().min(self.room.saturating_sub(at));
            self.bytes.extend_from_slice(&bytes[..fits]);
            if fits < bytes.len() {
                return Err(io::ErrorKind::StorageFull.into());
            }
            Ok(())
        }
        fn read_exact_at(&self, buf: &mut [u8], at: u64) -> io::Result<()> {
            let at = at as usize;
            buf.copy_from_slice(&self.bytes[at..at + buf.len()]);
            Ok(())
        }
        fn clear(&mut self) -> io::Result<()> {
            self.bytes.clear();
            Ok(())
        }
    }

    fn capped(room: usize) -> Queue<Capped> {
        Queue::new(Box::new(move || {
            Ok(Capped {
                bytes: Vec::new(),
                room,
            })
        }))
    }

    fn unopenable() -> Queue<Capped> {
        Queue::new(Box::new(|| Err(io::ErrorKind::PermissionDenied.into())))
    }

    /// Piece `i`: odd-sized, its bytes telling where it belongs.
    fn piece(i: u32) -> Vec<u8> {
        (0..(1000 + i * 7919 % 20000))
            .map(|j| (i ^ j) as u8)
            .collect()
    }

    /// Pushes pieces while the queue has room (as the reactor reads),
    /// taking a piece every third push; returns what was pushed.
    fn push_while_room(q: &mut Queue<Capped>, out: &mut Vec<u8>, pieces: u32) -> Vec<u8> {
        let mut pushed = Vec::new();
        for i in 0..pieces {
            while !q.has_room() {
                out.extend(q.take().unwrap().expect("no room means bytes wait"));
            }
            let p = piece(i);
            q.push(&p);
            pushed.extend(p);
            if i % 3 == 0 {
                if let Some(chunk) = q.take().unwrap() {
                    out.extend(chunk);
                }
            }
        }
        pushed
    }

    /// Compares without printing megabytes: where the first byte differs.
    fn assert_in_order(got: &[u8], expected: &[u8]) {
        assert_eq!(got.len(), expected.len());
        let first_wrong = got.iter().zip(expected).position(|(a, b)| a != b);
        assert_eq!(first_wrong, None, "out of order from byte {first_wrong:?}");
    }

    fn drain(q: &mut Queue<Capped>, out: &mut Vec<u8>) {
        while let Some(chunk) = q.take().unwrap() {
            out.extend(chunk);
        }
    }

    #[test]
    fn a_spill_file_that_fills_up_keeps_the_order() {
        // The file takes 3 MiB: memory fills, the file fills, then memory
        // again behind the file; reading resumes only as room comes back.
        let mut q = capped(3 << 20);
        let mut out = Vec::new();
        let pushed = push_while_room(&mut q, &mut out, 4000);
        drain(&mut q, &mut out);
        assert!(
            pushed.len() > MEMORY_BOUND + (3 << 20) * 2,
            "the file filled"
        );
        assert_in_order(&out, &pushed);
        assert!(q
            .take_spill_error()
            .is_some_and(|e| e.kind() == io::ErrorKind::StorageFull));
        assert!(q.take_spill_error().is_none(), "said once");
    }

    #[test]
    fn bytes_pushed_after_the_file_failed_wait_behind_the_file() {
        // Past the bound with a file of 64 KiB: A fills memory, B the file
        // (in part: the write fails), C lands in memory behind the file.
        let mut q = capped(64 << 10);
        let a = vec![b'a'; MEMORY_BOUND];
        let b = vec![b'b'; 40 << 10];
        let c = vec![b'c'; 40 << 10];
        let d = vec![b'd'; 40 << 10];
        q.push(&a);
        q.push(&b);
        assert!(q.has_room(), "the file took B");
        q.push(&c);
        assert!(!q.has_room(), "memory full and the file failed");
        let mut out = Vec::new();
        out.extend(q.take().unwrap().unwrap());
        assert!(q.has_room());
        q.push(&d);
        drain(&mut q, &mut out);
        assert_in_order(&out, &[a, b, c, d].concat());
    }

    #[test]
    fn a_file_that_cannot_be_made_bounds_memory_and_is_tried_again_once_drained() {
        let mut q = unopenable();
        let chunk = vec![1u8; 1 << 20];
        let mut pushed = 0;
        while q.has_room() {
            q.push(&chunk);
            pushed += chunk.len();
        }
        assert!(pushed <= MEMORY_BOUND + chunk.len());
        let e = q.take_spill_error().unwrap();
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
        let mut out = Vec::new();
        drain(&mut q, &mut out);
        assert_eq!(out.len(), pushed);
        assert!(q.has_room() && !q.spill_failed, "tried again");
        // A second failure is not said again.
        while q.has_room() {
            q.push(&chunk);
        }
        assert!(q.take_spill_error().is_none());
    }

    #[test]
    fn a_working_file_never_runs_out_of_room() {
        let mut q = capped(usize::MAX);
        let mut out = Vec::new();
        let chunk: Vec<u8> = (0..=255).cycle().take(3 << 20).collect();
        for _ in 0..8 {
            q.push(&chunk);
            assert!(q.has_room());
        }
        drain(&mut q, &mut out);
        assert_in_order(&out, &chunk.repeat(8));
        assert!(q.take_spill_error().is_none());
    }
}
