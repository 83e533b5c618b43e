//! Where a host file goes in the guest: at its own path, unless a guest
//! mount would hide it there; then under the project's own root.

use std::path::{Path, PathBuf};

use guestinit::proto::path::{MOUNTED, ROOT};

/// The directory a guest mount hides `path` under, if any.
pub fn mounted_dir(path: &Path) -> Option<&'static str> {
    MOUNTED.iter().copied().find(|dir| path.starts_with(dir))
}

/// The absolute guest path of the host file `path`.
pub fn guest_path(path: &Path) -> PathBuf {
    match mounted_dir(path) {
        Some(_) => Path::new(ROOT).join(path.strip_prefix("/").unwrap_or(path)),
        None => path.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_mounted_directories_move() {
        assert_eq!(
            guest_path(Path::new("/tmp/x/prog")),
            Path::new("/.guestinit/root/tmp/x/prog")
        );
        assert_eq!(
            guest_path(Path::new("/dev/shm/p")),
            Path::new("/.guestinit/root/dev/shm/p")
        );
        for kept in ["/usr/bin/env", "/tmpfoo/prog", "/home/u/run/p"] {
            assert_eq!(guest_path(Path::new(kept)), Path::new(kept));
        }
        assert_eq!(mounted_dir(Path::new("/run/user/1/p")), Some("/run"));
    }
}
