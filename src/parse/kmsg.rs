//! `/dev/kmsg` records (Documentation/ABI/testing/dev-kmsg): one `read`
//! gives one record, `PRI,SEQ,TS_USEC,FLAGS[,...];TEXT\n`, then
//! continuation lines ` KEY=VALUE\n` (the device's dictionary), which are
//! passed over. The kernel escapes every byte of TEXT below 0x20, above
//! 0x7e and `\` as `\xNN` (printk.c, `msg_add_ext_text`), so TEXT is one
//! line of ASCII.
//!
//! The classifier names the first line of each kernel splat by what the
//! kernel prints there, and [`Collector`] gathers a splat's records up to
//! the end of its trace into one [`Splat`].

use crate::proto::splat::{Kind, Splat, TEXT_MAX};

/// The kernel's own facility: `LOG_KERN`.
pub const KERNEL_FACILITY: u32 = 0;

/// One record's header fields and text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// PRI's low 3 bits.
    pub level: u8,
    /// PRI >> 3. The kernel gives writes to /dev/kmsg LOG_USER (1) unless
    /// they name another non-zero facility (printk.c, `devkmsg_write`:
    /// "If no prefix or no userspace facility is specified, we enforce
    /// LOG_USER, to be able to reliably distinguish kernel-generated
    /// messages from userspace-injected ones"), so 0 is the kernel's.
    pub facility: u32,
    pub seq: u64,
    pub ts_usec: u64,
    pub text: &'a [u8],
}

impl Record<'_> {
    pub fn is_kernel(&self) -> bool {
        self.facility == KERNEL_FACILITY
    }
}

/// A decimal number of at most 20 digits, without overflow.
fn number(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 20 {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| {
        d.is_ascii_digit().then_some(())?;
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// The record in `buf`, one read's bytes; None when the header is not
/// `PRI,SEQ,TS,FLAGS[,...];`.
pub fn record(buf: &[u8]) -> Option<Record<'_>> {
    let semi = buf.iter().position(|&b| b == b';')?;
    let (head, rest) = (&buf[..semi], &buf[semi + 1..]);
    let mut fields = head.split(|&b| b == b',');
    let pri = number(fields.next()?)?;
    let seq = number(fields.next()?)?;
    let ts_usec = number(fields.next()?)?;
    // FLAGS: `-`, or `c`/`+` on kernels that still marked continuations.
    fields.next().filter(|f| f.len() == 1)?;
    let pri = u32::try_from(pri).ok()?;
    let text = match rest.iter().position(|&b| b == b'\n') {
        Some(end) => &rest[..end],
        None => rest,
    };
    Some(Record {
        level: (pri & 7) as u8,
        facility: pri >> 3,
        seq,
        ts_usec,
        text,
    })
}

/// `text` from `needle` on: at its start, or after one `prefix: ` of
/// lower-case letters, digits and `_` (the `pr_fmt` of `watchdog: ` and
/// `rcu: `).
fn at_start(text: &[u8], needle: &[u8]) -> bool {
    if text.starts_with(needle) {
        return true;
    }
    let prefix = text
        .iter()
        .take_while(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || **b == b'_')
        .count();
    prefix > 0 && text[prefix..].starts_with(b": ") && text[prefix + 2..].starts_with(needle)
}

fn contains(text: &[u8], needle: &[u8]) -> bool {
    text.windows(needle.len()).any(|w| w == needle)
}

/// Oops's header line (arch/x86/kernel/dumpstack.c, `__die_header`:
/// `"%s: %04lx [#%d]%s..."`, str = "Oops", "general protection fault..."):
/// `: `, four hex digits, ` [#`, digits, `]`.
fn is_die_header(text: &[u8]) -> bool {
    text.windows(9).enumerate().any(|(at, w)| {
        w[0] == b':'
            && w[1] == b' '
            && w[2..6].iter().all(u8::is_ascii_hexdigit)
            && &w[6..9] == b" [#"
            && {
                let digits = text[at + 9..]
                    .iter()
                    .take_while(|b| b.is_ascii_digit())
                    .count();
                digits > 0 && text.get(at + 9 + digits) == Some(&b']')
            }
    })
}

/// The splat `text`, a kernel record's, begins; None for every other line.
/// What each kernel prints (v6.1, still so in 6.x):
/// - KASAN: mm/kasan/report.c, `print_error_description`: `"BUG: KASAN: %s in %pS"`;
/// - soft lockup: kernel/watchdog.c (pr_fmt `watchdog: `),
///   `"BUG: soft lockup - CPU#%d stuck for %us! [%s:%d]"`;
/// - lockdep: kernel/locking/lockdep.c, `"WARNING: possible circular
///   locking dependency detected"`, `"WARNING: possible recursive locking
///   detected"`, `"WARNING: inconsistent lock state"`, `"WARNING: bad unlock
///   balance detected!"`, `"WARNING: suspicious RCU usage"` and the like:
///   a `WARNING: ` whose line is not `__warn`'s and names a lock or RCU;
/// - WARNING: kernel/panic.c, `__warn`: `"WARNING: CPU: %d PID: %d at %pS"`;
/// - BUG: `"BUG: ..."` (mm/fault, sched, slub...), lib/bug.c's
///   `"kernel BUG at %s:%u!"`;
/// - Oops: see [`is_die_header`];
/// - UBSAN: lib/ubsan.c, `ubsan_prologue`: `"UBSAN: %s in %s:%d:%d"`;
/// - hung task: kernel/hung_task.c, `"INFO: task %s:%d blocked for more
///   than %ld seconds."`;
/// - RCU stall: kernel/rcu/tree_stall.h (pr_fmt `rcu: `), `"INFO: %s
///   detected stalls on CPUs/tasks:"` and `"INFO: %s self-detected stall
///   on CPU"`.
pub fn classify(text: &[u8]) -> Option<Kind> {
    if at_start(text, b"BUG: KASAN: ") {
        return Some(Kind::Kasan);
    }
    if at_start(text, b"BUG: soft lockup") {
        return Some(Kind::SoftLockup);
    }
    if at_start(text, b"WARNING: ") {
        let rest = &text[text.windows(9).position(|w| w == b"WARNING: ").unwrap_or(0) + 9..];
        let lockdep = !rest.starts_with(b"CPU: ")
            && (contains(rest, b"lock") || contains(rest, b"RCU usage"));
        return Some(if lockdep {
            Kind::Lockdep
        } else {
            Kind::Warning
        });
    }
    if at_start(text, b"BUG: ") || at_start(text, b"kernel BUG at ") {
        return Some(Kind::Bug);
    }
    if at_start(text, b"UBSAN: ") {
        return Some(Kind::Ubsan);
    }
    if at_start(text, b"INFO: task ") && contains(text, b" blocked for more than ") {
        return Some(Kind::HungTask);
    }
    if at_start(text, b"INFO: ")
        && (contains(text, b" detected stalls on CPUs/tasks")
            || contains(text, b" self-detected stall on CPU"))
    {
        return Some(Kind::RcuStall);
    }
    if is_die_header(text) {
        return Some(Kind::Oops);
    }
    None
}

/// The line that closes a splat: kernel/panic.c's `print_oops_end_marker`,
/// `"---[ end trace %016llx ]---"`, or the `=====` rule that KASAN
/// (`end_report`) and UBSAN (`ubsan_epilogue`) close their reports with
/// (the one before the report's first line is never inside it).
pub fn ends_splat(text: &[u8]) -> bool {
    text.starts_with(b"---[ end trace") || (text.len() >= 20 && text.iter().all(|&b| b == b'='))
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

    #[test]
    fn a_record_is_its_header_fields_and_first_line() {
        let r = record(
            b"4,512,1234567,-,caller=T1;WARNING: CPU: 0 PID: 1 at x.c:5 f+0x1/0x2\n SUBSYSTEM=x\n",
        )
        .unwrap();
        assert_eq!(
            (r.level, r.facility, r.seq, r.ts_usec),
            (4, 0, 512, 1234567)
        );
        assert_eq!(r.text, b"WARNING: CPU: 0 PID: 1 at x.c:5 f+0x1/0x2");
        assert!(r.is_kernel());
        let user = record(b"12,9,10,-;WARNING: forged\n").unwrap();
        assert_eq!((user.facility, user.level), (1, 4));
        assert!(!user.is_kernel());
        for bad in [
            &b"4,1,2;x"[..],
            b"4,1,2,--;x",
            b"a,1,2,-;x",
            b"4,1,2,-",
            b"99999999999,1,2,-;x",
            b"",
        ] {
            assert_eq!(record(bad), None, "{:?}", core::str::from_utf8(bad));
        }
    }

    #[test]
    fn each_kind_is_named_by_the_line_the_kernel_prints() {
        let cases: &[(&[u8], Option<Kind>)] = &[
            (b"WARNING: CPU: 1 PID: 95 at /tmp/m/kwarn.c:6 kwarn_init+0x15/0x1000 [kwarn]", Some(Kind::Warning)),
            (b"WARNING: possible circular locking dependency detected", Some(Kind::Lockdep)),
            (b"WARNING: possible recursive locking detected", Some(Kind::Lockdep)),
            (b"WARNING: suspicious RCU usage", Some(Kind::Lockdep)),
            (b"BUG: kernel NULL pointer dereference, address: 0000000000000000", Some(Kind::Bug)),
            (b"kernel BUG at mm/slub.c:379!", Some(Kind::Bug)),
            (b"BUG: KASAN: slab-out-of-bounds in kmalloc_oob_right+0x1c8/0x400", Some(Kind::Kasan)),
            (b"UBSAN: shift-out-of-bounds in lib/test_ubsan.c:29:6", Some(Kind::Ubsan)),
            (b"Oops: 0002 [#1] PREEMPT SMP NOPTI", Some(Kind::Oops)),
            (b"general protection fault, probably for non-canonical address 0xdead: 0000 [#1] SMP", Some(Kind::Oops)),
            (b"INFO: task kworker/0:1:12 blocked for more than 120 seconds.", Some(Kind::HungTask)),
            (b"watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [spin:99]", Some(Kind::SoftLockup)),
            (b"rcu: INFO: rcu_sched detected stalls on CPUs/tasks:", Some(Kind::RcuStall)),
            (b"rcu: INFO: rcu_preempt self-detected stall on CPU", Some(Kind::RcuStall)),
            (b"Linux version 6.1.0-28-amd64", None),
            (b"usb: BUGS: none", None),
            (b"Modules linked in: kwarn(O+)", None),
            (b"INFO: task list ok", None),
            (b"x: 0002 [#]", None),
        ];
        for (text, want) in cases {
            assert_eq!(
                classify(text),
                *want,
                "{}",
                core::str::from_utf8(text).unwrap()
            );
        }
    }

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
}
