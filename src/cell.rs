//! Statics handed out once: how the init keeps its large buffers in .bss
//! (resident only once touched) instead of on the stack, without `static mut`.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, Ordering};

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

#[cfg(test)]
mod tests {
    use super::TakeOnce;

    #[test]
    fn hands_out_once() {
        static CELL: TakeOnce<[u8; 4]> = TakeOnce::new([0; 4]);
        let first = CELL.take().unwrap();
        first[0] = 1;
        assert!(CELL.take().is_none());
    }
}
