//! A spooled writer: the run's reader hands it bytes without ever blocking,
//! and a thread of its own writes them to a slow destination (a stalled
//! pipe, a pager) in order. Past a memory bound the bytes go to a temporary
//! file that never has a name (`scratch::anonymous_file`), so a reader that
//! stalls for minutes loses nothing; when that file cannot take more (a
//! full TMPDIR), the spool has no room and the run's reader stops reading
//! the guest until it has (`run::gate`).

mod queue;

use std::fs::File;
use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::Instant;

use queue::Queue;

/// The queue and the writer's state, under one lock.
struct State {
    queue: Queue<File>,
    /// The last byte queued was not a newline: a line is open.
    mid_line: bool,
    closed: bool,
    finished: bool,
    /// Why the destination stopped taking bytes, if it did.
    failure: Option<io::Error>,
}

impl State {
    fn push(&mut self, bytes: &[u8]) {
        if let Some(&last) = bytes.last() {
            self.mid_line = last != b'\n';
        }
        if self.failure.is_none() {
            self.queue.push(bytes);
        }
    }
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock means the writer thread panicked; its queue is intact.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The handle the reader pushes to; the writer thread is owned by it.
#[derive(Clone)]
pub struct Spool {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Spool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Spool")
    }
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
            state: Mutex::new(State {
                queue: Queue::new(Box::new(crate::scratch::anonymous_file)),
                mid_line: false,
                closed: false,
                finished: false,
                failure: None,
            }),
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
        let mut state = self.shared.lock();
        state.push(bytes);
        drop(state);
        self.shared.changed.notify_all();
    }

    /// Queues `line` (which ends in a newline) at the start of a line: after
    /// a newline of its own when the bytes before it left one open, so an
    /// event on a stdout shared with the payload (`--events -`) is never
    /// glued onto the payload's last line.
    pub fn push_line(&self, line: &[u8]) {
        let mut state = self.shared.lock();
        if state.mid_line {
            state.push(b"\n");
        }
        state.push(line);
        drop(state);
        self.shared.changed.notify_all();
    }

    /// Whether the reader may push more: false while memory is at its
    /// bound and the spill file cannot take more (the reader pauses).
    pub fn has_room(&self) -> bool {
        let state = self.shared.lock();
        // A failed destination drops what it gets: nothing to wait for.
        state.failure.is_some() || state.queue.has_room()
    }

    /// Why spilling failed the first time, once: the run says it once.
    pub fn take_spill_error(&self) -> Option<io::Error> {
        self.shared.lock().queue.take_spill_error()
    }

    /// Waits until every queued byte is written, or until `deadline`, or
    /// until `give_up` (asked every tick: the host's signal check) says so.
    pub fn finish(&self, deadline: Option<Instant>, mut give_up: impl FnMut() -> bool) -> Finish {
        let tick = std::time::Duration::from_millis(100);
        let mut state = self.shared.lock();
        state.closed = true;
        self.shared.changed.notify_all();
        while !state.finished {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Finish::Deadline;
            }
            state = match self.shared.changed.wait_timeout(state, tick) {
                Ok((s, _)) => s,
                Err(e) => e.into_inner().0,
            };
            drop(state);
            if give_up() {
                return Finish::GaveUp;
            }
            state = self.shared.lock();
        }
        Finish::Written(state.failure.take())
    }
}

/// The writer thread: takes pieces in order and writes them, until closed
/// and empty. A write error ends the writing; later pushes are dropped.
fn write_all<W: Write>(shared: &Shared, mut sink: W) {
    let mut state = shared.lock();
    loop {
        let piece = match state.queue.take() {
            Ok(piece) => piece,
            Err(e) => {
                state.failure = Some(e);
                break;
            }
        };
        match piece {
            Some(bytes) => {
                drop(state);
                let written = sink.write_all(&bytes).and_then(|()| sink.flush());
                state = shared.lock();
                if let Err(e) = written {
                    state.failure = Some(e);
                    break;
                }
            }
            None if state.closed => break,
            None => {
                state = match shared.changed.wait(state) {
                    Ok(s) => s,
                    Err(e) => e.into_inner(),
                };
            }
        }
    }
    state.finished = true;
    state.queue.clear();
    drop(state);
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
    use super::queue::MEMORY_BOUND;
    use super::*;
    use std::io::Read;
    use std::os::unix::net::UnixStream;
    use std::time::Duration;

    #[test]
    fn a_line_pushed_after_an_open_line_starts_a_line_of_its_own() {
        let captured = Captured::default();
        let spool = captured.spool();
        spool.push(b"no newline");
        spool.push_line(b"{\"event\":\"end\"}\n");
        spool.push_line(b"{\"event\":\"x\"}\n");
        spool.push(b"done\n");
        spool.push_line(b"{}\n");
        spool.finish(None, || false);
        assert_eq!(
            captured.take(),
            b"no newline\n{\"event\":\"end\"}\n{\"event\":\"x\"}\ndone\n{}\n"
        );
    }

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
