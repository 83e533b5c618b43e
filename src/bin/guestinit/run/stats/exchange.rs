//! The guest's end of the stats port: one request line out, then exactly
//! one reply line back, streamed to the client that asked. The guest's
//! relay answers every request line with one line (the scheduler's, or an
//! error line while there is no scheduler), and a reply is read to its end
//! even when its client has gone (it is dropped), so reply N is always
//! request N's.

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;

/// Bytes of a reply held at once on their way to the client: a reply of
/// any length streams through this one buffer.
const REPLY_CHUNK: usize = 64 * 1024;

pub struct Guest {
    replies: BufReader<UnixStream>,
    requests: UnixStream,
    /// False once the port has ended (the VM is gone): nothing more is
    /// sent or awaited.
    open: bool,
}

/// How an exchange ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Delivered {
    /// The client has its reply, newline included.
    Whole,
    /// The client stopped taking it; the rest of the reply was read and
    /// dropped.
    ClientGone,
    /// The guest's end closed before the reply was whole; `started` says
    /// whether the client got part of it.
    GuestGone { started: bool },
}

impl Guest {
    /// Over the host's end of the stats port, in blocking mode.
    pub fn new(link: UnixStream) -> io::Result<Guest> {
        link.set_nonblocking(false)?;
        Ok(Guest {
            replies: BufReader::with_capacity(REPLY_CHUNK, link.try_clone()?),
            requests: link,
            open: true,
        })
    }

    /// Sends `request` (one whole line) and streams its reply to `client`.
    pub fn exchange(&mut self, request: &[u8], client: &mut impl Write) -> Delivered {
        if !self.open || self.requests.write_all(request).is_err() {
            self.open = false;
            return Delivered::GuestGone { started: false };
        }
        let mut to_client = true;
        let mut started = false;
        loop {
            let chunk = match self.replies.fill_buf() {
                Ok([]) | Err(_) => {
                    self.open = false;
                    return Delivered::GuestGone { started };
                }
                Ok(chunk) => chunk,
            };
            let (part, ends) = match chunk.iter().position(|&b| b == b'\n') {
                Some(at) => (&chunk[..=at], true),
                None => (chunk, false),
            };
            if to_client {
                to_client = client.write_all(part).is_ok();
                started = true;
            }
            let taken = part.len();
            self.replies.consume(taken);
            if ends {
                return match to_client {
                    true => Delivered::Whole,
                    false => Delivered::ClientGone,
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// A client that takes `room` bytes, then fails every write.
    struct Leaving {
        got: Vec<u8>,
        room: usize,
    }

    impl Write for Leaving {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let n = buf.len().min(self.room);
            if n == 0 {
                return Err(io::ErrorKind::BrokenPipe.into());
            }
            self.got.extend_from_slice(&buf[..n]);
            self.room -= n;
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_reply_streams_to_its_newline_and_the_next_stays_for_the_next_request() {
        let (host, mut port) = UnixStream::pair().unwrap();
        let mut guest = Guest::new(host).unwrap();
        port.write_all(b"one\ntwo\n").unwrap();
        let mut client = Vec::new();
        assert_eq!(guest.exchange(b"a\n", &mut client), Delivered::Whole);
        assert_eq!(client, b"one\n");
        let mut again = Vec::new();
        assert_eq!(guest.exchange(b"b\n", &mut again), Delivered::Whole);
        assert_eq!(again, b"two\n");
        let mut sent = [0u8; 4];
        port.read_exact(&mut sent).unwrap();
        assert_eq!(&sent, b"a\nb\n");
    }

    #[test]
    fn a_reply_whose_client_left_is_read_to_its_end_and_dropped() {
        let (host, mut port) = UnixStream::pair().unwrap();
        let mut guest = Guest::new(host).unwrap();
        let long = vec![b'x'; 3 * REPLY_CHUNK];
        port.write_all(&long).unwrap();
        port.write_all(b"\nnext\n").unwrap();
        let mut leaving = Leaving {
            got: Vec::new(),
            room: 10,
        };
        assert_eq!(guest.exchange(b"a\n", &mut leaving), Delivered::ClientGone);
        assert_eq!(leaving.got.len(), 10);
        let mut next = Vec::new();
        assert_eq!(guest.exchange(b"b\n", &mut next), Delivered::Whole);
        assert_eq!(next, b"next\n");
    }

    #[test]
    fn a_closed_port_ends_the_exchange_and_every_later_one() {
        let (host, mut port) = UnixStream::pair().unwrap();
        let mut guest = Guest::new(host).unwrap();
        port.write_all(b"half a re").unwrap();
        port.shutdown(std::net::Shutdown::Write).unwrap();
        let mut client = Vec::new();
        assert_eq!(
            guest.exchange(b"a\n", &mut client),
            Delivered::GuestGone { started: true }
        );
        assert_eq!(
            guest.exchange(b"b\n", &mut Vec::new()),
            Delivered::GuestGone { started: false }
        );
    }
}
