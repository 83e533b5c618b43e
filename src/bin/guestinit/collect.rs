//! `--collect GUEST_DIR[:HOST_DIR]`, `--collect-max SIZE` and
//! `--collect-cores HOST_DIR`: what the init sends back after the payload
//! (src/bin/init/collect.rs), listed for it in /.guestinit/collect
//! (`parse::collect`), and where the host puts it (`run::collect`).

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use guestinit::parse::collect::Record;
use guestinit::proto::collect::{DEFAULT_MAX_BYTES, MAX_ROOTS};
use guestinit::proto::limit;

use crate::guest_path;

/// Where the guest's cores go (`--collect-cores`): the kernel writes
/// `core.PROGRAM.PID` there, as `core_pattern` says.
pub const CORES_DIR: &str = "/tmp/guestinit-cores";
/// HOST_DIR's default is this plus the guest path.
pub const DEFAULT_OUT: &str = "guestinit-out";

/// One `--collect`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Collect {
    /// Absolute and normalized.
    pub guest_dir: PathBuf,
    pub host_dir: PathBuf,
}

impl Collect {
    /// `GUEST_DIR` or `GUEST_DIR:HOST_DIR`: GUEST_DIR is absolute and ends
    /// at the first `:` (a guest path with a colon cannot be collected).
    pub fn parse(spec: &str) -> Result<Collect, String> {
        let (guest, host) = match spec.split_once(':') {
            Some((guest, host)) => (guest, Some(host)),
            None => (spec, None),
        };
        if !guest.starts_with('/') {
            return Err(format!(
                "GUEST_DIR {guest:?} is not absolute: GUEST_DIR[:HOST_DIR]"
            ));
        }
        let guest_dir = guest_path::normalize(Path::new(guest));
        if guest_dir == Path::new("/") {
            return Err("GUEST_DIR / would send the whole guest, /proc and /dev included".into());
        }
        if guest_dir.as_os_str().len() > limit::CWD_BYTES {
            return Err(format!("GUEST_DIR {guest} is longer than a path can be"));
        }
        let host_dir = match host {
            Some("") => return Err("an empty HOST_DIR: GUEST_DIR[:HOST_DIR]".into()),
            Some(host) => PathBuf::from(host),
            None => default_host_dir(&guest_dir),
        };
        Ok(Collect {
            guest_dir,
            host_dir,
        })
    }
}

/// `./guestinit-out/` plus the guest path.
fn default_host_dir(guest_dir: &Path) -> PathBuf {
    Path::new(DEFAULT_OUT).join(guest_dir.strip_prefix("/").unwrap_or(guest_dir))
}

/// The roots of a run, in the order the init numbers them: each
/// `--collect`, then the cores' directory.
pub fn roots(collects: &[Collect], cores: Option<&Path>) -> Vec<Collect> {
    let mut roots = collects.to_vec();
    if let Some(host) = cores {
        roots.push(Collect {
            guest_dir: CORES_DIR.into(),
            host_dir: host.to_owned(),
        });
    }
    roots
}

/// Checked before the boot: at most [`MAX_ROOTS`], no GUEST_DIR twice.
pub fn check(roots: &[Collect]) -> Result<(), String> {
    if roots.len() > MAX_ROOTS {
        return Err(format!(
            "{} directories to collect (--collect, --collect-cores): at most {MAX_ROOTS}",
            roots.len()
        ));
    }
    for (i, root) in roots.iter().enumerate() {
        if roots[..i].iter().any(|r| r.guest_dir == root.guest_dir) {
            return Err(format!(
                "--collect {} is given twice",
                root.guest_dir.display()
            ));
        }
    }
    Ok(())
}

/// `/.guestinit/collect` for the roots; `None` for none.
pub fn file(collects: &[Collect], cores: Option<&Path>, max_bytes: Option<u64>) -> Option<Vec<u8>> {
    if collects.is_empty() && cores.is_none() {
        return None;
    }
    let mut out = Vec::new();
    Record::MaxBytes(max_bytes.unwrap_or(DEFAULT_MAX_BYTES)).write_to(&mut out);
    for c in collects {
        // A path has no NUL.
        let dir = CString::new(c.guest_dir.as_os_str().as_bytes()).unwrap_or_default();
        Record::Dir(&dir).write_to(&mut out);
    }
    if cores.is_some() {
        let dir = CString::new(CORES_DIR).unwrap_or_default();
        Record::Cores(&dir).write_to(&mut out);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use guestinit::parse::collect::split;

    #[test]
    fn host_dir_defaults_under_guestinit_out() {
        let c = Collect::parse("/tmp/out/../res").unwrap();
        assert_eq!(c.guest_dir, Path::new("/tmp/res"));
        assert_eq!(c.host_dir, Path::new("guestinit-out/tmp/res"));
        let c = Collect::parse("/tmp/res:/srv/a:b").unwrap();
        assert_eq!(c.host_dir, Path::new("/srv/a:b"));
        for bad in ["tmp", "/", "/tmp:", "/..:x"] {
            assert!(Collect::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_file_lists_the_bound_the_dirs_then_the_cores() {
        let collects = [
            Collect::parse("/a").unwrap(),
            Collect::parse("/b c:x").unwrap(),
        ];
        let file = file(&collects, Some(Path::new("cores")), Some(5)).unwrap();
        let records: Vec<_> = split(&file).map(Result::unwrap).collect();
        assert_eq!(
            records,
            [
                Record::MaxBytes(5),
                Record::Dir(c"/a"),
                Record::Dir(c"/b c"),
                Record::Cores(c"/tmp/guestinit-cores")
            ]
        );
        assert_eq!(super::file(&[], None, Some(5)), None);
        let roots = roots(&collects, Some(Path::new("cores")));
        assert_eq!(roots[2].host_dir, Path::new("cores"));
        assert!(check(&roots).is_ok());
        assert!(check(&[collects[0].clone(), collects[0].clone()]).is_err());
    }
}
