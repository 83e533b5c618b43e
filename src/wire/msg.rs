//! Payloads of the structured frames: fixed little-endian layouts, encoded
//! into caller buffers and decoded without allocation.

use super::tag::Tag;

/// How a process ended, as WAIT carries it (the syscall layer decodes
/// wait4's status word into it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    Exited(u8),
    Signaled { signal: u8, core_dumped: bool },
}

impl Exit {
    /// The exit code the shell convention gives: the code, or 128 + signal.
    pub fn shell_code(self) -> i32 {
        match self {
            Exit::Exited(code) => code as i32,
            Exit::Signaled { signal, .. } => 128 + signal as i32,
        }
    }
}

/// LIFE phases, ktstr's numbering. 0 is invalid on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    InitStarted = 1,
    PayloadStarting = 2,
    SchedulerDied = 3,
    /// The scheduler lives but never attached; a reason follows.
    SchedulerNotAttached = 4,
    /// A workload under SCHED_EXT made progress on a CPU.
    WorkloadDispatched = 5,
    /// The scheduler is alive and sched_ext reports it enabled.
    SchedulerAttached = 6,
}

impl Phase {
    pub const ALL: [Phase; 6] = [
        Phase::InitStarted,
        Phase::PayloadStarting,
        Phase::SchedulerDied,
        Phase::SchedulerNotAttached,
        Phase::WorkloadDispatched,
        Phase::SchedulerAttached,
    ];

    pub fn from_u8(v: u8) -> Option<Phase> {
        Phase::ALL.into_iter().find(|p| *p as u8 == v)
    }
}

/// KADR: kernel addresses for the host's symbolisation, as ktstr's host
/// reads them. Zero means unknown, hence the `+ 1` on the two that may
/// legitimately be zero.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelAddrs {
    /// How far the kernel loaded from its link-time physical start: the
    /// "Kernel code" resource's start minus `LOAD_PHYSICAL_ADDR` (0x1000000).
    /// The host takes `pa = link_va - __START_KERNEL_map + phys_base`. Not
    /// the kernel's own `phys_base` variable, which also absorbs the virtual
    /// KASLR slide.
    pub phys_base: Option<u64>,
    /// The address of the `page_offset_base` variable (0 = unknown).
    pub page_offset_base: u64,
    /// The runtime address of `_text`.
    pub text: Option<u64>,
}

impl KernelAddrs {
    pub const LEN: usize = 24;

    pub fn to_bytes(self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        let plus1 = |v: Option<u64>| v.map_or(0, |v| v.wrapping_add(1));
        out[0..8].copy_from_slice(&plus1(self.phys_base).to_le_bytes());
        out[8..16].copy_from_slice(&self.page_offset_base.to_le_bytes());
        out[16..24].copy_from_slice(&plus1(self.text).to_le_bytes());
        out
    }

    pub fn from_bytes(b: &[u8]) -> Option<KernelAddrs> {
        if b.len() != Self::LEN {
            return None;
        }
        let minus1 = |v: u64| v.checked_sub(1);
        Some(KernelAddrs {
            phys_base: minus1(u64_at(b, 0)),
            page_offset_base: u64_at(b, 8),
            text: minus1(u64_at(b, 16)),
        })
    }
}

/// Points of the boot timeline (TIME frame), in CLOCK_BOOTTIME nanoseconds,
/// which count from the kernel's start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Mark {
    InitEntry = 1,
    SystemReady = 2,
    PayloadStart = 3,
    PayloadExit = 4,
    OutputDrained = 5,
    MountsDone = 6,
    ModulesLoaded = 7,
    PortFound = 8,
    KernelAddrsRead = 9,
}

impl Mark {
    pub const ALL: [Mark; 9] = [
        Mark::InitEntry,
        Mark::SystemReady,
        Mark::PayloadStart,
        Mark::PayloadExit,
        Mark::OutputDrained,
        Mark::MountsDone,
        Mark::ModulesLoaded,
        Mark::PortFound,
        Mark::KernelAddrsRead,
    ];

    pub fn from_u8(v: u8) -> Option<Mark> {
        Mark::ALL.into_iter().find(|m| *m as u8 == v)
    }

    pub fn name(self) -> &'static str {
        match self {
            Mark::InitEntry => "init entry",
            Mark::SystemReady => "system ready",
            Mark::PayloadStart => "payload start",
            Mark::PayloadExit => "payload exit",
            Mark::OutputDrained => "output drained",
            Mark::MountsDone => "mounts done",
            Mark::ModulesLoaded => "modules loaded",
            Mark::PortFound => "port found",
            Mark::KernelAddrsRead => "kernel addrs",
        }
    }
}

/// TIME payload: a sequence of 9-byte entries, a mark byte then u64 LE
/// nanoseconds. Unknown marks are skipped by readers, so points can be added.
pub struct Timeline;

impl Timeline {
    pub const ENTRY_LEN: usize = 9;

    /// Writes the entry for `mark` at `ns` into `out`.
    pub fn entry(mark: Mark, ns: u64) -> [u8; Self::ENTRY_LEN] {
        let mut out = [0u8; Self::ENTRY_LEN];
        out[0] = mark as u8;
        out[1..].copy_from_slice(&ns.to_le_bytes());
        out
    }

    /// Encodes `marks` into `out`, as many as fit; the bytes written.
    pub fn encode(marks: &[(Mark, u64)], out: &mut [u8]) -> usize {
        let mut len = 0;
        for ((mark, ns), slot) in marks.iter().zip(out.chunks_exact_mut(Self::ENTRY_LEN)) {
            slot.copy_from_slice(&Self::entry(*mark, *ns));
            len += Self::ENTRY_LEN;
        }
        len
    }

    /// The entries of a TIME payload as (raw mark, ns); a trailing partial
    /// entry is ignored.
    pub fn entries(payload: &[u8]) -> impl Iterator<Item = (u8, u64)> + '_ {
        payload
            .chunks_exact(Self::ENTRY_LEN)
            .map(|e| (e[0], u64_at(e, 1)))
    }
}

/// WAIT payload: how the payload process ended, with its resource use and
/// the init's own peak memory. 36 bytes, little-endian.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WaitStatus {
    /// An exit with a code, or a death by signal: never both, never neither.
    pub exit: Exit,
    pub user_us: u64,
    pub system_us: u64,
    /// Peak RSS of the payload (its largest process), KiB.
    pub max_rss_kib: u64,
    /// Peak RSS of PID 1, KiB; 0 when unknown.
    pub init_hwm_kib: u64,
}

impl WaitStatus {
    pub const LEN: usize = 36;

    pub fn to_bytes(self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        let (kind, value, core) = match self.exit {
            Exit::Exited(code) => (0, code, false),
            Exit::Signaled {
                signal,
                core_dumped,
            } => (1, signal, core_dumped),
        };
        out[0] = kind;
        out[1] = value;
        out[2] = core as u8;
        out[4..12].copy_from_slice(&self.user_us.to_le_bytes());
        out[12..20].copy_from_slice(&self.system_us.to_le_bytes());
        out[20..28].copy_from_slice(&self.max_rss_kib.to_le_bytes());
        out[28..36].copy_from_slice(&self.init_hwm_kib.to_le_bytes());
        out
    }

    /// The status in `b`; `None` for a wrong length or an unknown kind.
    pub fn from_bytes(b: &[u8]) -> Option<WaitStatus> {
        if b.len() != Self::LEN {
            return None;
        }
        let exit = match b[0] {
            0 => Exit::Exited(b[1]),
            1 => Exit::Signaled {
                signal: b[1],
                core_dumped: b[2] != 0,
            },
            _ => return None,
        };
        Some(WaitStatus {
            exit,
            user_us: u64_at(b, 4),
            system_us: u64_at(b, 12),
            max_rss_kib: u64_at(b, 20),
            init_hwm_kib: u64_at(b, 28),
        })
    }
}

/// KBID (ktstr 0.50): the booted kernel's GNU build-id, the raw value of
/// the `NT_GNU_BUILD_ID` note in `/sys/kernel/notes`; `None` (an empty
/// payload) when the guest could not read it, and the host skips its check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BuildId<'a>(pub Option<&'a [u8]>);

impl<'a> BuildId<'a> {
    /// ktstr 0.50's bound.
    pub const MAX: usize = 64;

    /// The frame's payload: the id's bytes, or nothing.
    pub fn as_bytes(self) -> &'a [u8] {
        self.0.unwrap_or(&[])
    }

    /// None for a payload over [`Self::MAX`] bytes.
    pub fn from_bytes(b: &'a [u8]) -> Option<BuildId<'a>> {
        (b.len() <= Self::MAX).then_some(BuildId((!b.is_empty()).then_some(b)))
    }
}

/// Decodes the i32 LE payload of EXIT, SCDX and EXCX.
pub fn code_from_bytes(tag: Tag, b: &[u8]) -> Option<i32> {
    let is_code = tag == Tag::EXIT || tag == Tag::SCDX || tag == Tag::EXCX;
    let bytes: [u8; 4] = b.try_into().ok()?;
    is_code.then(|| i32::from_le_bytes(bytes))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(word)
}
