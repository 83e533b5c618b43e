//! The host's directories (`run --share`): each record of
//! /.guestinit/shares mounted as virtiofs at its directory, made first
//! with its parents, `MS_RDONLY` for a read-only one. A share that cannot
//! be mounted is warned of, naming it, and the run goes on.

use crate::link::Link;
use crate::small_file::{make_dir, read_prefix};
use core::ffi::CStr;
use guestinit::cell::TakeOnce;
use guestinit::fmt::{ErrnoText, Lossy};
use guestinit::parse::shares::{self, Share};
use guestinit::proto::{limit, path};
use rustix::io::Errno;
use rustix::mount::{mount, MountFlags};

/// The file, and room after it for a copy of a directory's prefix.
static BUF: TakeOnce<[u8; limit::SHARES_BYTES + limit::CWD_BYTES + 1]> =
    TakeOnce::new([0; limit::SHARES_BYTES + limit::CWD_BYTES + 1]);

/// Mounts every share; whether there were any (their writes are synced
/// before the end).
pub fn mount_all(link: &mut Link) -> bool {
    let Some(buf) = BUF.take() else { return false };
    let (file, scratch) = buf.split_at_mut(limit::SHARES_BYTES);
    // A file over the bound (the host never writes one) ends in a cut record.
    let len = match read_prefix(path::SHARES.as_bytes(), file) {
        Err(Errno::NOENT) => return false,
        Err(e) => {
            link.warn(format_args!("read {}: {}", path::SHARES, ErrnoText(e)));
            return false;
        }
        Ok(len) => len,
    };
    for share in shares::split(&file[..len]) {
        match share {
            Ok(share) => {
                if let Err((step, e)) = mount_one(&share, scratch) {
                    link.warn(format_args!(
                        "share {} is not mounted: {step}: {}",
                        Lossy(share.dir.to_bytes()),
                        ErrnoText(e)
                    ));
                }
            }
            // The host never writes one: a hand-made archive's.
            Err(_) => link.warn(format_args!("{}: a malformed record", path::SHARES)),
        }
    }
    true
}

/// Mounts `share`; the step that failed and why.
fn mount_one(share: &Share<'_>, scratch: &mut [u8]) -> Result<(), (&'static str, Errno)> {
    make_dirs(share.dir, scratch).map_err(|e| ("mkdir", e))?;
    let flags = match share.read_only {
        true => MountFlags::RDONLY,
        false => MountFlags::empty(),
    };
    mount(share.tag, share.dir, c"virtiofs", flags, None::<&CStr>).map_err(|e| ("mount virtiofs", e))
}

/// `mkdir -p dir`, each parent through a copy of its prefix in `scratch`
/// (as long as `dir`). One that cannot be made is left to the last mkdir,
/// or the mount, to report.
fn make_dirs(dir: &CStr, scratch: &mut [u8]) -> Result<(), Errno> {
    let bytes = dir.to_bytes();
    let mut end = 1;
    while end < bytes.len() && end < scratch.len() {
        if bytes[end] == b'/' {
            scratch[..end].copy_from_slice(&bytes[..end]);
            scratch[end] = 0;
            if let Ok(parent) = CStr::from_bytes_until_nul(scratch) {
                let _ = make_dir(parent);
            }
        }
        end += 1;
    }
    make_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_is_made_with_its_parents() {
        let root = std::env::temp_dir().join(std::format!("guestinit-shares-{}", std::process::id()));
        let dir = root.join("a/b/c");
        let c = std::ffi::CString::new(dir.to_str().unwrap()).unwrap();
        let mut scratch = [0u8; 4096];
        make_dirs(&c, &mut scratch).ok().unwrap();
        assert!(dir.is_dir());
        make_dirs(&c, &mut scratch).ok().unwrap();
        // No room for the parents' copies: only the last mkdir, which fails.
        std::fs::remove_dir_all(&root).unwrap();
        assert_eq!(make_dirs(&c, &mut [0u8; 4]), Err(Errno::NOENT));
    }
}
