//! Finding the host files a run needs: the payload program, the kernel, its
//! module tree and the guest init binary.

use std::cmp::Ordering;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};

/// The absolute host path of `program`: a name with a `/` is taken relative
/// to the current directory (symlinks kept), a bare name is looked up in $PATH.
pub fn program(program: &OsStr) -> Result<PathBuf> {
    let given = Path::new(program);
    if program.as_encoded_bytes().contains(&b'/') {
        let path = absolute(given)?;
        return if is_executable(&path) {
            Ok(path)
        } else if path.exists() {
            Err(Error::NotExecutable { path })
        } else {
            Err(Error::Read {
                path,
                source: std::io::ErrorKind::NotFound.into(),
            })
        };
    }
    on_path(program).ok_or_else(|| Error::ProgramNotFound {
        name: given.display().to_string(),
    })
}

/// The first executable `name` in the absolute directories of $PATH.
pub fn on_path(name: &OsStr) -> Option<PathBuf> {
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path_var)
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// `path` made absolute without resolving symlinks, so the guest sees the
/// name the user gave; `..` is resolved through the real parent directory.
fn absolute(path: &Path) -> Result<PathBuf> {
    let abs = std::path::absolute(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })?;
    if !abs.components().any(|c| c == Component::ParentDir) {
        return Ok(abs);
    }
    let (Some(parent), Some(name)) = (abs.parent(), abs.file_name()) else {
        return Ok(abs);
    };
    let parent = fs::canonicalize(parent).map_err(|source| Error::Read {
        path: parent.to_owned(),
        source,
    })?;
    Ok(parent.join(name))
}

/// The kernel to boot: `explicit` (a file, or a kernel build tree holding
/// `arch/x86/boot/bzImage`), else $GUESTINIT_KERNEL, else the newest
/// `boot/vmlinuz-*` of the checkout's `.cache/kernel` (setup.sh puts it there).
pub fn kernel(explicit: Option<&Path>) -> Result<PathBuf> {
    let cache = Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache/kernel/boot");
    let chosen = match explicit {
        Some(path) => path.to_owned(),
        None => match std::env::var_os("GUESTINIT_KERNEL") {
            Some(path) => PathBuf::from(path),
            None => newest_kernel(&cache).ok_or(Error::NoKernel { tried: cache })?,
        },
    };
    let image = if chosen.is_dir() {
        chosen.join(BUILD_TREE_IMAGE)
    } else {
        chosen
    };
    if image.is_file() {
        Ok(image)
    } else {
        Err(Error::KernelNotFound { path: image })
    }
}

/// Where a kernel build tree keeps the bootable image.
const BUILD_TREE_IMAGE: &str = "arch/x86/boot/bzImage";

fn newest_kernel(boot: &Path) -> Option<PathBuf> {
    fs::read_dir(boot)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("vmlinuz-"))
        })
        .max_by(|a, b| version_order(&a.to_string_lossy(), &b.to_string_lossy()))
}

/// Orders version strings by their numbers (so 6.10 > 6.9), then as text.
fn version_order(a: &str, b: &str) -> Ordering {
    let numbers = |s: &str| -> Vec<u64> {
        s.split(|c: char| !c.is_ascii_digit())
            .filter_map(|n| n.parse().ok())
            .collect()
    };
    numbers(a).cmp(&numbers(b)).then_with(|| a.cmp(b))
}

/// The guest init: `explicit`, else the `init` built beside this executable
/// (target/release/init next to target/release/guestinit).
pub fn init(explicit: Option<&Path>) -> Result<PathBuf> {
    let path = match explicit {
        Some(path) => path.to_owned(),
        None => std::env::current_exe()
            .map_err(|source| Error::Read {
                path: PathBuf::from("/proc/self/exe"),
                source,
            })?
            .with_file_name("init"),
    };
    if path.is_file() {
        Ok(path)
    } else {
        Err(Error::InitNotFound { path })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_by_number() {
        assert_eq!(
            version_order("vmlinuz-6.10.0-1-amd64", "vmlinuz-6.9.0-9-amd64"),
            Ordering::Greater
        );
        assert_eq!(
            version_order("vmlinuz-6.1.0-56-cloud", "vmlinuz-6.1.0-7-cloud"),
            Ordering::Greater
        );
    }

    #[test]
    fn bare_names_resolve_through_path() {
        let sh = program(OsStr::new("sh")).unwrap();
        assert!(sh.is_absolute() && sh.ends_with("sh"), "{}", sh.display());
        assert!(matches!(
            program(OsStr::new("no-such-program-guestinit")),
            Err(Error::ProgramNotFound { .. })
        ));
    }

    #[test]
    fn paths_become_absolute_without_dot_dot() {
        let p = program(OsStr::new("/bin/../bin/sh")).unwrap();
        assert!(!p.components().any(|c| c == Component::ParentDir));
        let scratch = crate::scratch::ScratchDir::new("test").unwrap();
        let data = scratch.path().join("data");
        fs::write(&data, b"not a program").unwrap();
        assert!(matches!(
            program(data.as_os_str()),
            Err(Error::NotExecutable { .. })
        ));
    }

    #[test]
    fn a_build_tree_gives_its_bzimage() {
        let scratch = crate::scratch::ScratchDir::new("test").unwrap();
        let tree = scratch.path();
        assert!(matches!(
            kernel(Some(tree)),
            Err(Error::KernelNotFound { path }) if path == tree.join(BUILD_TREE_IMAGE)
        ));
        fs::create_dir_all(tree.join("arch/x86/boot")).unwrap();
        fs::write(tree.join(BUILD_TREE_IMAGE), b"").unwrap();
        assert_eq!(kernel(Some(tree)).unwrap(), tree.join(BUILD_TREE_IMAGE));
    }
}
