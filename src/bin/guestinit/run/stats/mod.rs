//! `--stats-socket PATH`: the scheduler's stats (scx_stats' JSON lines) on
//! a unix socket of the host for the run's lifetime, relayed through the
//! stats port to the guest's `/var/run/scx/root/stats`.
//!
//! scx_stats is one request line, then one reply line. The guest's end is
//! one stream for every client, so the relay serves one request at a
//! time: a client's whole line goes out, exactly one reply line comes
//! back and goes to that client (or is dropped when it has gone), then
//! the next client's turn comes, first come first served. Each client has
//! a thread of its own (at most [`CLIENTS_MAX`]), so an idle or slow one
//! holds up nobody; threads, not the host's poll loop, so that a client's
//! pace never holds up the frame stream.
//!
//! The socket is bound before the boot (`bind`: a live socket at PATH is a
//! usage error then) and served once QEMU runs (`StatsSocket::serve`).

mod client;
mod exchange;
mod listen;
mod relay;
mod reply;
mod turns;

use std::io::Write;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crate::error::{Error, Result};
use listen::{Listening, OwnedPath};
use relay::Relay;
use reply::error_line;

/// Clients connected at once; one more gets an error line and is closed.
pub const CLIENTS_MAX: usize = 16;

/// A client thread's stack: it holds two 4 KiB buffers and formats a line.
const CLIENT_STACK: usize = 128 * 1024;

const EBUSY: i32 = 16;

/// The socket, bound; its file is removed when this is dropped (if it is
/// still this socket's).
pub struct StatsSocket {
    listener: Option<UnixListener>,
    _owned: OwnedPath,
}

/// Listens at `path`: before the boot, so that a path in use or one that
/// cannot be made ends the run before the guest's verdict exists.
pub fn bind(path: &Path) -> Result<StatsSocket> {
    let Listening { listener, owned } = listen::bind(path)?;
    Ok(StatsSocket {
        listener: Some(listener),
        _owned: owned,
    })
}

impl StatsSocket {
    /// Serves the clients through `link`, the host's end of the stats port.
    pub fn serve(&mut self, link: UnixStream) -> Result<()> {
        let failed = |source| Error::VmSetup {
            what: "relaying the stats socket".into(),
            source,
        };
        let Some(listener) = self.listener.take() else {
            return Ok(());
        };
        let relay = Arc::new(Relay::new(link).map_err(failed)?);
        thread::Builder::new()
            .name("stats-accept".into())
            .spawn(move || accept(&listener, &relay))
            .map_err(failed)?;
        Ok(())
    }
}

/// A thread per client, up to [`CLIENTS_MAX`].
fn accept(listener: &UnixListener, relay: &Arc<Relay>) {
    let connected = Arc::new(AtomicUsize::new(0));
    loop {
        let mut client = match listener.accept() {
            Ok((client, _)) => client,
            Err(_) => {
                // EMFILE and the like pass; don't spin on them.
                thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        if connected.fetch_add(1, Ordering::AcqRel) >= CLIENTS_MAX {
            connected.fetch_sub(1, Ordering::AcqRel);
            let why = format!("guestinit: more than {CLIENTS_MAX} stats clients at once");
            // Non-blocking: a short line into an empty socket, never a wait.
            let _ = client.set_nonblocking(true);
            let _ = client.write_all(&error_line(EBUSY, &why));
            continue;
        }
        let (relay, count) = (Arc::clone(relay), Arc::clone(&connected));
        let spawned = thread::Builder::new()
            .name("stats-client".into())
            .stack_size(CLIENT_STACK)
            .spawn(move || {
                client::serve(client, &relay);
                count.fetch_sub(1, Ordering::AcqRel);
            });
        if spawned.is_err() {
            connected.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

#[cfg(test)]
mod tests;
