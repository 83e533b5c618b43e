//! Guest paths as the guest's kernel will walk them.

use std::path::{Component, Path, PathBuf};

/// `path` without `.`, `..` (taken lexically: the guest has no symlinks
/// there yet; `..` of the root is the root) or a trailing `/`: so that
/// `/mnt/../tmp/x` is checked as the `/tmp/x` it is.
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for component in path.components() {
        match component {
            Component::Normal(name) => out.push(name),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}
