//! Statics handed out once: how the init keeps its large buffers in .bss
//! (resident only once touched) instead of on the stack, without `static mut`.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use rustix::fd::{BorrowedFd, FromRawFd, IntoRawFd, OwnedFd};

pub struct TakeOnce<T> {
    value: UnsafeCell<T>,
    taken: AtomicBool,
}

// SAFETY: the value is reachable only through the one `&mut` that `take`
// hands out, guarded by an atomic flag.
unsafe impl<T: Send> Sync for TakeOnce<T> {}

impl<T> TakeOnce<T> {
    pub const fn new(value: T) -> TakeOnce<T> {
        TakeOnce {
            value: UnsafeCell::new(value),
            taken: AtomicBool::new(false),
        }
    }

    /// The value, the first time only.
    // A `&mut` from `&self` is the point: the flag makes it the only one.
    #[allow(clippy::mut_from_ref)]
    pub fn take(&'static self) -> Option<&'static mut T> {
        if self.taken.swap(true, Ordering::AcqRel) {
            return None;
        }
        // SAFETY: the flag was clear, so no other reference exists, and none
        // will: every later call returns None.
        Some(unsafe { &mut *self.value.get() })
    }
}

/// A static reached by one caller at a time: a re-entrant or concurrent
/// caller is turned away (`None`) instead of aliasing the value.
pub struct Exclusive<T> {
    value: UnsafeCell<T>,
    busy: AtomicBool,
}

// SAFETY: `with` hands out the `&mut` only while it holds the flag.
unsafe impl<T: Send> Sync for Exclusive<T> {}

impl<T> Exclusive<T> {
    pub const fn new(value: T) -> Exclusive<T> {
        Exclusive {
            value: UnsafeCell::new(value),
            busy: AtomicBool::new(false),
        }
    }

    /// Runs `f` on the value; `None` when another call is inside already.
    pub fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> Option<R> {
        if self.busy.swap(true, Ordering::Acquire) {
            return None;
        }
        // SAFETY: the flag was clear and is now ours: no other reference
        // exists until it is cleared below.
        let result = f(unsafe { &mut *self.value.get() });
        self.busy.store(false, Ordering::Release);
        Some(result)
    }
}

/// A descriptor kept open for the rest of the process once set, so that a
/// static can lend it out (the serial consoles).
pub struct StaticFd(AtomicI32);

impl StaticFd {
    pub const fn new() -> StaticFd {
        StaticFd(AtomicI32::new(-1))
    }

    /// Keeps `fd` open for good; a second call keeps the first one.
    pub fn set(&self, fd: OwnedFd) {
        let raw = fd.into_raw_fd();
        if self
            .0
            .compare_exchange(-1, raw, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            // SAFETY: `raw` came from an OwnedFd just above and went nowhere.
            drop(unsafe { OwnedFd::from_raw_fd(raw) });
        }
    }

    pub fn get(&self) -> Option<BorrowedFd<'static>> {
        let raw = self.0.load(Ordering::Acquire);
        // SAFETY: a stored descriptor is never closed (see `set`).
        (raw >= 0).then(|| unsafe { BorrowedFd::borrow_raw(raw) })
    }
}

impl Default for StaticFd {
    fn default() -> StaticFd {
        StaticFd::new()
    }
}

#[cfg(test)]
mod tests {
    use super::{Exclusive, TakeOnce};

    #[test]
    fn exclusive_turns_a_nested_caller_away() {
        static CELL: Exclusive<u32> = Exclusive::new(1);
        let nested = CELL.with(|v| {
            *v += 1;
            CELL.with(|_| ())
        });
        assert_eq!(nested, Some(None));
        assert_eq!(CELL.with(|v| *v), Some(2));
    }

    #[test]
    fn hands_out_once() {
        static CELL: TakeOnce<[u8; 4]> = TakeOnce::new([0; 4]);
        let first = CELL.take().unwrap();
        first[0] = 1;
        assert!(CELL.take().is_none());
    }
}
