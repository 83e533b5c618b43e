//! Finding the host files a run needs: the payload program, the kernel, its
//! module tree and the guest init binary.

use std::cmp::Ordering;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};
use crate::kernel;

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

/// The kernel to boot: `explicit` (a file, a kernel build tree holding
/// `arch/x86/boot/bzImage`, or a spec such as `debian:sid`, fetched into
/// the kernel cache on first use), else $GUESTINIT_KERNEL (the same
/// forms), else the first found of [`discover`]'s places.
pub fn kernel(explicit: Option<&Path>) -> Result<PathBuf> {
    let named = match explicit {
        Some(path) => Some(path.as_os_str().to_owned()),
        None => std::env::var_os("GUESTINIT_KERNEL"),
    };
    let chosen = match named {
        Some(value) => match kernel::Spec::parse(&value)? {
            kernel::Spec::Path(path) => path,
            spec => kernel::Kernels::open()?.image(&spec, false)?,
        },
        None => discover(&Places::host())?,
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

/// The directories a kernel is looked for in when none is named.
struct Places {
    /// A kernel developer's build tree: the current directory.
    build_tree: PathBuf,
    /// What `scripts/setup.sh` fetched: the checkout's `.cache/kernel`.
    cache: PathBuf,
    /// The root of the host's own `/boot` and `/lib/modules`.
    root: PathBuf,
}

impl Places {
    fn host() -> Places {
        Places {
            build_tree: std::env::current_dir().unwrap_or_default(),
            cache: Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache/kernel"),
            root: PathBuf::from("/"),
        }
    }
}

/// The first kernel of: a build tree's bzImage, the newest `.cache/kernel`
/// `boot/vmlinuz-*`, the newest `/boot/vmlinuz-R` with `/lib/modules/R`,
/// the newest Debian `/usr/lib/modules/R/vmlinuz`; else an error naming them.
fn discover(places: &Places) -> Result<PathBuf> {
    let build = places.build_tree.join(BUILD_TREE_IMAGE);
    let boot = places.root.join("boot");
    let usr_modules = places.root.join("usr/lib/modules");
    let with_modules = |image: &Path| {
        let name = image.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let release = name.strip_prefix("vmlinuz-").unwrap_or("");
        places.root.join("lib/modules").join(release).is_dir()
    };
    let found = Some(build.clone())
        .filter(|p| p.is_file())
        .or_else(|| newest(&places.cache.join("boot"), |p| p.is_file()))
        .or_else(|| newest(&boot, with_modules))
        .or_else(|| {
            let dirs = fs::read_dir(&usr_modules).ok()?;
            dirs.filter_map(|e| Some(e.ok()?.path().join("vmlinuz")))
                .filter(|p| p.is_file())
                .max_by(|a, b| version_order(&a.to_string_lossy(), &b.to_string_lossy()))
        });
    found.ok_or_else(|| Error::NoKernel {
        tried: [
            build,
            places.cache.join("boot/vmlinuz-*"),
            boot.join("vmlinuz-* with /lib/modules/*"),
            usr_modules.join("*/vmlinuz"),
        ]
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", "),
    })
}

/// The newest `vmlinuz-*` in `dir` that passes `keep`.
fn newest(dir: &Path, keep: impl Fn(&Path) -> bool) -> Option<PathBuf> {
    fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("vmlinuz-"))
                && keep(p)
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

/// The virtiofsd `--share` runs: `$GUESTINIT_VIRTIOFSD` when set (and
/// then only it), else the one `scripts/setup-tests.sh` built into the
/// checkout's `.cache/virtiofsd` (as the kernel is found in `.cache/kernel`),
/// else `virtiofsd` on PATH, else where distributions install it
/// (`/usr/libexec/virtiofsd`, off PATH); else an error naming each.
pub fn virtiofsd() -> Result<PathBuf> {
    virtiofsd_in(
        std::env::var_os("GUESTINIT_VIRTIOFSD").map(PathBuf::from),
        &Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache/virtiofsd/bin/virtiofsd"),
    )
}

const LIBEXEC_VIRTIOFSD: &str = "/usr/libexec/virtiofsd";

fn virtiofsd_in(explicit: Option<PathBuf>, cache: &Path) -> Result<PathBuf> {
    if let Some(path) = explicit {
        return match is_executable(&path) {
            true => Ok(path),
            false => Err(Error::VirtiofsdMissing {
                tried: format!("$GUESTINIT_VIRTIOFSD={}", path.display()),
            }),
        };
    }
    let found = Some(cache.to_owned())
        .filter(|p| is_executable(p))
        .or_else(|| on_path(OsStr::new("virtiofsd")))
        .or_else(|| Some(PathBuf::from(LIBEXEC_VIRTIOFSD)).filter(|p| is_executable(p)));
    found.ok_or_else(|| Error::VirtiofsdMissing {
        tried: format!(
            "$GUESTINIT_VIRTIOFSD, {}, PATH, {LIBEXEC_VIRTIOFSD}",
            cache.display()
        ),
    })
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
    fn discovery_takes_the_first_place_that_has_a_kernel() {
        let scratch = crate::scratch::ScratchDir::new("test").unwrap();
        let dir = scratch.path();
        let places = Places {
            build_tree: dir.join("linux"),
            cache: dir.join("cache"),
            root: dir.join("root"),
        };
        let touch = |p: &str| {
            let path = dir.join(p);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, b"").unwrap();
            path
        };
        let err = discover(&places).unwrap_err().to_string();
        for tried in [
            "linux/arch/x86/boot/bzImage",
            "cache/boot/vmlinuz-*",
            "root/boot/vmlinuz-* with /lib/modules/*",
            "root/usr/lib/modules/*/vmlinuz",
        ] {
            assert!(err.contains(tried), "{tried} in {err}");
        }
        let debian = touch("root/usr/lib/modules/6.12.0-1-amd64/vmlinuz");
        touch("root/usr/lib/modules/6.9.0-1-amd64/vmlinuz");
        assert_eq!(discover(&places).unwrap(), debian);
        // /boot counts only with its module tree.
        touch("root/boot/vmlinuz-6.13.0-1-amd64");
        assert_eq!(discover(&places).unwrap(), debian);
        fs::create_dir_all(dir.join("root/lib/modules/6.13.0-1-amd64")).unwrap();
        assert_eq!(
            discover(&places).unwrap(),
            dir.join("root/boot/vmlinuz-6.13.0-1-amd64")
        );
        let cached = touch("cache/boot/vmlinuz-6.1.0-9-cloud-amd64");
        assert_eq!(discover(&places).unwrap(), cached);
        let built = touch("linux/arch/x86/boot/bzImage");
        assert_eq!(discover(&places).unwrap(), built);
    }

    #[test]
    fn virtiofsd_is_the_one_named_else_the_checkouts_and_a_missing_one_names_the_places() {
        let scratch = crate::scratch::ScratchDir::new("test").unwrap();
        let cache = scratch.path().join("virtiofsd");
        let named = scratch.path().join("named");
        let err = virtiofsd_in(Some(named.clone()), &cache).unwrap_err();
        assert_eq!(err.exit_code(), 249);
        let text = err.to_string();
        assert!(
            text.contains(&format!("$GUESTINIT_VIRTIOFSD={}", named.display())),
            "{text}"
        );
        assert!(
            text.contains("scripts/setup-tests.sh")
                && text.contains("cargo install virtiofsd --locked"),
            "{text}"
        );
        for path in [&cache, &named] {
            fs::write(path, b"#!/bin/sh\n").unwrap();
            fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
        }
        assert_eq!(virtiofsd_in(Some(named.clone()), &cache).unwrap(), named);
        assert_eq!(virtiofsd_in(None, &cache).unwrap(), cache);
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
