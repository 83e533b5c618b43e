//! KWRN: one kernel splat (a `WARNING:`, `BUG:`, Oops, KASAN or UBSAN
//! report, lockdep splat, hung task, soft lockup or RCU stall) as the init
//! read it from `/dev/kmsg`: its kind, the first record's sequence number
//! and timestamp, and the text of its records, one per line, up to the end
//! of the trace or [`TEXT_MAX`] bytes, whichever came first.
//!
//! Layout: kind u8, flags u8 (bit 0: [`Splat::cut`]), seq u64 LE,
//! ts_usec u64 LE, then the text (the kernel's escaped record texts, each
//! followed by `\n`).

/// Text bytes one splat carries at most: a WARN_ON's splat on x86 (header,
/// modules, registers, call trace) is 2 to 4 KiB; a frame holds 16 KiB.
pub const TEXT_MAX: usize = 8192;
/// The fixed part before the text.
pub const HEAD_LEN: usize = 18;
/// The largest payload of a KWRN frame.
pub const MAX_LEN: usize = HEAD_LEN + TEXT_MAX;

const CUT: u8 = 1;

pub use crate::parse::kmsg::Kind;
use crate::parse::kmsg::{classify, ends_splat, Record};

/// One KWRN frame's payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Splat<'a> {
    pub kind: Kind,
    /// Lines were left out: the text reached [`TEXT_MAX`] before the end.
    pub cut: bool,
    /// The first record's sequence number in the kernel's log.
    pub seq: u64,
    /// The first record's timestamp, in µs since boot.
    pub ts_usec: u64,
    pub text: &'a [u8],
}

impl<'a> Splat<'a> {
    /// Writes the payload into `out`; its length, or None when `out` is
    /// short or the text is over [`TEXT_MAX`].
    pub fn encode(&self, out: &mut [u8]) -> Option<usize> {
        let len = HEAD_LEN + self.text.len();
        if self.text.len() > TEXT_MAX || out.len() < len {
            return None;
        }
        out[0] = self.kind as u8;
        out[1] = if self.cut { CUT } else { 0 };
        out[2..10].copy_from_slice(&self.seq.to_le_bytes());
        out[10..18].copy_from_slice(&self.ts_usec.to_le_bytes());
        out[HEAD_LEN..len].copy_from_slice(self.text);
        Some(len)
    }

    /// The splat in `b`; None for an unknown kind, unknown flags, a short
    /// head or a text over [`TEXT_MAX`].
    pub fn decode(b: &'a [u8]) -> Option<Splat<'a>> {
        if b.len() < HEAD_LEN || b.len() > MAX_LEN || b[1] & !CUT != 0 {
            return None;
        }
        let u64_at = |at: usize| {
            let mut v = [0u8; 8];
            v.copy_from_slice(&b[at..at + 8]);
            u64::from_le_bytes(v)
        };
        Some(Splat {
            kind: Kind::from_u8(b[0])?,
            cut: b[1] & CUT != 0,
            seq: u64_at(2),
            ts_usec: u64_at(10),
            text: &b[HEAD_LEN..],
        })
    }

    /// The first line: what the summary names.
    pub fn headline(&self) -> &'a [u8] {
        self.text.split(|&b| b == b'\n').next().unwrap_or(&[])
    }
}

/// What [`Collector::feed`] did with a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fed {
    /// Taken (or passed over: not the kernel's, or outside any splat).
    Taken,
    /// Not taken: a new splat begins while one is [`Collector::ready`].
    /// Send that one, [`Collector::clear`], and feed this record again.
    Again,
}

/// The splat being gathered. All zero when there is none, so that a
/// static collector is all zero too and lies in .bss, not in the binary.
#[derive(Clone, Copy)]
struct Head {
    /// [`Kind`]'s number; 0: no splat.
    kind: u8,
    cut: bool,
    seq: u64,
    ts_usec: u64,
}

const NO_HEAD: Head = Head {
    kind: 0,
    cut: false,
    seq: 0,
    ts_usec: 0,
};

/// Gathers the kernel's records into splats, one at a time, within
/// [`TEXT_MAX`] bytes (`N` is at least that).
pub struct Collector<const N: usize> {
    text: [u8; N],
    len: usize,
    head: Head,
    ready: bool,
}

impl<const N: usize> Default for Collector<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Collector<N> {
    pub const fn new() -> Self {
        Collector {
            text: [0; N],
            len: 0,
            head: NO_HEAD,
            ready: false,
        }
    }

    fn kind(&self) -> Option<Kind> {
        Kind::from_u8(self.head.kind)
    }

    /// A splat is being gathered and not yet ended.
    pub fn is_open(&self) -> bool {
        self.kind().is_some() && !self.ready
    }

    /// The finished splat, until [`Collector::clear`].
    pub fn ready(&self) -> Option<Splat<'_>> {
        let kind = self.kind().filter(|_| self.ready)?;
        Some(Splat {
            kind,
            cut: self.head.cut,
            seq: self.head.seq,
            ts_usec: self.head.ts_usec,
            text: &self.text[..self.len],
        })
    }

    /// Forgets the finished splat.
    pub fn clear(&mut self) {
        self.head = NO_HEAD;
        self.ready = false;
        self.len = 0;
    }

    /// Ends the open splat where it is (no record came for a while, or
    /// the run ends).
    pub fn close(&mut self) {
        if self.kind().is_some() {
            self.ready = true;
        }
    }

    /// Takes one record. A new splat's first line ends the open one,
    /// except an Oops header inside a BUG (a fault's `BUG: unable to
    /// handle...` is followed by its Oops).
    pub fn feed(&mut self, r: &Record<'_>) -> Fed {
        if !r.is_kernel() {
            return Fed::Taken;
        }
        let kind = classify(r.text);
        if self.ready {
            return match kind {
                Some(_) => Fed::Again,
                None => Fed::Taken,
            };
        }
        match (self.kind(), kind) {
            (Some(Kind::Bug), Some(Kind::Oops)) => {}
            (Some(_), Some(_)) => {
                self.ready = true;
                return Fed::Again;
            }
            (Some(_), None) => {}
            (None, Some(kind)) => {
                self.head = Head {
                    kind: kind as u8,
                    cut: false,
                    seq: r.seq,
                    ts_usec: r.ts_usec,
                };
                self.len = 0;
            }
            (None, None) => return Fed::Taken,
        }
        self.push_line(r.text);
        if ends_splat(r.text) {
            self.ready = true;
        }
        Fed::Taken
    }

    fn push_line(&mut self, line: &[u8]) {
        let end = self.len + line.len() + 1;
        // Once cut, the rest is left out: the text never has a gap.
        if self.head.cut || end > N.min(TEXT_MAX) {
            self.head.cut = true;
            return;
        }
        self.text[self.len..end - 1].copy_from_slice(line);
        self.text[end - 1] = b'\n';
        self.len = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kern(seq: u64, text: &[u8]) -> Record<'_> {
        Record {
            level: 4,
            facility: 0,
            seq,
            ts_usec: seq * 10,
            text,
        }
    }

    #[test]
    fn a_splat_runs_to_its_end_marker_and_user_records_never_count() {
        let mut c = Collector::<256>::new();
        let user = Record {
            facility: 1,
            ..kern(1, b"WARNING: CPU: 0 PID: 1 at forged")
        };
        assert_eq!(c.feed(&user), Fed::Taken);
        assert!(!c.is_open(), "a user record starts nothing");
        c.feed(&kern(2, b"------------[ cut here ]------------"));
        c.feed(&kern(3, b"WARNING: CPU: 0 PID: 1 at m.c:6 f"));
        c.feed(&user);
        c.feed(&kern(4, b"Call Trace:"));
        assert!(c.is_open() && c.ready().is_none());
        c.feed(&kern(5, b"---[ end trace 0000000000000000 ]---"));
        let s = c.ready().expect("ended by the marker");
        assert_eq!(
            (s.kind, s.seq, s.ts_usec, s.cut),
            (Kind::Warning, 3, 30, false)
        );
        assert_eq!(s.text, b"WARNING: CPU: 0 PID: 1 at m.c:6 f\nCall Trace:\n---[ end trace 0000000000000000 ]---\n");
        assert_eq!(
            c.feed(&kern(6, b"after")),
            Fed::Taken,
            "an ordinary line waits"
        );
        assert_eq!(
            c.feed(&kern(7, b"BUG: x")),
            Fed::Again,
            "a new splat waits for the send"
        );
        c.clear();
        assert_eq!(c.feed(&kern(7, b"BUG: x")), Fed::Taken);
        assert_eq!(
            c.feed(&kern(8, b"Oops: 0000 [#1] SMP")),
            Fed::Taken,
            "the BUG's Oops is the same splat"
        );
        assert_eq!(
            c.feed(&kern(9, b"INFO: task a:1 blocked for more than 2 seconds.")),
            Fed::Again
        );
        assert_eq!(c.ready().unwrap().text, b"BUG: x\nOops: 0000 [#1] SMP\n");
    }

    #[test]
    fn a_long_splat_is_cut_at_the_bound_and_says_so() {
        let mut c = Collector::<32>::new();
        c.feed(&kern(1, b"UBSAN: x in a.c:1:2"));
        c.feed(&kern(2, b"0123456789abcdef"));
        c.feed(&kern(3, b"short"));
        c.close();
        let s = c.ready().unwrap();
        assert!(s.cut);
        assert_eq!(s.text, b"UBSAN: x in a.c:1:2\n", "nothing after the cut");
    }

    #[test]
    fn a_splat_round_trips_and_bad_heads_are_refused() {
        let s = Splat {
            kind: Kind::Lockdep,
            cut: true,
            seq: 7,
            ts_usec: 1_234_567,
            text: b"WARNING: possible recursive locking detected\nx\n",
        };
        let mut buf = [0u8; 100];
        let n = s.encode(&mut buf).unwrap();
        assert_eq!(Splat::decode(&buf[..n]), Some(s));
        assert_eq!(
            s.headline(),
            b"WARNING: possible recursive locking detected"
        );
        let mut bad = buf;
        bad[0] = 0;
        assert_eq!(Splat::decode(&bad[..n]), None, "kind 0");
        bad = buf;
        bad[1] = 2;
        assert_eq!(Splat::decode(&bad[..n]), None, "unknown flag");
        assert_eq!(Splat::decode(&buf[..HEAD_LEN - 1]), None, "short head");
        assert_eq!(s.encode(&mut buf[..n - 1]), None, "short buffer");
    }
}
