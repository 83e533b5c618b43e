//! The socket file at `--stats-socket PATH`: made mode 0600 as it is
//! bound (the mode is set on the socket before `bind`, which gives it to
//! the file, so no other user can connect even for a moment), a live
//! socket there refused, a stale one replaced, and the file removed at
//! the end only while it is still the one this run made.

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use rustix::fd::IntoRawFd;
use rustix::fs::Mode;
use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};

use crate::error::{Error, Result};

/// Clients that may wait to be accepted (the kernel's queue).
const BACKLOG: i32 = 16;

/// A bound, listening socket at its path; dropping it removes the file
/// if it is still this socket's (same device and inode).
pub struct Listening {
    pub listener: UnixListener,
    pub owned: OwnedPath,
}

/// The socket file this run made.
pub struct OwnedPath {
    path: PathBuf,
    id: (u64, u64),
}

impl Drop for OwnedPath {
    fn drop(&mut self) {
        // Another run may have put its own file there since: leave it.
        if fs::symlink_metadata(&self.path).is_ok_and(|m| (m.dev(), m.ino()) == self.id) {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Listens at `path`. Something already there: a socket that answers is
/// another live relay's (refused, untouched), one that refuses the
/// connection is stale (replaced); any other file is refused.
pub fn bind(path: &Path) -> Result<Listening> {
    let failed = |source| Error::Write {
        path: path.to_owned(),
        source,
    };
    let listener = match bind_0600(path) {
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
            remove_stale(path)?;
            bind_0600(path).map_err(failed)?
        }
        bound => bound.map_err(failed)?,
    };
    let meta = fs::symlink_metadata(path).map_err(failed)?;
    Ok(Listening {
        listener,
        owned: OwnedPath {
            path: path.to_owned(),
            id: (meta.dev(), meta.ino()),
        },
    })
}

/// Removes what is at `path` if it is a stale socket; else says why not.
fn remove_stale(path: &Path) -> Result<()> {
    let taken = |why| Error::StatsSocketTaken {
        path: path.to_owned(),
        why,
    };
    let meta = fs::symlink_metadata(path).map_err(|source| Error::Write {
        path: path.to_owned(),
        source,
    })?;
    if !meta.file_type().is_socket() {
        return Err(taken("a file that is not a socket is there"));
    }
    match UnixStream::connect(path) {
        Ok(_) => Err(taken(
            "a live socket is there (another run's?): give another path or end that run",
        )),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            fs::remove_file(path).map_err(|source| Error::Write {
                path: path.to_owned(),
                source,
            })
        }
        Err(source) => Err(Error::Write {
            path: path.to_owned(),
            source,
        }),
    }
}

/// A listening socket at `path` whose file is mode 0600 from its first
/// moment: fchmod on the unbound socket sets the mode `bind` gives it.
fn bind_0600(path: &Path) -> io::Result<UnixListener> {
    let errno = |e: rustix::io::Errno| io::Error::from_raw_os_error(e.raw_os_error());
    let name = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let addr = SocketAddrUnix::new(name.as_c_str()).map_err(errno)?;
    let socket = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )
    .map_err(errno)?;
    rustix::fs::fchmod(&socket, Mode::RUSR | Mode::WUSR).map_err(errno)?;
    rustix::net::bind(&socket, &addr).map_err(errno)?;
    rustix::net::listen(&socket, BACKLOG).map_err(errno)?;
    Ok(into_std(socket))
}

/// rustix (built without `std`) has descriptor types of its own.
#[allow(unsafe_code, reason = "a listening socket rustix made, handed to std")]
fn into_std(socket: rustix::fd::OwnedFd) -> UnixListener {
    use std::os::fd::FromRawFd;
    // SAFETY: into_raw_fd gives up ownership of an open descriptor, which
    // the new OwnedFd takes over; nothing else holds or closes it.
    UnixListener::from(unsafe { std::os::fd::OwnedFd::from_raw_fd(socket.into_raw_fd()) })
}
