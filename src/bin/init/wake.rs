//! Wake bytes from the host on hvc0 (docs/PROTOCOL.md): a debug dump
//! (SysRq D, which sched_ext answers with a dump into the trace) or an
//! orderly stop of the run; other bytes are passed over. Test mode only:
//! in shell mode hvc0 is the shell's, and the wakes come on the control
//! port (`control`).

use crate::byte_reader;
use crate::console::warning;
use crate::link::Link;
use crate::reactor::{Ctx, Interests, Rank, Source};
use crate::small_file::write_file;
use guestinit::fmt::ErrnoText;
use guestinit::proto::wake;
use rustix::event::PollFlags;
use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::OFlags;

/// hvc0 as a raw tty: every byte arrives as it is sent, none is echoed.
pub fn open() -> Option<OwnedFd> {
    let flags = OFlags::RDWR | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    let tty = crate::small_file::open(b"/dev/hvc0", flags).ok()?;
    match guestinit::sys::tty::make_raw(tty.as_fd()) {
        Ok(()) => Some(tty),
        Err(e) => {
            warning!("hvc0 stays cooked ({}): wake bytes are not read", ErrnoText(e));
            None
        }
    }
}

pub struct WakeBytes {
    tty: Option<OwnedFd>,
}

impl WakeBytes {
    pub fn new(tty: OwnedFd) -> WakeBytes {
        WakeBytes { tty: Some(tty) }
    }
}

impl Source for WakeBytes {
    fn rank(&self) -> Rank {
        Rank::Relay
    }

    fn interests<'s>(&'s self, _link: &Link, out: &mut Interests<'s>) {
        if let Some(tty) = &self.tty {
            out.add(tty.as_fd(), PollFlags::IN, 0);
        }
    }

    fn on_ready(&mut self, _token: u8, _events: PollFlags, ctx: &mut Ctx<'_>) {
        let mut buf = [0u8; 64];
        let bytes = byte_reader::read(&mut self.tty, &mut buf, "hvc0");
        for &byte in bytes {
            match byte {
                wake::DUMP => sysrq_dump(),
                wake::STOP => ctx.stop_run(),
                _ => {}
            }
        }
    }

    fn cleanup(&mut self, _ctx: &mut Ctx<'_>) {
        self.tty = None;
    }

    fn done(&self) -> bool {
        self.tty.is_none()
    }
}

/// SysRq D: sched_ext writes its debug dump to the trace.
pub fn sysrq_dump() {
    if let Err(e) = write_file(b"/proc/sysrq-trigger", b"D") {
        warning!("SysRq D for a debug dump: {}", ErrnoText(e));
    }
}
