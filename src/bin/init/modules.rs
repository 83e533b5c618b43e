//! Loads `/modules/NNN-name.ko[.xz|.zst]` in name order (the host numbered
//! them in dependency order) before anything touches virtio.

use crate::console::warning;
use guestinit::fmt::{ErrnoText, Lossy};
use rustix::fd::AsFd;
use heapless::Vec;
use rustix::fs::OFlags;
use rustix::io::Errno;

const DIR: &str = guestinit::proto::path::MODULES;
/// Enough for the virtio stack and a scheduler's needs; more are warned of.
const MAX_MODULES: usize = 64;
/// Bytes, not `str`: a file name needs no UTF-8 check to be opened.
type Name = Vec<u8, 64>;

/// Loads every module; failures are warned of, the boot goes on (a missing
/// virtio port is reported where it is looked for).
pub fn load_all() {
    let mut names: Vec<Name, MAX_MODULES> = Vec::new();
    if !list(&mut names) {
        return;
    }
    sort(&mut names);
    for name in &names {
        if let Err(errno) = load(name) {
            warning!("load module {DIR}/{}: {}", Lossy(name), ErrnoText(errno));
        }
    }
}

/// Sorts the names by insertion: a handful of modules needs no more, and
/// core's general sort would add 3 KiB to the init.
fn sort(names: &mut [Name]) {
    for i in 1..names.len() {
        let mut j = i;
        while j > 0 && names[j - 1] > names[j] {
            names.swap(j - 1, j);
            j -= 1;
        }
    }
}

/// Collects the module file names; false when there is no module directory.
fn list(names: &mut Vec<Name, MAX_MODULES>) -> bool {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let Ok(dir) = crate::small_file::open(DIR.as_bytes(), flags) else {
        return false;
    };
    let mut buf = [core::mem::MaybeUninit::<u8>::uninit(); 2048];
    let mut entries = rustix::fs::RawDir::new(&dir, &mut buf);
    while let Some(Ok(entry)) = entries.next() {
        let bytes = entry.file_name().to_bytes();
        if !is_module(bytes) {
            continue;
        }
        match Name::from_slice(bytes).ok().map(|n| names.push(n)) {
            Some(Ok(())) => {}
            _ => warning!(
                "module {} skipped: name too long or too many modules",
                Lossy(bytes)
            ),
        }
    }
    true
}

fn is_module(name: &[u8]) -> bool {
    [&b".ko"[..], b".ko.xz", b".ko.zst"]
        .iter()
        .any(|ext| name.ends_with(ext))
}

fn load(name: &[u8]) -> Result<(), Errno> {
    let mut path: Vec<u8, 80> = Vec::new();
    for part in [DIR.as_bytes(), b"/", name] {
        let _ = path.extend_from_slice(part);
    }
    let file = crate::small_file::open(&path[..], OFlags::RDONLY | OFlags::CLOEXEC)?;
    let format = if name.ends_with(b".ko") {
        Format::Plain
    } else {
        Format::Compressed
    };
    insert(&file, format)
}

/// How a module file is stored.
#[derive(Clone, Copy)]
enum Format {
    Plain,
    /// xz or zstd, which the kernel decompresses itself (it needs
    /// CONFIG_MODULE_DECOMPRESS).
    Compressed,
}

/// MODULE_INIT_COMPRESSED_FILE, not yet in linux-raw-sys.
const COMPRESSED_FILE: core::ffi::c_int = 4;

fn insert(file: impl AsFd, format: Format) -> Result<(), Errno> {
    let flags = match format {
        Format::Plain => 0,
        Format::Compressed => COMPRESSED_FILE,
    };
    match rustix::system::finit_module(file, c"", flags) {
        // Already loaded, or built in: nothing to do.
        Ok(()) | Err(Errno::EXIST) => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_in_byte_order() {
        let mut names: std::vec::Vec<Name> = ["010-b.ko", "002-z.ko.xz", "010-a.ko", "000-x.ko"]
            .iter()
            .map(|n| Name::from_slice(n.as_bytes()).unwrap())
            .collect();
        sort(&mut names);
        let got: std::vec::Vec<&str> = names.iter().map(|n| core::str::from_utf8(n).unwrap()).collect();
        assert_eq!(got, ["000-x.ko", "002-z.ko.xz", "010-a.ko", "010-b.ko"]);
    }

    /// What finit_module must answer for a file that is no module, given
    /// the host's kernel and our capabilities, in the kernel's order.
    fn finit_errno_here() -> Errno {
        const CAP_SYS_MODULE: u32 = 16;
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let cap_eff = status
            .lines()
            .find_map(|l| l.strip_prefix("CapEff:"))
            .map(|hex| u64::from_str_radix(hex.trim(), 16).unwrap())
            .unwrap();
        let disabled = std::fs::read_to_string("/proc/sys/kernel/modules_disabled");
        if !std::path::Path::new("/proc/modules").exists() {
            Errno::NOSYS // CONFIG_MODULES=n, or a sandbox without the call
        } else if cap_eff & (1 << CAP_SYS_MODULE) == 0 || disabled.is_ok_and(|d| d.trim() == "1") {
            Errno::PERM
        } else {
            Errno::INVAL // procfs files report size 0, which kernel_read_file refuses
        }
    }

    #[test]
    fn a_file_that_is_no_module_is_refused_with_the_kernels_errno() {
        let file = crate::small_file::open(b"/proc/self/stat", OFlags::RDONLY).unwrap();
        assert_eq!(insert(&file, Format::Plain), Err(finit_errno_here()));
    }
}
