//! CLOCK_BOOTTIME in nanoseconds: it counts from the kernel's start, so the
//! timeline's marks need no reference point of their own.

pub fn now_ns() -> u64 {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Milliseconds as the poll timeout until `deadline_ns`, at least 0.
pub fn ms_until(deadline_ns: u64) -> i32 {
    let left = deadline_ns.saturating_sub(now_ns());
    left.div_ceil(1_000_000).min(i32::MAX as u64) as i32
}

/// Sleeps about `ms` milliseconds.
pub fn sleep_ms(ms: u64) {
    let ts = rustix::time::Timespec {
        tv_sec: (ms / 1000) as i64,
        tv_nsec: ((ms % 1000) * 1_000_000) as i64,
    };
    let _ = rustix::event::poll(&mut [], Some(&ts));
}
