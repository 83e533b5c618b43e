//! The pipe every host test of the init uses: a leaf, so that any module's
//! tests may use it without an import cycle.

use rustix::fd::OwnedFd;

/// A pipe whose ends close on exec: a test that forks a child while
/// another test runs would otherwise hand that child a copy of the write
/// end, and the other test would wait in vain for EOF.
pub fn pipe() -> (OwnedFd, OwnedFd) {
    rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap()
}
