//! Backpressure from the spools to the reactor: a source reads its link
//! only while every spool it feeds has room, and pauses otherwise
//! ([`Flow::Paused`](super::flow::Flow)), so the guest waits (the init
//! holds its frames and blocks the payload) and host memory stays bounded.
//! The first time a spool could not spill, the run says so, once.

use std::io;

use super::diag::Diagnostics;
use super::spool::Spool;

/// The spools one source feeds, by the name the warning gives them.
pub struct Gate {
    spools: Vec<(Spool, String)>,
    diag: Diagnostics,
    /// QEMU is gone: its links hold no more than their socket buffers, so
    /// what is left is read whatever the spools hold.
    lifted: bool,
}

impl Gate {
    pub fn new(diag: &Diagnostics) -> Gate {
        Gate {
            spools: Vec::new(),
            diag: diag.clone(),
            lifted: false,
        }
    }

    /// The source feeds `spool` too.
    pub fn feeds(mut self, spool: Option<&Spool>, name: &str) -> Gate {
        if let Some(spool) = spool {
            self.add(spool, name);
        }
        self
    }

    /// [`Gate::feeds`] on a gate in place.
    pub fn add(&mut self, spool: &Spool, name: &str) {
        self.spools.push((spool.clone(), name.to_owned()));
    }

    /// Whether the source may read: every spool has room. Says once per
    /// spool that it could not spill.
    pub fn open(&self) -> bool {
        if self.lifted {
            return true;
        }
        let mut open = true;
        for (spool, name) in &self.spools {
            if let Some(e) = spool.take_spill_error() {
                self.diag.warn(&held_back(name, &e));
            }
            open &= spool.has_room();
        }
        open
    }

    /// From now on the source reads to the end of its link.
    pub fn lift(&mut self) {
        self.lifted = true;
    }
}

/// The warning for a spool that could not spill: the cause, and what the
/// run does about it.
fn held_back(name: &str, e: &io::Error) -> String {
    let dir = std::env::temp_dir();
    let full = matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    );
    let cause = if full {
        format!("TMPDIR ({}) is full", dir.display())
    } else {
        format!("{name} cannot spill to TMPDIR ({}): {e}", dir.display())
    };
    format!(
        "{cause}: {name} is held back until its reader catches up, and the guest waits meanwhile"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::events::Events;
    use crate::run::spool::Captured;

    #[test]
    fn the_warning_names_a_full_tmpdir_or_the_error() {
        let full = held_back("stdout", &io::ErrorKind::StorageFull.into());
        assert!(full.contains(") is full: stdout is held back until its reader catches up"));
        let denied = held_back("--bulk-log", &io::ErrorKind::PermissionDenied.into());
        assert!(
            denied.starts_with("--bulk-log cannot spill to TMPDIR ("),
            "{denied}"
        );
        assert!(denied.contains("permission denied"), "{denied}");
    }

    #[test]
    fn a_gate_with_room_is_open_and_a_lifted_one_always() {
        let err = Captured::default();
        let diag = Diagnostics::new(err.spool(), Events::new(None));
        let out = Captured::default();
        let mut gate = Gate::new(&diag)
            .feeds(Some(&out.spool()), "stdout")
            .feeds(None, "none");
        assert!(gate.open());
        gate.lift();
        assert!(gate.open());
        diag.close();
        assert!(err.take().is_empty(), "nothing to say");
    }
}
