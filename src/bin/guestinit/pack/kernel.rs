//! What a kernel image needs beside it: its release, its config and its
//! module tree, found by the layouts kernels come in, and from them the
//! modules to pack (none when the kernel has the virtio drivers built in).

use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};

use super::modules::{self, Module};
use crate::error::{Error, Result};

/// The config options that build `modules::WANTED` into the kernel.
const WANTED_OPTIONS: [&str; 2] = ["CONFIG_VIRTIO_CONSOLE", "CONFIG_VIRTIO_PCI"];

/// What was found beside a kernel image.
#[derive(Debug, PartialEq, Eq)]
pub struct Companions {
    /// The kernel's release, from its header or its path.
    pub release: Option<String>,
    /// The `.config` of the build, if found.
    pub config: Option<PathBuf>,
    /// The link map of the build (`System.map`), if found.
    pub system_map: Option<PathBuf>,
    /// The module tree, if found.
    pub tree: Option<PathBuf>,
    /// Every module tree looked for, in order, for the error message.
    pub tried: Vec<PathBuf>,
}

/// The modules `image` needs: none when its config builds the virtio drivers
/// in, or when nothing at all lies beside it (it boots, or the guest says
/// why not); else those of its module tree, which must then exist. With a
/// tree, the `extra` ones it has as modules come too (disks: a missing one
/// is the guest's warning, not a reason to refuse the run).
pub fn modules(image: &Path, extra: &[&str]) -> Result<Vec<Module>> {
    let found = companions(image)?;
    let base = base_modules(image, &found)?;
    match &found.tree {
        Some(tree) if !extra.is_empty() => with_extra(tree, base, extra),
        _ => Ok(base),
    }
}

/// The modules for the init's ports.
fn base_modules(image: &Path, found: &Companions) -> Result<Vec<Module>> {
    let Some(config) = &found.config else {
        // Nothing says what the kernel needs: its tree decides, if it has one.
        return match &found.tree {
            Some(tree) => modules::resolve(tree, modules::WANTED),
            None => Ok(vec![]),
        };
    };
    let text = fs::read_to_string(config).map_err(|source| Error::Read {
        path: config.clone(),
        source,
    })?;
    let needs: Vec<&str> = WANTED_OPTIONS
        .into_iter()
        .filter(|option| !built_in(&text, option))
        .collect();
    match &found.tree {
        _ if needs.is_empty() => Ok(vec![]),
        Some(tree) => modules::resolve(tree, modules::WANTED),
        None => Err(Error::NoModuleTree {
            kernel: image.to_owned(),
            needs: needs.join(", "),
            tried: found
                .tried
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// `base` and then each of `extra` the tree has (built-in ones need no
/// file), dependencies first, each once.
pub fn with_extra(tree: &Path, mut base: Vec<Module>, extra: &[&str]) -> Result<Vec<Module>> {
    for module in modules::resolve_present(tree, extra)? {
        if !base.contains(&module) {
            base.push(module);
        }
    }
    Ok(base)
}

/// Whether the module tree `tree` has a file of module `name`.
pub fn has_module(tree: &Path, name: &str) -> Result<bool> {
    modules::has_file(tree, name)
}

/// The kernel's config and the path the guest finds it at,
/// `/boot/config-RELEASE`, where libbpf looks for it; `None` when the
/// config or the release is not found.
pub fn config(image: &Path) -> Result<Option<(PathBuf, Vec<u8>)>> {
    let found = companions(image)?;
    let (Some(release), Some(config)) = (found.release, found.config) else {
        return Ok(None);
    };
    let data = fs::read(&config).map_err(|source| Error::Read {
        path: config,
        source,
    })?;
    Ok(Some((
        PathBuf::from(format!("/boot/config-{release}")),
        data,
    )))
}

/// A module tree's own `config` (Debian's `/usr/lib/modules/RELEASE/config`),
/// as `config` gives it.
pub fn tree_config(tree: &Path) -> Option<(PathBuf, Vec<u8>)> {
    let release = tree.file_name()?.to_str()?;
    let data = fs::read(tree.join("config")).ok()?;
    Some((PathBuf::from(format!("/boot/config-{release}")), data))
}

/// Whether `config` (a kernel .config) sets `option=y`.
pub fn built_in(config: &str, option: &str) -> bool {
    config
        .lines()
        .any(|line| line.strip_prefix(option) == Some("=y"))
}

/// The config and module tree of `image`, by layout: a build tree
/// (`T/arch/x86/boot/bzImage`), Debian's `/usr/lib/modules/R/vmlinuz`, or
/// `/boot/vmlinuz-R` with `/lib/modules/R`. Symlinks and relative paths are
/// resolved first; the release R comes from the image's own header, else
/// from its name.
pub fn companions(image: &Path) -> Result<Companions> {
    let image = fs::canonicalize(image).map_err(|source| Error::Read {
        path: image.to_owned(),
        source,
    })?;
    let dir = image.parent().unwrap_or(Path::new("/"));
    let root = dir.parent().unwrap_or(Path::new("/"));
    let name = image.file_name().and_then(|n| n.to_str()).unwrap_or("");
    // Debian's `modules/R/vmlinuz` sits in its own module tree.
    let in_tree = name == "vmlinuz" && root.file_name().is_some_and(|n| n == "modules");
    let release = header_release(&image)
        .or_else(|| Some(name.split_once('-')?.1.to_owned()))
        .or_else(|| in_tree.then(|| dir.file_name()?.to_str().map(str::to_owned))?);

    let mut trees = Vec::new();
    let mut configs = Vec::new();
    let mut maps = Vec::new();
    if image.ends_with("arch/x86/boot/bzImage") {
        let build = image.ancestors().nth(4).unwrap_or(Path::new("/"));
        trees.push(build.to_owned());
        configs.push(build.join(".config"));
    }
    match &release {
        Some(release) if in_tree && dir.ends_with(release) => trees.push(dir.to_owned()),
        Some(release) => {
            trees.push(root.join("lib/modules").join(release));
            trees.push(root.join("usr/lib/modules").join(release));
            configs.push(dir.join(format!("config-{release}")));
            maps.push(dir.join(format!("System.map-{release}")));
        }
        None => {}
    }
    configs.extend(trees.iter().map(|t| t.join("config")));
    maps.extend(trees.iter().map(|t| t.join("System.map")));
    Ok(Companions {
        release,
        config: configs.into_iter().find(|c| c.is_file()),
        system_map: maps.into_iter().find(|m| m.is_file()),
        tree: trees.iter().find(|t| t.is_dir()).cloned(),
        tried: trees,
    })
}

/// The release in a bzImage's setup header (`kernel_version`, the first
/// word of the version string), or `None` for any other file.
fn header_release(image: &Path) -> Option<String> {
    let mut head = vec![0u8; 0x10000];
    let n = File::open(image).ok()?.read(&mut head).ok()?;
    let head = &head[..n];
    if head.get(0x202..0x206)? != b"HdrS" {
        return None;
    }
    let offset = usize::from(u16::from_le_bytes(head.get(0x20e..0x210)?.try_into().ok()?)) + 0x200;
    let text = head.get(offset..)?;
    let word = text.split(|&b| b == b' ' || b == 0).next()?;
    let release = std::str::from_utf8(word).ok()?;
    (!release.is_empty()).then(|| release.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scratch::ScratchDir;

    fn touch(path: &Path, text: &str) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    const MODULAR: &str = "CONFIG_VIRTIO=y\nCONFIG_VIRTIO_CONSOLE=m\nCONFIG_VIRTIO_PCI=m\n";
    const BUILT_IN: &str = "CONFIG_VIRTIO_CONSOLE=y\nCONFIG_VIRTIO_PCI=y\n";

    #[test]
    fn boot_and_lib_modules_found_through_relative_and_symlinked_paths() {
        let dir = ScratchDir::new("test").unwrap();
        let root = dir.path();
        let kernel = root.join("boot/vmlinuz-6.1.0-9-amd64");
        touch(&kernel, "");
        touch(&root.join("boot/config-6.1.0-9-amd64"), MODULAR);
        touch(&root.join("boot/System.map-6.1.0-9-amd64"), "");
        fs::create_dir_all(root.join("lib/modules/6.1.0-9-amd64")).unwrap();
        std::os::unix::fs::symlink("boot/vmlinuz-6.1.0-9-amd64", root.join("vmlinuz")).unwrap();
        let want = Companions {
            release: Some("6.1.0-9-amd64".into()),
            config: Some(root.join("boot/config-6.1.0-9-amd64")),
            system_map: Some(root.join("boot/System.map-6.1.0-9-amd64")),
            tree: Some(root.join("lib/modules/6.1.0-9-amd64")),
            tried: vec![
                root.join("lib/modules/6.1.0-9-amd64"),
                root.join("usr/lib/modules/6.1.0-9-amd64"),
            ],
        };
        assert_eq!(companions(&kernel).unwrap(), want);
        assert_eq!(companions(&root.join("vmlinuz")).unwrap(), want);
        // A relative path: `boot/../boot/vmlinuz-R` from the scratch root.
        let relative = pathdiff(&kernel);
        assert_eq!(companions(&relative).unwrap(), want);
    }

    /// `path` relative to the current directory.
    fn pathdiff(path: &Path) -> PathBuf {
        let cwd = std::env::current_dir().unwrap();
        let up = cwd.components().count() - 1;
        let mut rel = PathBuf::new();
        for _ in 0..up {
            rel.push("..");
        }
        rel.join(path.strip_prefix("/").unwrap())
    }

    #[test]
    fn debian_usr_lib_modules_and_build_trees() {
        let dir = ScratchDir::new("test").unwrap();
        let release = dir.path().join("usr/lib/modules/7.2.0-1-cloud-amd64");
        touch(&release.join("vmlinuz"), "");
        touch(&release.join("config"), BUILT_IN);
        let found = companions(&release.join("vmlinuz")).unwrap();
        assert_eq!(found.config, Some(release.join("config")));
        assert_eq!(found.tree, Some(release.clone()));
        assert_eq!(modules(&release.join("vmlinuz"), &[]).unwrap(), vec![]);
        let packed = config(&release.join("vmlinuz")).unwrap();
        let want = (
            PathBuf::from("/boot/config-7.2.0-1-cloud-amd64"),
            BUILT_IN.into(),
        );
        assert_eq!(packed, Some(want));
        let build = dir.path().join("linux");
        touch(&build.join("arch/x86/boot/bzImage"), "");
        touch(&build.join(".config"), BUILT_IN);
        let found = companions(&build.join("arch/x86/boot/bzImage")).unwrap();
        assert_eq!(found.config, Some(build.join(".config")));
        assert_eq!(found.tree, Some(build.clone()));
        assert_eq!(
            modules(&build.join("arch/x86/boot/bzImage"), &[]).unwrap(),
            vec![]
        );
    }

    #[test]
    fn modules_are_needed_only_when_the_config_says_so() {
        let dir = ScratchDir::new("test").unwrap();
        let kernel = dir.path().join("boot/vmlinuz-6.1.0-9-amd64");
        touch(&kernel, "");
        // Nothing beside it: it just boots.
        assert_eq!(modules(&kernel, &[]).unwrap(), vec![]);
        touch(&dir.path().join("boot/config-6.1.0-9-amd64"), BUILT_IN);
        assert_eq!(modules(&kernel, &[]).unwrap(), vec![]);
        touch(&dir.path().join("boot/config-6.1.0-9-amd64"), MODULAR);
        let err = modules(&kernel, &[]).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, Error::NoModuleTree { .. }), "{text}");
        assert!(
            text.contains("CONFIG_VIRTIO_CONSOLE, CONFIG_VIRTIO_PCI"),
            "{text}"
        );
        assert!(text.contains("lib/modules/6.1.0-9-amd64"), "{text}");
    }

    #[test]
    fn real_kernels_name_their_release_in_the_header() {
        let cache = Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache/kernel/boot");
        let Some(image) = fs::read_dir(&cache).ok().and_then(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .find(|p| p.to_string_lossy().contains("vmlinuz-"))
        }) else {
            eprintln!("no .cache/kernel: skipped");
            return;
        };
        let name = image.file_name().unwrap().to_str().unwrap();
        assert_eq!(
            header_release(&image).as_deref(),
            name.strip_prefix("vmlinuz-")
        );
        assert_eq!(header_release(&cache.join("..")), None);
    }
}
