//! CLOCK_BOOTTIME in nanoseconds: it counts from the kernel's start, so the
//! timeline's marks need no reference point of their own.

use rustix::time::Timespec;

pub fn now_ns() -> u64 {
    guestinit::sys::clock::boottime_ns()
}

/// `ms` milliseconds as a poll timeout.
pub fn timespec_ms(ms: u64) -> Timespec {
    Timespec {
        tv_sec: (ms / 1000) as i64,
        tv_nsec: ((ms % 1000) * 1_000_000) as i64,
    }
}

/// The poll timeout until `deadline_ns`, zero once it has passed.
pub fn timespec_until(deadline_ns: u64) -> Timespec {
    let left = deadline_ns.saturating_sub(now_ns());
    Timespec {
        tv_sec: (left / 1_000_000_000) as i64,
        tv_nsec: (left % 1_000_000_000) as i64,
    }
}

/// Sleeps about `ms` milliseconds.
pub fn sleep_ms(ms: u64) {
    let _ = rustix::event::poll(&mut [], Some(&timespec_ms(ms)));
}
