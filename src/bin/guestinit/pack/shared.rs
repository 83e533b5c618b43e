//! What the guest sees through `--share`, for the pack: a program under a
//! share's GUEST_DIR runs from the share, so it is not packed, and of what
//! it needs only what the guest cannot see through a share is. A file at
//! a path under a GUEST_DIR is the share's; a file whose real host file
//! lies in a HOST_DIR becomes a symlink to where the guest sees it (a
//! merged-/usr host's loader, `/lib64/ld-linux-x86-64.so.2`, is
//! `/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2`, and PT_INTERP names
//! the first); the rest is packed as for any program.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::entry::{archive_name, Entry};
use super::layout;
use crate::error::{Error, Result};
use crate::locate;
use crate::share::Share;

/// The shares as the pack looks at them.
pub struct View<'a> {
    shares: &'a [Share],
    /// Each share's HOST_DIR with its symlinks resolved, where it resolves.
    real_hosts: Vec<Option<PathBuf>>,
}

/// A program that runs from a share.
pub struct OnShare {
    /// Its path in the guest: argv[0], under a GUEST_DIR.
    pub guest: PathBuf,
    /// The host file behind it, read for what it needs.
    pub host: PathBuf,
}

/// How a file the program needs reaches the guest.
#[derive(Debug, PartialEq, Eq)]
enum Place {
    /// Its path is under a GUEST_DIR: the share has it there.
    Shared,
    /// A symlink to this guest path, where a share shows its real file.
    Link(PathBuf),
    /// In the archive.
    Pack,
}

impl<'a> View<'a> {
    pub fn new(shares: &'a [Share]) -> View<'a> {
        let real_hosts = shares
            .iter()
            .map(|s| fs::canonicalize(&s.host_dir).ok())
            .collect();
        View { shares, real_hosts }
    }

    /// The share whose GUEST_DIR holds `guest`, the innermost one (shares
    /// mount in order, so a nested one comes later and shows on top).
    fn holding(&self, guest: &Path) -> Option<&Share> {
        self.shares
            .iter()
            .filter(|s| guest.starts_with(&s.guest_dir))
            .max_by_key(|s| s.guest_dir.as_os_str().len())
    }

    /// `arg` (argv[0]) when it lies under a share's GUEST_DIR: a path as
    /// written, made absolute, or a bare name found on the host's PATH.
    /// Its host file must be an executable file.
    pub fn program(&self, arg: &OsStr) -> Result<Option<OnShare>> {
        if self.shares.is_empty() {
            return Ok(None);
        }
        let guest = match arg.as_encoded_bytes().contains(&b'/') {
            true => std::path::absolute(arg)
                .map(|p| crate::guest_path::normalize(&p))
                .ok(),
            false => locate::on_path(arg),
        };
        let Some((guest, share)) = guest.and_then(|g| Some((g.clone(), self.holding(&g)?))) else {
            return Ok(None);
        };
        let host = match guest.strip_prefix(&share.guest_dir) {
            Ok(rel) if !rel.as_os_str().is_empty() => share.host_dir.join(rel),
            _ => share.host_dir.clone(),
        };
        match fs::metadata(&host) {
            Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => {
                Ok(Some(OnShare { guest, host }))
            }
            Ok(_) => Err(Error::NotExecutable { path: host }),
            Err(source) => Err(Error::Read { path: host, source }),
        }
    }

    fn place(&self, path: &Path) -> Place {
        if self.holding(path).is_some() {
            return Place::Shared;
        }
        let Ok(real) = fs::canonicalize(path) else {
            return Place::Pack;
        };
        let in_share = self
            .shares
            .iter()
            .zip(&self.real_hosts)
            .filter_map(|(share, host)| Some((share, real.strip_prefix(host.as_ref()?).ok()?)))
            .min_by_key(|(_, rel)| rel.as_os_str().len());
        match in_share {
            Some((share, rel)) => Place::Link(share.guest_dir.join(rel)),
            None => Place::Pack,
        }
    }

    /// Of the files a program on a share needs (itself excluded): those
    /// to pack, and the symlinks for those a share shows elsewhere.
    pub fn split(&self, needs: &[PathBuf]) -> Result<(Vec<PathBuf>, Vec<Entry>)> {
        let mut packed = Vec::new();
        let mut links = Vec::new();
        for path in needs {
            match self.place(path) {
                Place::Shared => {}
                Place::Pack => packed.push(path.clone()),
                Place::Link(target) => links.push(Entry::Symlink {
                    name: archive_name(&layout::guest_path(path))?,
                    target: archive_target(&target)?,
                }),
            }
        }
        Ok((packed, links))
    }
}

/// A symlink's absolute target, as text.
fn archive_target(target: &Path) -> Result<String> {
    target
        .to_str()
        .map(str::to_owned)
        .ok_or_else(|| Error::NonUtf8Path {
            path: target.to_owned(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scratch::ScratchDir;
    use std::os::unix::fs::symlink;

    #[test]
    fn a_program_under_a_guest_dir_is_found_behind_its_host_dir() {
        let dir = ScratchDir::new("shared-test").unwrap();
        let bin = dir.path().join("bin");
        fs::create_dir_all(&bin).unwrap();
        fs::copy("/bin/true", bin.join("tool")).unwrap();
        fs::write(bin.join("data"), "x").unwrap();
        let spec = format!("{}:/opt/app", dir.path().display());
        let shares = [Share::parse(&spec).unwrap()];
        let view = View::new(&shares);
        let found = view
            .program("/opt/app/./bin/tool".as_ref())
            .unwrap()
            .unwrap();
        assert_eq!(found.guest, Path::new("/opt/app/bin/tool"));
        assert_eq!(found.host, bin.join("tool"));
        assert!(view.program("/bin/sh".as_ref()).unwrap().is_none());
        assert!(view.program("sh".as_ref()).unwrap().is_none());
        assert!(matches!(
            view.program("/opt/app/bin/data".as_ref()),
            Err(Error::NotExecutable { .. })
        ));
        assert!(matches!(
            view.program("/opt/app/bin/none".as_ref()),
            Err(Error::Read { .. })
        ));
        assert!(View::new(&[])
            .program("/opt/app/bin/tool".as_ref())
            .unwrap()
            .is_none());
    }

    #[test]
    fn needs_under_a_guest_dir_stay_out_those_a_share_shows_become_links() {
        let dir = ScratchDir::new("shared-test").unwrap();
        let usr = dir.path().join("usr");
        fs::create_dir_all(usr.join("lib")).unwrap();
        fs::write(usr.join("lib/ld.so"), "loader").unwrap();
        // `lib64` outside the share, a link into it (merged /usr).
        symlink(usr.join("lib"), dir.path().join("lib64")).unwrap();
        fs::write(dir.path().join("own.so"), "mine").unwrap();
        let shares = [Share::parse(&format!("{}:/usr", usr.display())).unwrap()];
        let view = View::new(&shares);
        let needs = [
            PathBuf::from("/usr/lib/x86_64-linux-gnu/libc.so.6"),
            dir.path().join("lib64/ld.so"),
            dir.path().join("own.so"),
        ];
        let (packed, links) = view.split(&needs).unwrap();
        assert_eq!(packed, [dir.path().join("own.so")]);
        let [Entry::Symlink { name, target }] = &links[..] else {
            panic!("one link");
        };
        assert_eq!(Path::new("/").join(name), layout::guest_path(&needs[1]));
        assert_eq!(target, "/usr/lib/ld.so");
    }
}
