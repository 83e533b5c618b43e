//! A spooled writer: the run's reader hands it bytes without ever blocking,
//! and a thread of its own writes them to a slow destination (a stalled
//! pipe, a pager) in order. Past a memory bound the bytes go to an unlinked
//! temporary file, so a reader that stalls for minutes loses nothing.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::Instant;

/// Bytes kept in memory before spilling to the temporary file.
const MEMORY_BOUND: usize = 8 << 20;
/// The largest piece read back from the spill file at once.
const READ_BACK: usize = 256 << 10;

/// What waits to be written, oldest first: memory, then the spill file.
#[derive(Default)]
struct Queue {
    memory: VecDeque<Vec<u8>>,
    in_memory: usize,
    spill: Option<File>,
    /// Bytes appended to / taken from the spill file since it was last empty.
    spilled: u64,
    taken: u64,
    closed: bool,
    finished: bool,
    /// Why the destination stopped taking bytes, if it did.
    failure: Option<io::Error>,
}

impl Queue {
    fn spill_pending(&self) -> bool {
        self.taken < self.spilled
    }

    /// New bytes go to the file while it holds older ones, or past the bound.
    fn push(&mut self, bytes: &[u8]) {
        let over = self.in_memory + bytes.len() > MEMORY_BOUND;
        if (self.spill_pending() || over) && self.spill_to_file(bytes).is_ok() {
            return;
        }
        // No spill file (an unwritable temp dir): memory is the only place left.
        self.in_memory += bytes.len();
        self.memory.push_back(bytes.to_vec());
    }

    fn spill_to_file(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.spill.is_none() {
            self.spill = Some(unlinked_temp_file()?);
        }
        let file = self
            .spill
            .as_ref()
            .expect("the spill file was just created");
        file.write_all_at(bytes, self.spilled)?;
        self.spilled += bytes.len() as u64;
        Ok(())
    }

    /// The next piece to write, in order; `None` when there is none yet.
    fn take(&mut self) -> io::Result<Option<Vec<u8>>> {
        if let Some(chunk) = self.memory.pop_front() {
            self.in_memory -= chunk.len();
            return Ok(Some(chunk));
        }
        if !self.spill_pending() {
            return Ok(None);
        }
        let file = self.spill.as_ref().expect("pending bytes have a file");
        let len = (self.spilled - self.taken).min(READ_BACK as u64) as usize;
        let mut chunk = vec![0u8; len];
        file.read_exact_at(&mut chunk, self.taken)?;
        self.taken += len as u64;
        if !self.spill_pending() {
            // Drained: start the file over so it does not grow forever.
            (self.spilled, self.taken) = (0, 0);
            file.set_len(0)?;
        }
        Ok(Some(chunk))
    }
}

/// A file nobody else can see: created in the temp dir, then unlinked, so
/// nothing is left behind however the host ends.
fn unlinked_temp_file() -> io::Result<File> {
    let path = std::env::temp_dir().join(format!(
        "guestinit-spool-{}-{:?}",
        std::process::id(),
        Instant::now()
    ));
    let file = File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)?;
    std::fs::remove_file(&path)?;
    Ok(file)
}

struct Shared {
    queue: Mutex<Queue>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // A poisoned lock means the writer thread panicked; its queue is intact.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The handle the reader pushes to; the writer thread is owned by it.
#[derive(Clone)]
pub struct Spool {
    shared: Arc<Shared>,
}

/// How [`Spool::finish`] ended.
#[derive(Debug)]
pub enum Finish {
    /// Every byte was written (or the destination failed: the error).
    Written(Option<io::Error>),
    /// The deadline passed with bytes still unwritten.
    Deadline,
    /// `give_up` said so (a stop signal reached the host).
    GaveUp,
}

impl Spool {
    /// Starts a writer thread for `sink`.
    pub fn new<W: Write + Send + 'static>(sink: W) -> Spool {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            changed: Condvar::new(),
        });
        let for_thread = Arc::clone(&shared);
        thread::spawn(move || write_all(&for_thread, sink));
        Spool { shared }
    }

    /// Queues `bytes`; never blocks on the destination.
    pub fn push(&self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let mut queue = self.shared.lock();
        if queue.failure.is_none() {
            queue.push(bytes);
        }
        drop(queue);
        self.shared.changed.notify_all();
    }

    /// Waits until every queued byte is written, or until `deadline`, or
    /// until `give_up` (asked every tick: the host's signal check) says so.
    pub fn finish(&self, deadline: Option<Instant>, mut give_up: impl FnMut() -> bool) -> Finish {
        let tick = std::time::Duration::from_millis(100);
        let mut queue = self.shared.lock();
        queue.closed = true;
        self.shared.changed.notify_all();
        while !queue.finished {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Finish::Deadline;
            }
            queue = match self.shared.changed.wait_timeout(queue, tick) {
                Ok((q, _)) => q,
                Err(e) => e.into_inner().0,
            };
            drop(queue);
            if give_up() {
                return Finish::GaveUp;
            }
            queue = self.shared.lock();
        }
        Finish::Written(queue.failure.take())
    }
}

/// The writer thread: takes pieces in order and writes them, until closed
/// and empty. A write error ends the writing; later pushes are dropped.
fn write_all<W: Write>(shared: &Shared, mut sink: W) {
    let mut queue = shared.lock();
    loop {
        let piece = match queue.take() {
            Ok(piece) => piece,
            Err(e) => {
                queue.failure = Some(e);
                break;
            }
        };
        match piece {
            Some(bytes) => {
                drop(queue);
                let written = sink.write_all(&bytes).and_then(|()| sink.flush());
                queue = shared.lock();
                if let Err(e) = written {
                    queue.failure = Some(e);
                    break;
                }
            }
            None if queue.closed => break,
            None => {
                queue = match shared.changed.wait(queue) {
                    Ok(q) => q,
                    Err(e) => e.into_inner(),
                };
            }
        }
    }
    queue.finished = true;
    queue.memory.clear();
    drop(queue);
    shared.changed.notify_all();
}

/// A test destination that keeps what reaches it, shared with the test.
#[cfg(test)]
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

#[cfg(test)]
impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
impl Captured {
    /// A spool writing here.
    pub fn spool(&self) -> Spool {
        Spool::new(self.clone())
    }

    /// What arrived so far, taken.
    pub fn take(&self) -> Vec<u8> {
        std::mem::take(&mut self.0.lock().unwrap())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::net::UnixStream;
    use std::time::Duration;

    #[test]
    fn a_stalled_reader_gets_every_byte_in_order_past_the_memory_bound() {
        let (tx, mut rx) = UnixStream::pair().unwrap();
        let spool = Spool::new(tx);
        let mut expected = Vec::new();
        // Twice the memory bound, in odd-sized pieces, while nobody reads.
        let mut i = 0u32;
        while expected.len() < 2 * MEMORY_BOUND {
            let piece: Vec<u8> = (0..(1000 + i % 7919)).map(|j| (i + j) as u8).collect();
            spool.push(&piece);
            expected.extend(piece);
            i += 1;
        }
        thread::sleep(Duration::from_millis(300));
        let reader = thread::spawn(move || {
            let mut got = Vec::new();
            rx.read_to_end(&mut got).unwrap();
            got
        });
        assert!(matches!(
            spool.finish(None, || false),
            Finish::Written(None)
        ));
        drop(spool);
        // The sink (tx) closes with the writer thread: the reader sees EOF.
        let got = reader.join().unwrap();
        assert_eq!(got.len(), expected.len());
        assert!(got == expected);
    }

    #[test]
    fn finish_gives_up_at_the_deadline_when_nobody_reads() {
        let (tx, _rx) = UnixStream::pair().unwrap();
        let spool = Spool::new(tx);
        spool.push(&vec![7u8; 4 << 20]);
        let deadline = Instant::now() + Duration::from_millis(300);
        assert!(matches!(
            spool.finish(Some(deadline), || false),
            Finish::Deadline
        ));
    }

    #[test]
    fn a_failed_destination_is_reported() {
        let (tx, rx) = UnixStream::pair().unwrap();
        drop(rx);
        let spool = Spool::new(tx);
        spool.push(b"lost");
        match spool.finish(None, || false) {
            Finish::Written(Some(e)) => assert_eq!(e.kind(), io::ErrorKind::BrokenPipe),
            other => panic!("{other:?}"),
        }
    }
}
