//! What an earlier run learned and the next need not learn again, one
//! small file per entry under $XDG_CACHE_HOME/guestinit: `<kind>/<SHA-256
//! of the key>`. A key holds what the entry depends on, as file
//! identities (device, inode, size, modification and change times) that
//! cost a stat, not a read.

use sha2::{Digest, Sha256};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// One entry's file.
pub struct Entry {
    path: PathBuf,
}

impl Entry {
    /// The entry for `key` among `kind`'s; none without a cache directory.
    pub fn new(kind: &str, key: &[u8]) -> Option<Entry> {
        Some(Entry::in_dir(&cache_dir()?, kind, key))
    }

    /// `<dir>/<kind>/<SHA-256 of key>`: a fixed-length name for any key.
    pub fn in_dir(dir: &Path, kind: &str, key: &[u8]) -> Entry {
        let digest = Sha256::digest(key);
        let name: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        Entry {
            path: dir.join(kind).join(name),
        }
    }

    /// What an earlier run stored.
    pub fn load(&self) -> Option<String> {
        fs::read_to_string(&self.path).ok()
    }

    /// The entry's file, for an entry too large to load as text.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stores `text`. Best effort: a cache that cannot be written costs the
    /// next run the work again.
    pub fn store(&self, text: &str) {
        self.store_bytes(text.as_bytes());
    }

    /// Stores `bytes`; whether the entry now holds them.
    pub fn store_bytes(&self, bytes: &[u8]) -> bool {
        let Some(dir) = self.path.parent() else {
            return false;
        };
        // Written aside and renamed: a concurrent run reads all or nothing.
        let partial = self.path.with_extension(format!("{}", std::process::id()));
        let written = fs::create_dir_all(dir)
            .and_then(|()| fs::write(&partial, bytes))
            .and_then(|()| fs::rename(&partial, &self.path));
        if written.is_err() {
            let _ = fs::remove_file(&partial);
        }
        written.is_ok()
    }
}

/// What tells one file from another without reading it. The change time
/// cannot be set back by a user, so a file written anew never keeps its
/// old identity.
pub fn identity(meta: &fs::Metadata) -> Vec<u8> {
    format!(
        "{}:{}:{}:{}.{}:{}.{}",
        meta.dev(),
        meta.ino(),
        meta.size(),
        meta.mtime(),
        meta.mtime_nsec(),
        meta.ctime(),
        meta.ctime_nsec()
    )
    .into_bytes()
}

/// $XDG_CACHE_HOME/guestinit, else ~/.cache/guestinit.
pub fn cache_dir() -> Option<PathBuf> {
    let absolute = |v: std::ffi::OsString| Some(PathBuf::from(v)).filter(|p| p.is_absolute());
    let base = std::env::var_os("XDG_CACHE_HOME")
        .and_then(absolute)
        .or_else(|| {
            std::env::var_os("HOME")
                .and_then(absolute)
                .map(|h| h.join(".cache"))
        })?;
    Some(base.join("guestinit"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_written_anew_has_another_identity() {
        let dir = std::env::temp_dir().join(format!("guestinit-cache-id-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let image = dir.join("vmlinuz");
        fs::write(&image, b"build one").unwrap();
        let first = identity(&fs::metadata(&image).unwrap());
        assert_eq!(
            identity(&fs::metadata(&image).unwrap()),
            first,
            "stable while unchanged"
        );
        // Past the coarse clock's tick that stamps file times.
        std::thread::sleep(std::time::Duration::from_millis(20));
        fs::write(&image, b"build two").unwrap();
        assert_ne!(
            identity(&fs::metadata(&image).unwrap()),
            first,
            "same size, rewritten"
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_entry_loads_for_its_own_key_and_kind_only() {
        let dir = std::env::temp_dir().join(format!("guestinit-cache-{}", std::process::id()));
        let one = Entry::in_dir(&dir, "a", b"key one");
        assert_eq!(one.load(), None);
        one.store("stored\n");
        assert_eq!(one.load().as_deref(), Some("stored\n"));
        assert_eq!(Entry::in_dir(&dir, "a", b"key two").load(), None);
        assert_eq!(Entry::in_dir(&dir, "b", b"key one").load(), None);
        fs::remove_dir_all(&dir).unwrap();
    }
}
