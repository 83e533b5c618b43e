//! What a link's read handler tells the reactor, and the one read loop
//! every link shares: read until the link would block, 0 bytes means it
//! closed, EINTR means read again. A leaf: it imports nothing of `run`.

use std::io::{self, Read};

/// What a source's read handler tells the loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// Read to `WouldBlock`: wait for readiness again.
    Open,
    /// More may be there (a throttled read): call again without waiting.
    Again,
    /// A spool it feeds is full (`run::gate`): it stopped reading. Call
    /// again on the next tick, when the spool may have room.
    Paused,
    /// The link ended.
    Closed,
}

/// Reads `src` into `buf` until it would block, handing each chunk to
/// `take`, which may stop the loop early with a flow of its own (a
/// throttle's `Again`, a full queue's `Open`). Ok(`Closed`) at the end of
/// the link; an error of the link is the caller's to word.
pub fn read_ready(
    mut src: impl Read,
    buf: &mut [u8],
    mut take: impl FnMut(&[u8]) -> Option<Flow>,
) -> io::Result<Flow> {
    loop {
        match src.read(buf) {
            Ok(0) => return Ok(Flow::Closed),
            Ok(n) => {
                if let Some(flow) = take(&buf[..n]) {
                    return Ok(flow);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Flow::Open),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out its script one step per read.
    struct Script(Vec<io::Result<&'static [u8]>>);

    impl Read for Script {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match self.0.remove(0) {
                Ok(bytes) => {
                    buf[..bytes.len()].copy_from_slice(bytes);
                    Ok(bytes.len())
                }
                Err(e) => Err(e),
            }
        }
    }

    fn err(kind: io::ErrorKind) -> io::Result<&'static [u8]> {
        Err(kind.into())
    }

    #[test]
    fn reads_through_eintr_to_would_block_then_to_the_end() {
        let mut got = Vec::new();
        let mut script = Script(vec![
            Ok(b"ab"),
            err(io::ErrorKind::Interrupted),
            Ok(b"c"),
            err(io::ErrorKind::WouldBlock),
            Ok(b"d"),
            Ok(b""),
        ]);
        let mut buf = [0u8; 8];
        let mut take = |b: &[u8]| {
            got.extend_from_slice(b);
            None
        };
        assert_eq!(
            read_ready(&mut script, &mut buf, &mut take).unwrap(),
            Flow::Open
        );
        assert_eq!(
            read_ready(&mut script, &mut buf, &mut take).unwrap(),
            Flow::Closed
        );
        assert_eq!(got, b"abcd");
    }

    #[test]
    fn take_can_stop_early_and_errors_are_the_callers() {
        let mut script = Script(vec![Ok(b"a"), Ok(b"b")]);
        let mut buf = [0u8; 8];
        let flow = read_ready(&mut script, &mut buf, |_| Some(Flow::Again)).unwrap();
        assert_eq!((flow, script.0.len()), (Flow::Again, 1));
        let mut script = Script(vec![err(io::ErrorKind::ConnectionReset)]);
        let e = read_ready(&mut script, &mut buf, |_| None).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionReset);
    }
}
