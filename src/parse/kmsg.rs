//! `/dev/kmsg` records (Documentation/ABI/testing/dev-kmsg): one `read`
//! gives one record, `PRI,SEQ,TS_USEC,FLAGS[,...];TEXT\n`, then
//! continuation lines ` KEY=VALUE\n` (the device's dictionary), which are
//! passed over. The kernel escapes every byte of TEXT below 0x20, above
//! 0x7e and `\` as `\xNN` (printk.c, `msg_add_ext_text`), so TEXT is one
//! line of ASCII.
//!
//! The classifier names the first line of each kernel splat by what the
//! kernel prints there, and [`Collector`] gathers a splat's records up to
//! the end of its trace into one `proto::splat::Splat`.

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

/// How lockdep's own `WARNING: ` headers go on (kernel/locking/lockdep.c:
/// `print_circular_bug_header`, `print_deadlock_bug`, `print_usage_bug`,
/// `print_irq_inversion_bug`, `print_unlock_imbalance_bug`,
/// `print_lock_contention_bug`, `print_freed_lock_bug`,
/// `print_held_locks_bug`, `lockdep_rcu_suspicious`...), as against
/// `__warn`'s `CPU: ...` (or whatever a later kernel puts there).
const LOCKDEP: [&[u8]; 9] = [
    b"possible ",
    b"inconsistent lock state",
    b"bad unlock balance",
    b"bad contention",
    b"held lock freed",
    b"lock held ",
    b"Nested lock",
    b"suspicious RCU usage",
    b"chain_key collision",
];

/// The splat `text`, a kernel record's, begins; None for every other line.
/// What each kernel prints (v6.1, still so in 6.x):
/// - KASAN: mm/kasan/report.c, `print_error_description`: `"BUG: KASAN: %s in %pS"`;
/// - soft lockup: kernel/watchdog.c (pr_fmt `watchdog: `),
///   `"BUG: soft lockup - CPU#%d stuck for %us! [%s:%d]"`;
/// - lockdep: kernel/locking/lockdep.c, `"WARNING: possible circular
///   locking dependency detected"`, `"WARNING: possible recursive locking
///   detected"`, `"WARNING: inconsistent lock state"`, `"WARNING: bad unlock
///   balance detected!"`, `"WARNING: suspicious RCU usage"` and the like
///   (see [`LOCKDEP`]);
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
        let lockdep = LOCKDEP.iter().any(|p| rest.starts_with(p))
            || contains(rest, b"-safe -> ")
            || contains(rest, b" still has locks held");
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
            (b"WARNING: HARDIRQ-safe -> HARDIRQ-unsafe lock order detected", Some(Kind::Lockdep)),
            (b"WARNING: kworker/0:1/12 still has locks held!", Some(Kind::Lockdep)),
            (b"WARNING: kernel/locking/mutex.c:582 at __mutex_lock+0x1/0x2, CPU#0: t/1", Some(Kind::Warning)),
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
}
