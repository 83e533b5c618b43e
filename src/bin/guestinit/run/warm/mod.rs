//! Boot once, run many. A machine that can be restored boots from the base
//! archive alone (the init, its modules, the kernel's config) with
//! `guestinit.handover`; once it is up, the init sends HRDY and waits on
//! the handover port. On the first run of a machine the host then writes
//! the VM's state into the cache (`store`) before it hands the run over;
//! later runs restore that state and hand theirs over at once. The run
//! (the payload's files, its keys, the host's clock and entropy) always
//! comes over the port, so one snapshot serves every payload.

pub mod handover;
pub mod key;
pub mod store;

use std::io;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::thread::JoinHandle;

use super::diag::Diagnostics;
use super::qmp::Qmp;
use key::Key;
use store::{Found, Pending, Snapshot};

/// What a run that may be warm does with the cache.
pub enum Plan {
    /// Restore this snapshot.
    Restore(Snapshot),
    /// Boot, and take a snapshot into this file at HRDY.
    Take(Pending),
    /// Boot and hand the run over, with no snapshot (no cache directory).
    Boot,
}

/// Looks `key`'s slot up; a snapshot that cannot serve is said once and
/// replaced by the one this run takes.
pub fn plan(key: &Key, diag: &Diagnostics, verbose: bool) -> Plan {
    let Some(dir) = store::dir() else {
        return Plan::Boot;
    };
    let path = store::path(&dir, key);
    match store::open(&path, &key.parts) {
        Found::Usable(snapshot) => {
            if verbose {
                diag.line(&format!("guestinit: warm start from {}", path.display()));
            }
            return Plan::Restore(snapshot);
        }
        Found::Missing if verbose => diag.line(&format!(
            "guestinit: no snapshot of this machine yet: booting cold, then taking {}",
            path.display()
        )),
        Found::Missing => {}
        Found::Unusable(why) => diag.warn(&format!(
            "the snapshot {} is {why}: booting cold and replacing it",
            path.display()
        )),
    }
    match Pending::create(&dir, key) {
        Ok(pending) => Plan::Take(pending),
        Err(e) => {
            diag.warn(&format!(
                "cannot write a snapshot into {} ({e}): booting cold",
                dir.display()
            ));
            Plan::Boot
        }
    }
}

/// The warm side of a running VM, driven by the reactor.
pub struct Session {
    state: State,
    /// The run, until it is handed over, and the port it goes on.
    run: Option<(UnixStream, handover::Run)>,
    sender: Option<JoinHandle<io::Result<()>>>,
    saver: Option<JoinHandle<io::Result<PathBuf>>>,
    diag: Diagnostics,
}

enum State {
    /// Waits for HRDY, then snapshots into the file (if any).
    Booting(Option<Pending>),
    Migrating(Pending),
    /// The run was handed over (or is being).
    HandedOver,
}

impl Session {
    /// A session for `plan`'s run: a restored machine gets its run at once.
    pub fn start(plan: Plan, link: UnixStream, run: handover::Run, diag: &Diagnostics) -> Session {
        let mut session = Session {
            state: State::Booting(None),
            run: Some((link, run)),
            sender: None,
            saver: None,
            diag: diag.clone(),
        };
        match plan {
            Plan::Restore(_) => session.hand_over(),
            Plan::Take(pending) => session.state = State::Booting(Some(pending)),
            Plan::Boot => {}
        }
        session
    }

    /// After the bulk port was read: at HRDY the snapshot starts (or, with
    /// none to take, the run is handed over).
    pub fn on_bulk(&mut self, handover_ready: bool, qmp: &mut Qmp) {
        if !handover_ready || !matches!(self.state, State::Booting(_)) {
            return;
        }
        let State::Booting(pending) = std::mem::replace(&mut self.state, State::HandedOver) else {
            return;
        };
        let Some(pending) = pending else {
            return self.hand_over();
        };
        match qmp.snapshot(&pending.file) {
            Ok(()) => self.state = State::Migrating(pending),
            Err(e) => {
                self.diag
                    .warn(&format!("cannot take the snapshot ({e}); going on without"));
                pending.abandon();
                self.hand_over();
            }
        }
    }

    /// After QMP was read: once the migration ended, the VM runs on, the
    /// file is finished aside, and the run is handed over.
    pub fn on_qmp(&mut self, qmp: &mut Qmp, replay: &[u8]) {
        if !matches!(self.state, State::Migrating(_)) {
            return;
        }
        let Some(result) = qmp.take_migrated() else {
            return;
        };
        let State::Migrating(pending) = std::mem::replace(&mut self.state, State::HandedOver)
        else {
            return;
        };
        if let Err(e) = qmp.resume() {
            self.diag
                .warn(&format!("QMP cont after the snapshot failed: {e}"));
        }
        match result {
            Ok(()) => {
                let replay = replay.to_vec();
                self.saver = Some(std::thread::spawn(move || {
                    let path = pending.finish(&replay)?;
                    if let Some(dir) = path.parent() {
                        store::evict(dir, store::max_bytes(), &path);
                    }
                    Ok(path)
                }));
            }
            Err(why) => {
                self.diag
                    .warn(&format!("the snapshot was not taken: {why}"));
                pending.abandon();
            }
        }
        self.hand_over();
    }

    fn hand_over(&mut self) {
        self.state = State::HandedOver;
        if let Some((link, run)) = self.run.take() {
            self.sender = Some(handover::send(link, run));
        }
    }

    /// Once QEMU is gone: the snapshot's file is finished (or said not to
    /// be); a handover the guest did not take is no news, QEMU's end is.
    pub fn finish(mut self, verbose: bool) {
        // A snapshot not taken (the guest never said HRDY, or QEMU ended
        // mid-migration) leaves no partial file: `Pending`'s drop.
        self.state = State::HandedOver;
        if let Some(saver) = self.saver.take() {
            match saver.join() {
                Ok(Ok(path)) if verbose => self
                    .diag
                    .line(&format!("guestinit: snapshot saved to {}", path.display())),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => self
                    .diag
                    .warn(&format!("the snapshot could not be saved: {e}")),
                Err(_) => self.diag.warn("the snapshot could not be saved"),
            }
        }
        drop(self.sender.take());
    }
}
