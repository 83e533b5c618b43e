//! `--stats-socket PATH`: the scheduler's stats (scx_stats' JSON lines) on
//! a unix socket of the host for the run's lifetime, relayed through the
//! stats port to the guest's `/var/run/scx/root/stats`. One client at a
//! time, bytes unchanged; the socket file is removed when the run ends.
//! Threads, not the host's poll loop: a client's pace must never hold up
//! the frame stream.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread;

use crate::error::{Error, Result};

/// The host's socket; dropping it removes the file.
pub struct StatsSocket {
    path: PathBuf,
}

impl Drop for StatsSocket {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Listens at `path` (a stale socket there is replaced, anything else
/// refused) and relays each client through `link`.
pub fn serve(path: &Path, link: UnixStream) -> Result<StatsSocket> {
    let failed = |source| Error::Write {
        path: path.to_owned(),
        source,
    };
    if fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket()) {
        fs::remove_file(path).map_err(failed)?;
    }
    let listener = UnixListener::bind(path).map_err(failed)?;
    link.set_nonblocking(false).map_err(failed)?;
    let client: Arc<Mutex<Option<UnixStream>>> = Arc::default();
    let replies = link.try_clone().map_err(failed)?;
    let current = Arc::clone(&client);
    thread::spawn(move || to_clients(replies, &current));
    thread::spawn(move || accept(listener, link, &client));
    Ok(StatsSocket {
        path: path.to_owned(),
    })
}

/// One client at a time: its requests go to the guest until it hangs up.
fn accept(listener: UnixListener, mut link: UnixStream, current: &Mutex<Option<UnixStream>>) {
    for mut client in listener.incoming().map_while(io::Result::ok) {
        let Ok(replies) = client.try_clone() else {
            continue;
        };
        *current.lock().unwrap_or_else(|e| e.into_inner()) = Some(replies);
        if io::copy(&mut client, &mut link).is_err() {
            return; // the guest is gone
        }
        *current.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

/// The guest's bytes to whichever client is connected (none: dropped, as
/// they answer a client that has gone).
fn to_clients(mut link: UnixStream, current: &Mutex<Option<UnixStream>>) {
    let mut buf = [0u8; 4096];
    loop {
        let n = match io::Read::read(&mut link, &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if let Some(client) = current.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            let _ = client.write_all(&buf[..n]);
        }
    }
}
