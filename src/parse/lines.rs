//! Splitting a byte stream read in chunks into `\n`-terminated lines.
//!
//! A line may straddle chunks, so its start is carried in a fixed buffer of
//! `N` bytes. A line longer than `N` (not counting its `\n`) is skipped whole
//! and counted in [`LineSplitter::overlong`] rather than passed on truncated:
//! a truncated line would look complete and well-formed to the parsers that
//! read it. Lines of up to `N` bytes are passed whatever the chunking, so the
//! lines seen never depend on how the stream was cut.

use core::ops::ControlFlow;

/// Yields the complete lines of a stream fed in chunks.
#[derive(Debug, Default)]
pub struct LineSplitter<const N: usize> {
    carry: heapless::Vec<u8, N>,
    /// In the middle of an overlong line (already counted): drop up to `\n`.
    discarding: bool,
    overlong: usize,
}

impl<const N: usize> LineSplitter<N> {
    pub const fn new() -> Self {
        LineSplitter {
            carry: heapless::Vec::new(),
            discarding: false,
            overlong: 0,
        }
    }

    /// Calls `f` with each line of `chunk` completed by a `\n`, without it.
    /// When `f` breaks, the rest of `chunk` is dropped and the break returned:
    /// the splitter then stands as if the stream had ended after that line.
    pub fn feed(
        &mut self,
        chunk: &[u8],
        mut f: impl FnMut(&[u8]) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        let mut rest = chunk;
        while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
            let (piece, after) = (&rest[..nl], &rest[nl + 1..]);
            rest = after;
            if let Some(line) = self.complete(piece) {
                let flow = f(line);
                self.carry.clear();
                flow?;
            }
        }
        self.hold(rest);
        ControlFlow::Continue(())
    }

    /// At the end of the stream: passes a last line that had no `\n` to `f`,
    /// and readies the splitter for a new stream (keeping the count).
    pub fn finish(&mut self, f: impl FnOnce(&[u8]) -> ControlFlow<()>) -> ControlFlow<()> {
        let pending = !self.discarding && !self.carry.is_empty();
        self.discarding = false;
        let flow = if pending {
            f(&self.carry)
        } else {
            ControlFlow::Continue(())
        };
        self.carry.clear();
        flow
    }

    /// Lines skipped so far for being longer than `N` bytes.
    pub fn overlong(&self) -> usize {
        self.overlong
    }

    /// Joins `piece`, which a `\n` ends, to the carried start of its line;
    /// `None` if the line is overlong.
    fn complete<'a>(&'a mut self, piece: &'a [u8]) -> Option<&'a [u8]> {
        if core::mem::take(&mut self.discarding) {
            return None;
        }
        if self.carry.is_empty() && piece.len() <= N {
            return Some(piece);
        }
        if self.carry.extend_from_slice(piece).is_err() {
            self.carry.clear();
            self.overlong += 1;
            return None;
        }
        Some(&self.carry)
    }

    /// Carries the start of a line that the next chunk continues.
    fn hold(&mut self, piece: &[u8]) {
        if self.discarding || piece.is_empty() {
            return;
        }
        if self.carry.extend_from_slice(piece).is_err() {
            self.carry.clear();
            self.overlong += 1;
            self.discarding = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `stream` in chunks of `chunk` bytes; returns the lines seen.
    fn lines<const N: usize>(stream: &[u8], chunk: usize) -> (Vec<Vec<u8>>, usize) {
        let mut s = LineSplitter::<N>::new();
        let mut out = Vec::new();
        for piece in stream.chunks(chunk) {
            let _ = s.feed(piece, |l| {
                out.push(l.to_vec());
                ControlFlow::Continue(())
            });
        }
        let _ = s.finish(|l| {
            out.push(l.to_vec());
            ControlFlow::Continue(())
        });
        (out, s.overlong())
    }

    #[test]
    fn lines_cross_chunk_boundaries() {
        let stream = b"first\nsecond line\n\nlast";
        let want: Vec<Vec<u8>> = ["first", "second line", "", "last"]
            .iter()
            .map(|s| s.as_bytes().to_vec())
            .collect();
        for chunk in 1..=stream.len() {
            assert_eq!(lines::<16>(stream, chunk), (want.clone(), 0), "{chunk}");
        }
    }

    #[test]
    fn overlong_lines_are_skipped_and_counted_at_any_chunking() {
        let stream = b"ok\n0123456789\nfits-8ch\nabcdefghi";
        for chunk in 1..=stream.len() {
            let (got, overlong) = lines::<8>(stream, chunk);
            assert_eq!(got, vec![b"ok".to_vec(), b"fits-8ch".to_vec()], "{chunk}");
            assert_eq!(overlong, 2, "{chunk}");
        }
    }

    #[test]
    fn a_trailing_newline_makes_no_extra_line() {
        assert_eq!(lines::<4>(b"a\n", 1), (vec![b"a".to_vec()], 0));
        assert_eq!(lines::<4>(b"", 1), (vec![], 0));
    }

    #[test]
    fn a_break_stops_the_feed() {
        let mut s = LineSplitter::<8>::new();
        let mut seen = 0;
        let flow = s.feed(b"a\nb\nc\n", |l| {
            seen += 1;
            if l == b"b" {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
        assert_eq!((flow, seen), (ControlFlow::Break(()), 2));
        // The rest of the chunk was dropped; the next feed starts afresh.
        let mut next = Vec::new();
        let _ = s.feed(b"d\n", |l| {
            next.push(l.to_vec());
            ControlFlow::Continue(())
        });
        assert_eq!(next, vec![b"d".to_vec()]);
    }

    #[test]
    fn finish_readies_a_new_stream() {
        let mut s = LineSplitter::<4>::new();
        let _ = s.feed(b"toolong", |_| ControlFlow::Continue(()));
        let _ = s.finish(|_| panic!("an overlong tail is not a line"));
        let mut got = Vec::new();
        let _ = s.feed(b"ab\n", |l| {
            got.push(l.to_vec());
            ControlFlow::Continue(())
        });
        assert_eq!((got, s.overlong()), (vec![b"ab".to_vec()], 1));
    }
}
