//! A text link read live (COM1, COM2, QEMU's stderr): its text is kept in
//! memory for the verdict, and teed to the user's log file when one was
//! asked for. A log path is only ever written, never read back.

use std::io::{self, Read};

use mio::net::UnixStream;

use super::reactor::Flow;
use super::spool::Spool;

/// Text kept per link: the verdict reads the init's lines and the kernel's
/// panic; a long run keeps its most recent text.
const KEEP: usize = 4 << 20;

pub struct Capture {
    pub stream: UnixStream,
    text: Vec<u8>,
    log: Option<Spool>,
}

impl Capture {
    pub fn new(stream: UnixStream, log: Option<Spool>) -> Capture {
        Capture {
            stream,
            text: Vec::new(),
            log,
        }
    }

    /// Reads all the link holds.
    pub fn on_readable(&mut self) -> Flow {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return Flow::Closed,
                Ok(n) => self.keep(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Flow::Open,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // A broken link ends like a closed one; QEMU's exit says why.
                Err(_) => return Flow::Closed,
            }
        }
    }

    fn keep(&mut self, bytes: &[u8]) {
        if let Some(log) = &self.log {
            log.push(bytes);
        }
        self.text.extend_from_slice(bytes);
        if self.text.len() > 2 * KEEP {
            self.text.drain(..self.text.len() - KEEP);
        }
    }

    /// The text kept, and the log's writer to finish.
    pub fn into_parts(self) -> (String, Option<Spool>) {
        (String::from_utf8_lossy(&self.text).into_owned(), self.log)
    }
}
