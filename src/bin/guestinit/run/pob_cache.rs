//! `page_offset_base - _text` learned from an earlier run's KADR, for
//! kernels whose System.map is a stub (Debian's): the next boot of the same
//! image gets it on the command line, and the guest reads /proc/kallsyms only
//! up to `_text` instead of scanning deep for the symbol before SRDY.
//!
//! Safe to reuse: KASLR slides the whole image by one delta, so a symbol's
//! offset from `_text` is fixed by the build. The key is the image file's
//! identity (device, inode, size, modification and change times), so a
//! rebuilt or replaced file misses; hashing the image itself cost every run
//! ~30 ms before QEMU could start.

use sha2::{Digest, Sha256};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use guestinit::wire::msg::KernelAddrs;

/// One kernel image's entry: `<cache>/pob/<sha256 of its identity>`.
pub struct PobCache {
    path: PathBuf,
}

impl PobCache {
    /// The entry for `kernel`; none without a cache directory or when the
    /// image cannot be read (the run then just scans, as without a cache).
    pub fn for_kernel(kernel: &Path) -> Option<PobCache> {
        let dir = cache_dir()?;
        Some(PobCache::in_dir(
            &dir,
            &identity(&fs::metadata(kernel).ok()?),
        ))
    }

    /// `<dir>/pob/<SHA-256 of key>`: a fixed-length name for any key.
    fn in_dir(dir: &Path, key: &[u8]) -> PobCache {
        let digest = Sha256::digest(key);
        let name: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        PobCache {
            path: dir.join("pob").join(name),
        }
    }

    /// The offset an earlier run stored.
    pub fn load(&self) -> Option<u64> {
        parse(&fs::read_to_string(&self.path).ok()?)
    }

    /// Stores the offset KADR's addresses imply, if they carry one. Best
    /// effort: a cache that cannot be written costs the next run a scan.
    pub fn store(&self, addrs: &KernelAddrs) {
        let Some(offset) = offset_of(addrs) else {
            return;
        };
        let Some(dir) = self.path.parent() else {
            return;
        };
        // Written aside and renamed: a concurrent run reads all or nothing.
        let partial = self.path.with_extension(format!("{}", std::process::id()));
        let written = fs::create_dir_all(dir)
            .and_then(|()| fs::write(&partial, format!("{offset:x}\n")))
            .and_then(|()| fs::rename(&partial, &self.path));
        if written.is_err() {
            let _ = fs::remove_file(&partial);
        }
    }
}

/// What tells one image file from another without reading it. The change
/// time cannot be set back by a user, so a file written anew never keeps
/// its old identity.
fn identity(meta: &fs::Metadata) -> Vec<u8> {
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
fn cache_dir() -> Option<PathBuf> {
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

/// `page_offset_base - _text` from a KADR, when the guest found both and
/// the variable lies past `_text` in the image, as it does on x86_64.
fn offset_of(addrs: &KernelAddrs) -> Option<u64> {
    let text = addrs.text?;
    (addrs.page_offset_base != 0)
        .then(|| addrs.page_offset_base.checked_sub(text))
        .flatten()
}

/// An entry's text: the offset in hex, on one line.
fn parse(text: &str) -> Option<u64> {
    u64::from_str_radix(text.trim(), 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(page_offset_base: u64, text: Option<u64>) -> KernelAddrs {
        KernelAddrs {
            phys_base: Some(0x2e00000),
            page_offset_base,
            text,
        }
    }

    #[test]
    fn the_offset_is_the_distance_from_text() {
        let kadr = addrs(0xffffffffa3a1c3d8, Some(0xffffffffa2000000));
        assert_eq!(offset_of(&kadr), Some(0x1a1c3d8));
        assert_eq!(offset_of(&addrs(0, Some(0xffffffffa2000000))), None);
        assert_eq!(offset_of(&addrs(0xffffffffa3a1c3d8, None)), None);
        assert_eq!(offset_of(&addrs(0x1000, Some(0x2000))), None);
    }

    #[test]
    fn entries_parse_as_hex_or_not_at_all() {
        assert_eq!(parse("1a1c3d8\n"), Some(0x1a1c3d8));
        assert_eq!(parse("zz"), None);
        assert_eq!(parse(""), None);
    }

    #[test]
    fn a_file_written_anew_has_another_identity() {
        let dir = std::env::temp_dir().join(format!("guestinit-pob-id-{}", std::process::id()));
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
    fn a_stored_offset_loads_for_the_same_image_only() {
        let dir = std::env::temp_dir().join(format!("guestinit-pob-{}", std::process::id()));
        let one = PobCache::in_dir(&dir, b"kernel image one");
        let other = PobCache::in_dir(&dir, b"kernel image two");
        assert_eq!(one.load(), None);
        one.store(&addrs(0xffffffffa3a1c3d8, Some(0xffffffffa2000000)));
        assert_eq!(one.load(), Some(0x1a1c3d8));
        assert_eq!(other.load(), None);
        fs::remove_dir_all(&dir).unwrap();
    }
}
