//! One client of the stats socket, on a thread of its own, so that an
//! idle or slow client holds up nobody: each request line is read whole
//! (at most [`REQUEST_MAX`] bytes) before it goes anywhere, then exchanged
//! with the guest in its turn. A line cut short by the client's hang-up
//! never reaches the guest.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use super::exchange::Delivered;
use super::relay::Relay;
use super::reply::error_line;

/// The longest request line, newline included. scx_stats' requests are
/// tens of bytes (`{"req":"stats","args":{"target":"top"}}`).
pub const REQUEST_MAX: usize = 4096;

/// How long a reply may wait for its client to take it: a client that
/// does not read is dropped, and the rest of its reply with it.
const WRITE_WAIT: Duration = Duration::from_secs(5);

/// errno values of the host's own error lines.
const EMSGSIZE: i32 = 90;
const ECONNRESET: i32 = 104;

/// What one read of a request gave.
#[derive(Debug, PartialEq, Eq)]
pub enum Request {
    /// A whole line, newline included, is in the buffer.
    Line,
    /// The client hung up (what it had sent of a line is dropped), or its
    /// socket failed.
    End,
    /// [`REQUEST_MAX`] bytes and no newline.
    TooLong,
}

/// Serves `client` until it hangs up or fails.
pub fn serve(client: UnixStream, relay: &Relay) {
    let Ok(reading) = client.try_clone() else {
        return;
    };
    let mut client = client;
    if client.set_write_timeout(Some(WRITE_WAIT)).is_err() {
        return;
    }
    let mut requests = BufReader::with_capacity(REQUEST_MAX, reading);
    let mut line = Vec::with_capacity(REQUEST_MAX);
    loop {
        match read_request(&mut requests, &mut line) {
            Request::Line => {}
            Request::End => return,
            Request::TooLong => {
                let why = format!("guestinit: a stats request is longer than {REQUEST_MAX} bytes");
                let _ = client.write_all(&error_line(EMSGSIZE, &why));
                return;
            }
        }
        match relay.exchange(&line, &mut client) {
            Delivered::Whole => {}
            Delivered::ClientGone => return,
            Delivered::GuestGone { started } => {
                if !started {
                    let why = "guestinit: the VM's stats port is closed";
                    let _ = client.write_all(&error_line(ECONNRESET, why));
                }
                return;
            }
        }
    }
}

/// Reads one request line into `line` (cleared first).
pub fn read_request(requests: &mut impl BufRead, line: &mut Vec<u8>) -> Request {
    line.clear();
    let read = requests
        .by_ref()
        .take(REQUEST_MAX as u64)
        .read_until(b'\n', line);
    match read {
        Ok(_) if line.last() == Some(&b'\n') => Request::Line,
        Ok(_) if line.len() >= REQUEST_MAX => Request::TooLong,
        Ok(_) | Err(_) => Request::End,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client's bytes, for the tests: `read_request` over a slice.
    fn requests_of(bytes: &[u8]) -> Vec<Request> {
        let mut reader = std::io::Cursor::new(bytes);
        let mut line = Vec::new();
        let mut seen = Vec::new();
        loop {
            let request = read_request(&mut reader, &mut line);
            let end = request != Request::Line;
            seen.push(request);
            if end {
                return seen;
            }
        }
    }

    #[test]
    fn whole_lines_are_requests_and_a_cut_one_is_dropped() {
        assert_eq!(
            requests_of(b"{\"req\":\"stats\"}\n{}\n{\"req\":\"sta"),
            [Request::Line, Request::Line, Request::End]
        );
        let mut reader = std::io::Cursor::new(&b"a\nb"[..]);
        let mut line = Vec::new();
        assert_eq!(read_request(&mut reader, &mut line), Request::Line);
        assert_eq!(line, b"a\n");
        assert_eq!(read_request(&mut reader, &mut line), Request::End);
    }

    #[test]
    fn a_line_is_bounded() {
        let mut at_bound = vec![b'x'; REQUEST_MAX - 1];
        at_bound.push(b'\n');
        assert_eq!(requests_of(&at_bound), [Request::Line, Request::End]);
        let over = vec![b'x'; REQUEST_MAX + 1];
        assert_eq!(requests_of(&over), [Request::TooLong]);
    }
}
