//! `--share HOST_DIR[:GUEST_DIR][,ro]`: a host directory the guest mounts
//! over virtiofs. The spec is read by a pure parser (the guest side of it
//! checked there: GUEST_DIR absolute, not one the guest mounts over); the
//! list is checked as a whole (no GUEST_DIR twice, at most [`MAX`]) and
//! each HOST_DIR on the host before the boot, so every mistake is a usage
//! error (249) naming the share.

use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use guestinit::parse::shares::Share as Record;
use guestinit::proto;
use guestinit::proto::path::{is_reserved, MOUNTED};

use crate::error::{Error, Result};
use crate::guest_path;

/// Shares at most: each is a PCI device of its own, beside up to 16 disks
/// on a bus of 32 slots.
pub const MAX: usize = 8;

/// One `--share`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Share {
    /// Absolute, as written (no symlink resolved): what virtiofsd serves.
    pub host_dir: PathBuf,
    /// Absolute and normalized (no `.`, `..` or trailing `/`).
    pub guest_dir: PathBuf,
    pub read_only: bool,
}

impl Share {
    /// `HOST_DIR`, `HOST_DIR:GUEST_DIR`, either with `,ro` (or `,rw`, the
    /// default, written out for a name that ends in `,ro`). GUEST_DIR is
    /// after the last `:/` (a colon without one is a relative GUEST_DIR),
    /// so a HOST_DIR with a colon needs its GUEST_DIR written out.
    pub fn parse(spec: &str) -> std::result::Result<Share, String> {
        let (dirs, read_only) = match (spec.strip_suffix(",ro"), spec.strip_suffix(",rw")) {
            (Some(dirs), _) => (dirs, true),
            (None, Some(dirs)) => (dirs, false),
            (None, None) => (spec, false),
        };
        // GUEST_DIR is absolute: it starts after the last `:/`; a colon
        // with no `/` after it names a relative one.
        let split = dirs.rfind(":/").or_else(|| dirs.rfind(':'));
        let (host, guest) = match split {
            Some(at) => (&dirs[..at], Some(&dirs[at + 1..])),
            None => (dirs, None),
        };
        if host.is_empty() {
            return Err("a share needs a host directory: HOST_DIR[:GUEST_DIR][,ro]".into());
        }
        let host_dir = std::path::absolute(host).map_err(|e| format!("{host}: {e}"))?;
        let guest_dir = match guest {
            Some(guest) if !guest.starts_with('/') => {
                return Err(format!(
                    "GUEST_DIR {guest:?} is not absolute (a HOST_DIR with a colon needs \
                     its GUEST_DIR written out: {dirs}:{dirs})"
                ))
            }
            Some(guest) => guest_path::normalize(Path::new(guest)),
            None => guest_path::normalize(&host_dir),
        };
        guest_dir_allowed(&guest_dir)?;
        Ok(Share {
            host_dir,
            guest_dir,
            read_only,
        })
    }

    /// The share's HOST_DIR is a directory here: else a usage error.
    pub fn check_host(&self) -> Result<()> {
        let why = match fs::metadata(&self.host_dir) {
            Ok(meta) if meta.is_dir() => return Ok(()),
            Ok(_) => "not a directory".to_owned(),
            Err(e) => e.to_string(),
        };
        Err(Error::ShareHostDir {
            path: self.host_dir.clone(),
            why,
        })
    }
}

/// Where the kernel's own filesystems are: no directory can be made in
/// /proc and /sys, and the init mounts more under /dev later (devpts).
const KERNEL_DIRS: [&str; 3] = ["/proc", "/sys", "/dev"];

/// A GUEST_DIR the guest can mount on and keep: not `/` (the init's own
/// root), not a directory the init mounts its own filesystem on
/// ([`MOUNTED`]) nor one under the kernel's, not one of guestinit's files,
/// and one the init's buffer holds. Under /tmp and /run is fine: their
/// tmpfs is mounted before the shares.
fn guest_dir_allowed(dir: &Path) -> std::result::Result<(), String> {
    let shown = dir.display();
    if dir == Path::new("/") {
        return Err("GUEST_DIR / would hide the guest's own root (the init, /dev)".into());
    }
    if MOUNTED.iter().any(|m| dir == Path::new(m)) {
        return Err(format!(
            "GUEST_DIR {shown} is where the guest mounts its own filesystem (give a directory below it, or another)"
        ));
    }
    if let Some(kernel) = KERNEL_DIRS.iter().find(|k| dir.starts_with(k)) {
        return Err(format!(
            "GUEST_DIR {shown} is under {kernel}, where the guest has the kernel's own filesystem"
        ));
    }
    let name = dir
        .to_str()
        .ok_or(format!("GUEST_DIR {shown} is not UTF-8"))?;
    if is_reserved(name.trim_start_matches('/')) {
        return Err(format!(
            "GUEST_DIR {shown} would hide guestinit's own files"
        ));
    }
    if name.len() > proto::limit::CWD_BYTES {
        return Err(format!("GUEST_DIR {shown} is longer than a path can be"));
    }
    Ok(())
}

/// The list as a whole: at most [`MAX`], and no GUEST_DIR twice (the
/// second mount would hide the first).
pub fn check_list(shares: &[Share]) -> Result<()> {
    if shares.len() > MAX {
        return Err(Error::TooManyShares {
            count: shares.len(),
            max: MAX,
        });
    }
    for (i, share) in shares.iter().enumerate() {
        if shares[..i].iter().any(|s| s.guest_dir == share.guest_dir) {
            return Err(Error::ShareTwice {
                dir: share.guest_dir.clone(),
            });
        }
    }
    Ok(())
}

/// Share `index`'s virtio-fs tag, which its QEMU device carries and the
/// guest mounts by.
pub fn tag(index: usize) -> String {
    format!("share{index}")
}

/// `/.guestinit/shares` for `shares`, in mount order; `None` for none.
pub fn file(shares: &[Share]) -> Result<Option<Vec<u8>>> {
    if shares.is_empty() {
        return Ok(None);
    }
    let mut out = Vec::new();
    for (index, share) in shares.iter().enumerate() {
        // Neither has a NUL: a tag is ours, a path cannot.
        let tag = CString::new(tag(index)).unwrap_or_default();
        let dir = CString::new(share.guest_dir.as_os_str().as_bytes()).unwrap_or_default();
        Record {
            tag: &tag,
            dir: &dir,
            read_only: share.read_only,
        }
        .write_to(&mut out);
    }
    if out.len() > proto::limit::SHARES_BYTES {
        return Err(Error::SharesTooLong { bytes: out.len() });
    }
    Ok(Some(out))
}

/// The kernel modules the guest mounts a share with (packed where the
/// kernel has them as modules: Debian 12's).
pub const MODULES: [&str; 2] = ["fuse", "virtiofs"];

#[cfg(test)]
mod tests {
    use super::*;

    fn share(host: &str, guest: &str, read_only: bool) -> Share {
        Share {
            host_dir: host.into(),
            guest_dir: guest.into(),
            read_only,
        }
    }

    #[test]
    fn guest_dir_defaults_to_the_host_dir_and_ro_is_a_suffix() {
        assert_eq!(Share::parse("/usr"), Ok(share("/usr", "/usr", false)));
        assert_eq!(Share::parse("/usr,ro"), Ok(share("/usr", "/usr", true)));
        assert_eq!(
            Share::parse("/srv/a,b:/data/,rw"),
            Ok(share("/srv/a,b", "/data", false))
        );
        assert_eq!(
            Share::parse("/x:y:/x:y,ro"),
            Ok(share("/x:y", "/x:y", true))
        );
        assert_eq!(Share::parse("/a:/b:c"), Ok(share("/a", "/b:c", false)));
        assert_eq!(
            Share::parse("/h:/a/./b/../c"),
            Ok(share("/h", "/a/c", false))
        );
        // The guest's /tmp and /run are mounted before its shares.
        assert_eq!(Share::parse("/tmp/w"), Ok(share("/tmp/w", "/tmp/w", false)));
        assert_eq!(Share::parse("/h:/run/x"), Ok(share("/h", "/run/x", false)));
        let cwd = std::env::current_dir().unwrap();
        let here = Share::parse("rel/dir").unwrap();
        assert_eq!(here.host_dir, cwd.join("rel/dir"));
        assert_eq!(here.guest_dir, cwd.join("rel/dir"));
    }

    #[test]
    fn a_relative_or_hidden_guest_dir_is_refused_naming_it() {
        for (spec, says) in [
            ("/h:rel", "\"rel\" is not absolute"),
            ("/h:", "\"\" is not absolute"),
            ("/x:y", "written out: /x:y:/x:y"),
            ("/h:/proc", "mounts its own filesystem"),
            ("/sys", "mounts its own filesystem"),
            ("/h:/tmp", "mounts its own filesystem"),
            ("/h:/run/", "mounts its own filesystem"),
            ("/h:/dev", "mounts its own filesystem"),
            ("/h:/proc/x", "under /proc"),
            ("/sys/kernel/x", "under /sys"),
            ("/h:/dev/shm/x", "under /dev"),
            ("/h:/", "hide the guest's own root"),
            ("/h:/usr/..", "hide the guest's own root"),
            ("/h:/.guestinit", "guestinit's own files"),
            ("/h:/modules", "guestinit's own files"),
            (",ro", "needs a host directory"),
            (":/x", "needs a host directory"),
        ] {
            let err = Share::parse(spec).unwrap_err();
            assert!(err.contains(says), "{spec}: {err}");
        }
        let long = format!("/h:/{}", "d".repeat(4096));
        assert!(Share::parse(&long).unwrap_err().contains("longer"));
    }

    #[test]
    fn a_guest_dir_given_twice_or_too_many_shares_are_refused() {
        let a = share("/a", "/x", false);
        let b = share("/b", "/x", true);
        let c = share("/c", "/y", false);
        assert!(check_list(&[a.clone(), c.clone()]).is_ok());
        let err = check_list(&[a.clone(), c, b]).unwrap_err();
        assert_eq!(err.exit_code(), 249);
        assert!(err.to_string().contains("/x"), "{err}");
        let many: Vec<_> = (0..=MAX)
            .map(|i| share("/a", &format!("/g{i}"), false))
            .collect();
        assert!(matches!(
            check_list(&many),
            Err(Error::TooManyShares { count: 9, max: MAX })
        ));
    }

    #[test]
    fn a_missing_host_dir_or_a_file_is_refused_naming_it() {
        let dir = crate::scratch::ScratchDir::new("share-test").unwrap();
        let file = dir.path().join("f");
        fs::write(&file, "x").unwrap();
        let missing = dir.path().join("missing");
        for (path, says) in [(&missing, "No such file"), (&file, "not a directory")] {
            let err = Share::parse(path.to_str().unwrap())
                .unwrap()
                .check_host()
                .unwrap_err();
            assert_eq!(err.exit_code(), 249);
            let text = err.to_string();
            assert!(
                text.contains(path.to_str().unwrap()) && text.contains(says),
                "{text}"
            );
        }
        Share::parse(dir.path().to_str().unwrap())
            .unwrap()
            .check_host()
            .unwrap();
    }

    #[test]
    fn the_guest_reads_each_share_with_its_tag_in_order() {
        let shares = [share("/usr", "/usr", true), share("/h", "/a b,c", false)];
        let file = file(&shares).unwrap().unwrap();
        assert_eq!(file, b"share0\0/usr\0ro\0share1\0/a b,c\0rw\0");
        assert_eq!(super::file(&[]).unwrap(), None);
    }
}
