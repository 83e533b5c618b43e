//! Kernels by name (`guestinit kernel fetch|list`, `--kernel SPEC`): a
//! Debian suite's cloud kernel or kernel packages on disk, unpacked once
//! into `$XDG_CACHE_HOME/guestinit/kernels/<entry>/` as dpkg would lay
//! them out (`boot/vmlinuz-R` and `lib/modules/R`, or
//! `usr/lib/modules/R/vmlinuz`), so the module tree and config are found
//! beside the image as for any installed kernel.
//!
//! A suite's entry is named after the package and version it holds, and
//! `debian-SUITE` links to the newest: a cached suite is used without the
//! network until `--update` asks apt again.

mod apt;
pub mod spec;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::cache;
use crate::error::{Error, Result};
pub use spec::Spec;

/// The meta package whose dependency is a suite's cloud kernel.
const CLOUD_META: &str = "linux-image-cloud-amd64";

/// The kernel cache: one directory per kernel, links per suite.
pub struct Kernels {
    dir: PathBuf,
}

/// A cached kernel, as `kernel list` shows it.
pub struct Listed {
    pub name: String,
    pub release: String,
    pub bytes: u64,
    pub image: PathBuf,
    /// The `debian:SUITE` specs that resolve to it.
    pub suites: Vec<String>,
}

impl Kernels {
    pub fn open() -> Result<Kernels> {
        let dir = cache::cache_dir().ok_or_else(|| Error::KernelFetch {
            spec: "cache".into(),
            why: "neither $XDG_CACHE_HOME nor $HOME is an absolute path".into(),
        })?;
        Ok(Kernels {
            dir: dir.join("kernels"),
        })
    }

    /// The image `spec` names: a path as it is; a cached spec without the
    /// network (unless `update`); else fetched and unpacked now.
    pub fn image(&self, spec: &Spec, update: bool) -> Result<PathBuf> {
        let entry = match spec {
            Spec::Path(path) => return Ok(path.clone()),
            Spec::Debian { suite } => self.debian(spec, suite, update)?,
            Spec::Deb { files } => self.debs(spec, files)?,
        };
        image_in(&entry).ok_or_else(|| Error::KernelFetch {
            spec: spec.to_string(),
            why: format!("{} holds no kernel image", entry.display()),
        })
    }

    /// The unpacked tree behind `spec` (what `--root` prints).
    pub fn root(&self, spec: &Spec, update: bool) -> Result<PathBuf> {
        match spec {
            Spec::Path(path) => Ok(path.clone()),
            Spec::Debian { suite } => self.debian(spec, suite, update),
            Spec::Deb { files } => self.debs(spec, files),
        }
    }

    fn debian(&self, spec: &Spec, suite: &str, update: bool) -> Result<PathBuf> {
        let fail = |why: String| Error::KernelFetch {
            spec: spec.to_string(),
            why,
        };
        let link = self.dir.join(format!("debian-{suite}"));
        let cached = || {
            fs::canonicalize(&link)
                .ok()
                .filter(|e| image_in(e).is_some())
        };
        if let Some(entry) = cached().filter(|_| !update) {
            return Ok(entry);
        }
        // One fetch of a suite at a time (apt's own lock would refuse the
        // second, as two cells of a matrix found): the second waits, then
        // takes what the first fetched.
        let _lock = self.lock(suite).map_err(&fail)?;
        if let Some(entry) = cached().filter(|_| !update) {
            return Ok(entry);
        }
        let apt = apt::Apt::new(&self.dir.join(".apt").join(suite), suite);
        apt.configure().map_err(&fail)?;
        crate::say::say_errln!("guestinit: reading {suite}'s package lists (a private apt state)");
        apt.update()
            .map_err(|e| fail(format!("{e} (is {suite} a Debian suite?)")))?;
        let package = apt.resolve(CLOUD_META).map_err(&fail)?;
        let parts = apt.parts(&package);
        let version = apt.version(&package).unwrap_or_else(|| "unknown".into());
        let name = format!("debian-{suite}-{package}_{version}");
        let entry = self.dir.join(&name);
        if image_in(&entry).is_none() {
            crate::say::say_errln!("guestinit: fetching {}", parts.join(" "));
            let debs = apt.download(&parts).map_err(&fail)?;
            self.unpack(&debs, &entry).map_err(&fail)?;
        }
        // The suite's link now names this entry (made aside, renamed over).
        let aside = self
            .dir
            .join(format!(".debian-{suite}.{}", std::process::id()));
        let _ = fs::remove_file(&aside);
        std::os::unix::fs::symlink(&name, &aside)
            .and_then(|()| fs::rename(&aside, &link))
            .map_err(|e| fail(format!("cannot link {}: {e}", link.display())))?;
        Ok(entry)
    }

    /// An exclusive lock on `.apt/SUITE.lock`, held while it lives.
    fn lock(&self, suite: &str) -> std::result::Result<fs::File, String> {
        let dir = self.dir.join(".apt");
        fs::create_dir_all(&dir).map_err(|e| format!("cannot make {}: {e}", dir.display()))?;
        let path = dir.join(format!("{suite}.lock"));
        let file =
            fs::File::create(&path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        file.lock()
            .map_err(|e| format!("cannot lock {}: {e}", path.display()))?;
        Ok(file)
    }

    fn debs(&self, spec: &Spec, files: &[PathBuf]) -> Result<PathBuf> {
        let fail = |why: String| Error::KernelFetch {
            spec: spec.to_string(),
            why,
        };
        let mut key = Sha256::new();
        for file in files {
            let meta = fs::metadata(file).map_err(|e| fail(format!("{}: {e}", file.display())))?;
            if !meta.is_file() {
                return Err(fail(format!("{} is not a file", file.display())));
            }
            let path =
                fs::canonicalize(file).map_err(|e| fail(format!("{}: {e}", file.display())))?;
            key.update(path.as_os_str().as_encoded_bytes());
            key.update(cache::identity(&meta));
        }
        let digest = key.finalize();
        let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        let entry = self.dir.join(format!("deb-{hex}"));
        if image_in(&entry).is_none() {
            self.unpack(files, &entry).map_err(&fail)?;
        }
        Ok(entry)
    }

    /// Unpacks `debs` into `entry`: into a directory aside, then renamed,
    /// so a run never sees half a kernel and two fetches at once agree.
    fn unpack(&self, debs: &[PathBuf], entry: &Path) -> std::result::Result<(), String> {
        let aside = self.dir.join(format!(".partial-{}", std::process::id()));
        let _ = fs::remove_dir_all(&aside);
        fs::create_dir_all(&aside).map_err(|e| format!("cannot make {}: {e}", aside.display()))?;
        let result = (|| {
            for deb in debs {
                let out = Command::new("dpkg-deb")
                    .arg("-x")
                    .arg(deb)
                    .arg(&aside)
                    .output()
                    .map_err(|e| format!("cannot run dpkg-deb ({e}): this needs Debian's dpkg"))?;
                if !out.status.success() {
                    return Err(format!(
                        "dpkg-deb -x {}: {}",
                        deb.display(),
                        String::from_utf8_lossy(&out.stderr).trim()
                    ));
                }
            }
            if image_in(&aside).is_none() {
                let names: Vec<_> = debs.iter().map(|d| d.display().to_string()).collect();
                return Err(format!(
                    "{} hold no kernel image (boot/vmlinuz-* or usr/lib/modules/*/vmlinuz)",
                    names.join(", ")
                ));
            }
            match fs::rename(&aside, entry) {
                // Another fetch got there first: its tree is the same.
                Err(_) if image_in(entry).is_some() => Ok(()),
                other => other.map_err(|e| format!("cannot rename into {}: {e}", entry.display())),
            }
        })();
        let _ = fs::remove_dir_all(&aside);
        result
    }

    /// Every cached kernel, by name.
    pub fn list(&self) -> Vec<Listed> {
        let Ok(dir) = fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut links = Vec::new();
        let mut entries = Vec::new();
        for item in dir.filter_map(|e| e.ok()) {
            let name = item.file_name().to_string_lossy().into_owned();
            let path = item.path();
            if name.starts_with('.') {
                continue;
            }
            if path.is_symlink() {
                if let (Some(suite), Ok(target)) =
                    (name.strip_prefix("debian-"), fs::read_link(&path))
                {
                    links.push((
                        format!("debian:{suite}"),
                        target.to_string_lossy().into_owned(),
                    ));
                }
            } else if let Some(image) = image_in(&path) {
                entries.push((name, path, image));
            }
        }
        let mut listed: Vec<Listed> = entries
            .into_iter()
            .map(|(name, path, image)| Listed {
                release: release_of(&image),
                bytes: tree_bytes(&path),
                suites: links
                    .iter()
                    .filter(|(_, target)| *target == name)
                    .map(|(spec, _)| spec.clone())
                    .collect(),
                name,
                image,
            })
            .collect();
        listed.sort_by(|a, b| a.name.cmp(&b.name));
        listed
    }
}

/// The kernel image of an unpacked tree: `boot/vmlinuz-*`, else
/// `usr/lib/modules/*/vmlinuz` or `lib/modules/*/vmlinuz` (newer Debian).
fn image_in(root: &Path) -> Option<PathBuf> {
    let in_dir = |dir: PathBuf, pick: &dyn Fn(&Path) -> Option<PathBuf>| -> Option<PathBuf> {
        let mut found: Vec<PathBuf> = fs::read_dir(dir)
            .ok()?
            .filter_map(|e| pick(&e.ok()?.path()))
            .collect();
        found.sort();
        found.pop()
    };
    let boot = |p: &Path| {
        let name = p.file_name()?.to_str()?;
        (name.starts_with("vmlinuz-") && p.is_file()).then(|| p.to_owned())
    };
    let tree = |p: &Path| Some(p.join("vmlinuz")).filter(|v| v.is_file());
    in_dir(root.join("boot"), &boot)
        .or_else(|| in_dir(root.join("usr/lib/modules"), &tree))
        .or_else(|| in_dir(root.join("lib/modules"), &tree))
}

/// The release an image's path names.
fn release_of(image: &Path) -> String {
    let name = image.file_name().and_then(|n| n.to_str()).unwrap_or("");
    match name.strip_prefix("vmlinuz-") {
        Some(release) => release.to_owned(),
        None => image
            .parent()
            .and_then(|d| d.file_name())
            .map_or_else(String::new, |d| d.to_string_lossy().into_owned()),
    }
}

fn tree_bytes(path: &Path) -> u64 {
    walkdir::WalkDir::new(path)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

/// `kernel fetch`: the image's path (or with `root`, the tree's) on stdout.
pub fn fetch_command(spec: &std::ffi::OsStr, update: bool, root: bool) -> Result<()> {
    let spec = Spec::parse(spec)?;
    if let Spec::Path(path) = &spec {
        return Err(Error::KernelFetch {
            spec: path.display().to_string(),
            why: "not a spec to fetch: debian:SUITE or deb:FILE.deb[,FILE.deb...]".into(),
        });
    }
    let kernels = Kernels::open()?;
    let path = if root {
        kernels.root(&spec, update)?
    } else {
        kernels.image(&spec, update)?
    };
    crate::say::say_outln!("{}", path.display());
    Ok(())
}

/// `kernel list`: one line per cached kernel.
pub fn list_command() -> Result<()> {
    let kernels = Kernels::open()?;
    let listed = kernels.list();
    if listed.is_empty() {
        crate::say::say_errln!("guestinit: no kernel in {}", kernels.dir.display());
    }
    for k in listed {
        let suites = if k.suites.is_empty() {
            String::new()
        } else {
            format!("  ({})", k.suites.join(", "))
        };
        crate::say::say_outln!(
            "{}  {}  {:.1} MiB  {}{suites}",
            k.name,
            k.release,
            k.bytes as f64 / f64::from(1 << 20),
            k.image.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("guestinit-kernel-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn the_image_is_found_in_either_debian_layout() {
        let dir = scratch("layouts");
        let old = dir.join("old");
        fs::create_dir_all(old.join("boot")).unwrap();
        fs::write(old.join("boot/vmlinuz-6.1.0-9-cloud-amd64"), b"k").unwrap();
        fs::write(old.join("boot/config-6.1.0-9-cloud-amd64"), b"c").unwrap();
        assert_eq!(
            image_in(&old),
            Some(old.join("boot/vmlinuz-6.1.0-9-cloud-amd64"))
        );
        let new = dir.join("new");
        fs::create_dir_all(new.join("usr/lib/modules/7.2.1-cloud-amd64")).unwrap();
        fs::write(new.join("usr/lib/modules/7.2.1-cloud-amd64/vmlinuz"), b"k").unwrap();
        let image = image_in(&new).unwrap();
        assert_eq!(release_of(&image), "7.2.1-cloud-amd64");
        assert_eq!(image_in(&dir), None);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_deb_that_is_missing_or_holds_no_kernel_names_the_spec_and_the_file() {
        let dir = scratch("debs");
        let kernels = Kernels {
            dir: dir.join("kernels"),
        };
        let missing = Spec::parse("deb:/nonexistent/k.deb".as_ref()).unwrap();
        let err = kernels.image(&missing, false).unwrap_err().to_string();
        assert!(
            err.starts_with("kernel deb:/nonexistent/k.deb: /nonexistent/k.deb: "),
            "{err}"
        );
        // A real package without a kernel, made by dpkg-deb itself.
        let pkg = dir.join("pkg");
        fs::create_dir_all(pkg.join("DEBIAN")).unwrap();
        fs::create_dir_all(pkg.join("usr/share/doc/x")).unwrap();
        fs::write(
            pkg.join("DEBIAN/control"),
            "Package: x\nVersion: 1\nArchitecture: all\nMaintainer: t <t@t>\nDescription: t\n",
        )
        .unwrap();
        let deb = dir.join("x.deb");
        let built = Command::new("dpkg-deb")
            .args(["-b", "-Zgzip"])
            .arg(&pkg)
            .arg(&deb)
            .output();
        if built.is_ok_and(|o| o.status.success()) {
            let spec = Spec::parse(format!("deb:{}", deb.display()).as_ref()).unwrap();
            let err = kernels.image(&spec, false).unwrap_err().to_string();
            assert!(err.contains("hold no kernel image"), "{err}");
            let left: Vec<_> = fs::read_dir(&kernels.dir).unwrap().collect();
            assert!(left.is_empty(), "nothing half-unpacked is left: {left:?}");
        }
        fs::remove_dir_all(&dir).unwrap();
    }
}
