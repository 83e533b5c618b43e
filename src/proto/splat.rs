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

/// What kind of splat: the wire's numbering, 0 is invalid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    Warning = 1,
    Bug = 2,
    Oops = 3,
    Kasan = 4,
    Ubsan = 5,
    Lockdep = 6,
    HungTask = 7,
    SoftLockup = 8,
    RcuStall = 9,
}

impl Kind {
    pub const ALL: [Kind; 9] = [
        Kind::Warning,
        Kind::Bug,
        Kind::Oops,
        Kind::Kasan,
        Kind::Ubsan,
        Kind::Lockdep,
        Kind::HungTask,
        Kind::SoftLockup,
        Kind::RcuStall,
    ];

    pub fn from_u8(v: u8) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| *k as u8 == v)
    }

    /// The name the host prints and `--events` carries.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Warning => "warning",
            Kind::Bug => "bug",
            Kind::Oops => "oops",
            Kind::Kasan => "kasan",
            Kind::Ubsan => "ubsan",
            Kind::Lockdep => "lockdep",
            Kind::HungTask => "hung_task",
            Kind::SoftLockup => "soft_lockup",
            Kind::RcuStall => "rcu_stall",
        }
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

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
