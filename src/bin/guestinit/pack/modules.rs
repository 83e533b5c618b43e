//! The kernel modules the guest loads before it touches virtio: the wanted
//! ones and their dependencies, in load order. Dependencies come from each
//! module's own `.modinfo` `depends=` record (a bare module tree has no
//! modules.dep); modules the kernel has built in need no file.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use guestinit::parse::modinfo;
use object::{Object, ObjectSection};

use crate::error::{Error, Result};

/// The modules the init needs for its ports: the console driver and the PCI
/// transport it sits on.
pub const WANTED: &[&str] = &["virtio_console", "virtio_pci"];

/// File endings of a module, uncompressed first.
const ENDINGS: &[&str] = &[".ko", ".ko.xz", ".ko.zst"];

/// One module file to pack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Module {
    /// The name as its file spells it (`virtio_console`).
    pub name: String,
    /// `.ko`, `.ko.xz` or `.ko.zst`: packed as is, the init decompresses.
    pub ending: &'static str,
    pub path: PathBuf,
}

/// `-` and `_` are the same in module names.
fn normalize(name: &str) -> String {
    name.replace('-', "_")
}

/// The modules to load, dependencies first, each once. `dir` is searched
/// recursively; `dir/modules.builtin`, if present, lists built-in modules.
pub fn resolve(dir: &Path, wanted: &[&str]) -> Result<Vec<Module>> {
    let resolver = Resolver {
        dir,
        files: index(dir)?,
        builtin: builtin(dir)?,
    };
    let mut walk = Walk::default();
    for name in wanted {
        resolver.visit(&normalize(name), &mut walk)?;
    }
    Ok(walk.order)
}

/// As [`resolve`], but a wanted module the tree neither has nor builds in
/// is passed over (its dependencies must still be found).
pub fn resolve_present(dir: &Path, wanted: &[&str]) -> Result<Vec<Module>> {
    let resolver = Resolver {
        dir,
        files: index(dir)?,
        builtin: builtin(dir)?,
    };
    let mut walk = Walk::default();
    for name in wanted.iter().map(|n| normalize(n)) {
        if resolver.files.contains_key(&name) || resolver.builtin.contains(&name) {
            resolver.visit(&name, &mut walk)?;
        }
    }
    Ok(walk.order)
}

/// Whether `dir` has a file of module `name` (searched as [`resolve`] does).
pub fn has_file(dir: &Path, name: &str) -> Result<bool> {
    Ok(index(dir)?.contains_key(&normalize(name)))
}

struct Resolver<'a> {
    dir: &'a Path,
    files: HashMap<String, Module>,
    builtin: HashSet<String>,
}

#[derive(Default)]
struct Walk {
    order: Vec<Module>,
    done: HashSet<String>,
    chain: Vec<String>,
}

impl Resolver<'_> {
    /// Depth-first: a module goes into the order after all it depends on.
    fn visit(&self, name: &str, walk: &mut Walk) -> Result<()> {
        if walk.done.contains(name) {
            return Ok(());
        }
        if walk.chain.iter().any(|n| n == name) {
            walk.chain.push(name.to_owned());
            return Err(Error::ModuleCycle {
                chain: walk.chain.join(" -> "),
            });
        }
        if self.builtin.contains(name) {
            walk.done.insert(name.to_owned());
            return Ok(());
        }
        let module = self.files.get(name).ok_or_else(|| Error::ModuleNotFound {
            name: name.to_owned(),
            dir: self.dir.to_owned(),
        })?;
        walk.chain.push(name.to_owned());
        for dep in dependencies(module)? {
            self.visit(&dep, walk)?;
        }
        walk.chain.pop();
        walk.done.insert(name.to_owned());
        walk.order.push(module.clone());
        Ok(())
    }
}

/// Every module file under `dir` by normalized name; the first in sorted
/// path order wins. Directory symlinks (`build`, `source`) are not followed.
fn index(dir: &Path) -> Result<HashMap<String, Module>> {
    let mut files = HashMap::new();
    for entry in walkdir::WalkDir::new(dir).sort_by_file_name() {
        let entry = entry.map_err(|e| Error::Read {
            path: e.path().unwrap_or(dir).to_owned(),
            source: e.into(),
        })?;
        let Some(file_name) = entry.file_name().to_str() else {
            continue;
        };
        let found = ENDINGS
            .iter()
            .find_map(|&ending| Some((file_name.strip_suffix(ending)?, ending)));
        if let (Some((name, ending)), false) = (found, entry.file_type().is_dir()) {
            files.entry(normalize(name)).or_insert_with(|| Module {
                name: name.to_owned(),
                ending,
                path: entry.path().to_owned(),
            });
        }
    }
    Ok(files)
}

/// Names in `dir/modules.builtin` (lines like `kernel/drivers/x/name.ko`).
fn builtin(dir: &Path) -> Result<HashSet<String>> {
    let path = dir.join("modules.builtin");
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashSet::new()),
        Err(source) => return Err(Error::Read { path, source }),
    };
    Ok(text
        .lines()
        .filter_map(|line| line.trim().rsplit('/').next()?.strip_suffix(".ko"))
        .map(normalize)
        .collect())
}

/// The normalized `depends=` names of `module`'s `.modinfo` section.
fn dependencies(module: &Module) -> Result<Vec<String>> {
    let bad = |reason: String| Error::BadModule {
        path: module.path.clone(),
        reason,
    };
    let raw = fs::read(&module.path).map_err(|source| Error::Read {
        path: module.path.clone(),
        source,
    })?;
    let elf = match module.ending {
        ".ko.xz" => decompress(lzma_rust2::XzReader::new(&raw[..], false))
            .map_err(|e| bad(format!("xz: {e}")))?,
        ".ko.zst" => ruzstd::decoding::StreamingDecoder::new(&raw[..])
            .map_err(|e| bad(format!("zstd: {e}")))
            .and_then(|r| decompress(r).map_err(|e| bad(format!("zstd: {e}"))))?,
        _ => raw,
    };
    let file = object::File::parse(&*elf).map_err(|e| bad(format!("not an ELF object: {e}")))?;
    let section = file
        .section_by_name(".modinfo")
        .ok_or_else(|| bad("no .modinfo section".into()))?;
    let data = section.data().map_err(|e| bad(format!(".modinfo: {e}")))?;
    Ok(modinfo::depends(data)
        .map(|name| normalize(&String::from_utf8_lossy(name)))
        .collect())
}

fn decompress(mut reader: impl Read) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    reader.read_to_end(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scratch::ScratchDir;

    fn real_tree() -> Option<PathBuf> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache/kernel/lib/modules");
        let tree = fs::read_dir(root).ok()?.next()?.ok()?.path();
        Some(tree)
    }

    fn names(modules: &[Module]) -> Vec<&str> {
        modules.iter().map(|m| m.name.as_str()).collect()
    }

    #[test]
    fn real_virtio_modules_come_after_their_dependencies() {
        let Some(tree) = real_tree() else {
            crate::testenv::missing("no module tree in .cache/kernel");
            return;
        };
        let order = resolve(&tree, WANTED).unwrap();
        let got = names(&order);
        let pos = |n: &str| got.iter().position(|m| *m == n);
        // What this kernel's .modinfo says: virtio_console depends on
        // virtio and virtio_ring; virtio on virtio_ring; virtio_pci on
        // virtio_ring, virtio_pci_modern_dev, virtio_pci_legacy_dev, virtio.
        for (module, deps) in [
            ("virtio_console", &["virtio", "virtio_ring"][..]),
            ("virtio", &["virtio_ring"][..]),
            (
                "virtio_pci",
                &[
                    "virtio_ring",
                    "virtio_pci_modern_dev",
                    "virtio_pci_legacy_dev",
                    "virtio",
                ][..],
            ),
        ] {
            let at = pos(module).unwrap_or_else(|| panic!("{module} missing from {got:?}"));
            for dep in deps {
                if let Some(dep_at) = pos(dep) {
                    assert!(dep_at < at, "{dep} must precede {module}: {got:?}");
                }
            }
        }
        let unique: HashSet<_> = got.iter().collect();
        assert_eq!(unique.len(), got.len(), "each module once: {got:?}");
        assert!(order.iter().all(|m| m.path.is_file()));
    }

    /// A minimal ELF64 relocatable whose only section is `.modinfo`.
    fn fake_module(modinfo: &[u8]) -> Vec<u8> {
        let shstrtab = b"\0.modinfo\0.shstrtab\0";
        let shoff = (64 + modinfo.len() + shstrtab.len() + 7) & !7;
        let mut elf = Vec::new();
        elf.extend(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0");
        elf.extend(1u16.to_le_bytes()); // ET_REL
        elf.extend(62u16.to_le_bytes()); // EM_X86_64
        elf.extend(1u32.to_le_bytes());
        elf.extend([0u8; 16]); // entry, phoff
        elf.extend((shoff as u64).to_le_bytes());
        elf.extend(0u32.to_le_bytes());
        for half in [64u16, 0, 0, 64, 3, 2] {
            elf.extend(half.to_le_bytes()); // ehsize .. shstrndx
        }
        elf.extend(modinfo);
        elf.extend(shstrtab);
        elf.resize(shoff, 0);
        let section = |elf: &mut Vec<u8>, name: u32, kind: u32, offset: usize, size: usize| {
            elf.extend(name.to_le_bytes());
            elf.extend(kind.to_le_bytes());
            elf.extend([0u8; 16]); // flags, addr
            elf.extend((offset as u64).to_le_bytes());
            elf.extend((size as u64).to_le_bytes());
            elf.extend([0u8; 8]); // link, info
            elf.extend(1u64.to_le_bytes());
            elf.extend(0u64.to_le_bytes());
        };
        section(&mut elf, 0, 0, 0, 0);
        section(&mut elf, 1, 1, 64, modinfo.len()); // SHT_PROGBITS
        section(&mut elf, 10, 3, 64 + modinfo.len(), shstrtab.len()); // SHT_STRTAB
        elf
    }

    fn tree(modules: &[(&str, &str)], builtin: &str) -> ScratchDir {
        let dir = ScratchDir::new("test").unwrap();
        for (i, (file, depends)) in modules.iter().enumerate() {
            let sub = dir.path().join(format!("kernel/d{i}"));
            fs::create_dir_all(&sub).unwrap();
            let info = format!("license=GPL\0depends={depends}\0");
            fs::write(sub.join(file), fake_module(info.as_bytes())).unwrap();
        }
        fs::write(dir.path().join("modules.builtin"), builtin).unwrap();
        dir
    }

    #[test]
    fn dependencies_first_each_once_dash_equals_underscore() {
        let dir = tree(
            &[
                ("a.ko", "b,c-d,e"),
                ("b.ko", "c_d"),
                ("c_d.ko", ""),
                ("unrelated.ko", "a"),
            ],
            "kernel/lib/e.ko\n",
        );
        let order = resolve(dir.path(), &["a", "b"]).unwrap();
        assert_eq!(names(&order), ["c_d", "b", "a"]);
        assert!(order.iter().all(|m| m.ending == ".ko"));
    }

    #[test]
    fn cycles_and_missing_modules_are_errors() {
        let dir = tree(&[("x.ko", "y"), ("y.ko", "x"), ("z.ko", "not_here")], "");
        match resolve(dir.path(), &["x"]) {
            Err(Error::ModuleCycle { chain }) => assert_eq!(chain, "x -> y -> x"),
            other => panic!("{other:?}"),
        }
        match resolve(dir.path(), &["z"]) {
            Err(e @ Error::ModuleNotFound { .. }) => {
                assert!(
                    e.to_string()
                        .starts_with("kernel module not_here not found"),
                    "{e}"
                )
            }
            other => panic!("{other:?}"),
        }
    }

    /// Compresses `file` to `file.EXT` with the system tool `tool` (`xz`, `zstd`).
    fn compress(tool: &str, file: &Path) -> bool {
        let status = std::process::Command::new(tool)
            .arg("-q")
            .arg(file)
            .status();
        match status {
            Ok(status) => {
                assert!(status.success(), "{tool} failed");
                fs::remove_file(file).is_ok() || !file.exists()
            }
            Err(_) => {
                crate::testenv::missing(&format!("{tool} is not installed"));
                false
            }
        }
    }

    #[test]
    fn compressed_modules_are_read_and_kept_compressed() {
        let dir = tree(&[("a.ko", "b"), ("b.ko", "c"), ("c.ko", "")], "");
        let a = dir.path().join("kernel/d0/a.ko");
        let b = dir.path().join("kernel/d1/b.ko");
        if !compress("xz", &a) || !compress("zstd", &b) {
            return;
        }
        let order = resolve(dir.path(), &["a"]).unwrap();
        assert_eq!(names(&order), ["c", "b", "a"]);
        let endings: Vec<_> = order.iter().map(|m| m.ending).collect();
        assert_eq!(endings, [".ko", ".ko.zst", ".ko.xz"]);
        assert_eq!(order[2].path, dir.path().join("kernel/d0/a.ko.xz"));
    }
}
