//! `--include SRC[:DST]`: host files and folders copied into the guest,
//! under `/include-files/NAME` unless DST says where (as ktstr does).
//! An executable brings what it needs to start (its `elf::closure`), and
//! its folder goes on the payload's PATH.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::entry::read_error;
use super::{elf, layout};
use crate::error::{Error, Result};
use crate::{file_kind, guest_path};
use guestinit::proto;

/// The files to pack, each at its guest path, and the guest folders of
/// the executables among them, in the order first seen.
#[derive(Debug, Default)]
pub struct Included {
    /// (guest path, host path): included files and what executables need.
    pub files: Vec<(PathBuf, PathBuf)>,
    /// Included folders, so that empty ones exist too.
    pub dirs: Vec<PathBuf>,
    pub path_dirs: Vec<PathBuf>,
}

/// Resolves every `--include`.
pub fn resolve(specs: &[impl AsRef<OsStr>]) -> Result<Included> {
    let mut out = Included::default();
    for spec in specs {
        let spec = spec.as_ref();
        let (src, dst) = parse(spec)?;
        out.add(&src, &dst)?;
    }
    Ok(out)
}

fn bad(spec: &OsStr, reason: String) -> Error {
    Error::BadInclude {
        spec: spec.to_string_lossy().into_owned(),
        reason,
    }
}

/// `SRC[:DST]`: the host path and the absolute guest path.
fn parse(spec: &OsStr) -> Result<(PathBuf, PathBuf)> {
    let bytes = spec.as_bytes();
    let (src, dst) = match bytes.iter().position(|&b| b == b':') {
        Some(at) => (
            &bytes[..at],
            Some(Path::new(OsStr::from_bytes(&bytes[at + 1..]))),
        ),
        None => (bytes, None),
    };
    let src = Path::new(OsStr::from_bytes(src));
    let Some(name) = src
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(ToOwned::to_owned))
    else {
        return Err(bad(spec, format!("{} not found", src.display())));
    };
    let dst = match dst {
        None => Path::new(proto::path::INCLUDE).join(&name),
        // `f:/data/` puts f into /data, as `cp f /data/` does.
        Some(dir) if dir.as_os_str().as_bytes().ends_with(b"/") => dir.join(&name),
        Some(dst) => dst.to_owned(),
    };
    if !dst.is_absolute() {
        return Err(bad(spec, "DST must be an absolute guest path".into()));
    }
    // Checked as the guest will resolve it: `/mnt/../tmp/x` is under /tmp.
    let dst = guest_path::normalize(&dst);
    if let Some(dir) = layout::mounted_dir(&dst) {
        return Err(bad(
            spec,
            format!("DST is under {dir}, which the guest mounts over"),
        ));
    }
    Ok((src.to_owned(), dst))
}

impl Included {
    /// `src` at `dst`: a file, or a folder and everything under it. Only
    /// regular files and folders are packed: a FIFO would block the packing
    /// and a device (`/dev/zero`) never ends, so both are refused by stat,
    /// before any open.
    fn add(&mut self, src: &Path, dst: &Path) -> Result<()> {
        let meta = fs::metadata(src).map_err(|source| read_error(src, source))?;
        if meta.is_file() {
            return self.add_file(src, dst, meta.permissions().mode());
        }
        if !meta.is_dir() {
            let reason = format!(
                "{} is {}: only regular files and folders can be included",
                src.display(),
                file_kind::describe(meta.file_type())
            );
            return Err(bad(src.as_os_str(), reason));
        }
        self.dirs.push(dst.to_owned());
        let mut children: Vec<_> = fs::read_dir(src)
            .map_err(|source| read_error(src, source))?
            .filter_map(|e| e.ok().map(|e| e.file_name()))
            .collect();
        children.sort();
        for name in children {
            let child = src.join(&name);
            let linked_dir = child.is_symlink() && child.is_dir();
            if linked_dir {
                let reason = format!(
                    "{} is a symlink to a folder, which is not followed",
                    child.display()
                );
                return Err(bad(src.as_os_str(), reason));
            }
            self.add(&child, &dst.join(&name))?;
        }
        Ok(())
    }

    /// One file; an executable with its closure, and its folder on PATH.
    fn add_file(&mut self, src: &Path, dst: &Path, mode: u32) -> Result<()> {
        self.files.push((dst.to_owned(), src.to_owned()));
        if mode & 0o111 == 0 {
            return Ok(());
        }
        for need in elf::closure(src)?.into_iter().skip(1) {
            self.files.push((layout::guest_path(&need), need));
        }
        let dir = dst.parent().unwrap_or(Path::new("/")).to_owned();
        if !self.path_dirs.contains(&dir) {
            self.path_dirs.push(dir);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scratch::ScratchDir;

    #[test]
    fn files_go_under_include_files_unless_dst_is_given() {
        let dir = ScratchDir::new("test").unwrap();
        let data = dir.path().join("data.txt");
        fs::write(&data, "x").unwrap();
        let (_, dst) = parse(data.as_os_str()).unwrap();
        assert_eq!(dst, Path::new("/include-files/data.txt"));
        let spec = format!("{}:/opt/d.txt", data.display());
        assert_eq!(parse(spec.as_ref()).unwrap().1, Path::new("/opt/d.txt"));
        let into = format!("{}:/data/", data.display());
        assert_eq!(parse(into.as_ref()).unwrap().1, Path::new("/data/data.txt"));
        let folded = format!("{}:/opt/./a/../d.txt", data.display());
        assert_eq!(parse(folded.as_ref()).unwrap().1, Path::new("/opt/d.txt"));
        for (spec, reason) in [
            (format!("{}:rel", data.display()), "absolute"),
            (format!("{}:/tmp/x", data.display()), "mounts over"),
            (format!("{}:/mnt/../tmp/x", data.display()), "under /tmp"),
            (format!("{}:/../../dev/", data.display()), "under /dev"),
            ("/no/such/file".into(), "not found"),
        ] {
            let err = parse(spec.as_ref()).unwrap_err().to_string();
            assert!(err.contains(reason), "{err}");
        }
    }

    #[test]
    fn folders_are_walked_and_executables_bring_their_closure_and_path() {
        let dir = ScratchDir::new("test").unwrap();
        let tree = dir.path().join("tree");
        fs::create_dir_all(tree.join("bin")).unwrap();
        fs::create_dir_all(tree.join("empty")).unwrap();
        fs::write(tree.join("notes"), "n").unwrap();
        fs::copy("/bin/ls", tree.join("bin/ls")).unwrap();
        let included = resolve(&[tree.as_os_str()]).unwrap();
        let guest: Vec<_> = included.files.iter().map(|(g, _)| g.clone()).collect();
        let root = Path::new("/include-files/tree");
        assert_eq!(guest[0], root.join("bin/ls"));
        assert!(guest.iter().any(|g| g.ends_with("libc.so.6")), "{guest:?}");
        assert_eq!(*guest.last().unwrap(), root.join("notes"));
        assert!(included.dirs.contains(&root.join("empty")));
        assert_eq!(included.path_dirs, [root.join("bin")]);
    }

    #[test]
    fn fifos_sockets_and_devices_are_refused_without_opening_them() {
        let dir = ScratchDir::new("test").unwrap();
        let fifo = dir.path().join("pipe");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            fifo.as_os_str().as_bytes(),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR,
            0,
        )
        .unwrap();
        let err = resolve(&[fifo.as_os_str()]).unwrap_err().to_string();
        assert!(err.contains("is a FIFO"), "{err}");
        let err = resolve(&["/dev/zero"]).unwrap_err().to_string();
        assert!(err.contains("/dev/zero is a character device"), "{err}");
        // Inside an included folder too, naming the file.
        let tree = dir.path().join("tree");
        fs::create_dir(&tree).unwrap();
        let _listener = std::os::unix::net::UnixListener::bind(tree.join("sock")).unwrap();
        let err = resolve(&[tree.as_os_str()]).unwrap_err().to_string();
        assert!(err.contains("sock is a socket"), "{err}");
    }
}
