//! Whether the kernel can drive `--net`'s NIC, checked before the boot: a
//! module tree is read here, in `run`, so that `net` (the options) stays
//! below `pack` and `cli`.

use std::path::Path;

use crate::error::{Error, Result};
use crate::net::{DRIVER_OPTION, MODULES};
use crate::pack::kernel;

/// The kernel cannot drive the NIC, as far as its config and modules
/// tell: the config neither builds virtio_net in nor makes it a module
/// that `tree` (its module tree, or `--modules`) has. Without a config
/// nothing is known, and the guest warns if eth0 is missing.
pub fn check_driver(kernel: &Path, tree: Option<&Path>) -> Result<()> {
    let found = kernel::companions(kernel)?;
    let Some(config) = &found.config else {
        return Ok(());
    };
    let text = std::fs::read_to_string(config).map_err(|source| Error::Read {
        path: config.clone(),
        source,
    })?;
    if kernel::built_in(&text, DRIVER_OPTION) {
        return Ok(());
    }
    let tree = tree.or(found.tree.as_deref());
    let module = match tree {
        Some(tree) => kernel::has_module(tree, MODULES[0])?,
        None => false,
    };
    match module {
        true => Ok(()),
        false => Err(Error::NoNetDriver {
            kernel: kernel.to_owned(),
            option: DRIVER_OPTION,
            tree: tree.map(Path::to_owned),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kernel_without_virtio_net_is_refused_when_its_config_says_so() {
        use crate::scratch::ScratchDir;
        use std::fs;
        let dir = ScratchDir::new("test").unwrap();
        let kernel = dir.path().join("boot/vmlinuz-6.1.0-9-amd64");
        let config = dir.path().join("boot/config-6.1.0-9-amd64");
        let tree = dir.path().join("lib/modules/6.1.0-9-amd64");
        fs::create_dir_all(kernel.parent().unwrap()).unwrap();
        fs::write(&kernel, "").unwrap();
        // No config: nothing known, the guest will tell.
        check_driver(&kernel, None).unwrap();
        fs::write(&config, "CONFIG_VIRTIO_NET=y\n").unwrap();
        check_driver(&kernel, None).unwrap();
        fs::write(&config, "CONFIG_VIRTIO_NET=m\n").unwrap();
        let err = check_driver(&kernel, None).unwrap_err();
        assert!(err.to_string().ends_with("it has no module tree"), "{err}");
        fs::create_dir_all(tree.join("kernel/drivers/net")).unwrap();
        let err = check_driver(&kernel, None).unwrap_err();
        assert!(
            err.to_string().contains("CONFIG_VIRTIO_NET is not =y and"),
            "{err}"
        );
        assert_eq!(err.exit_code(), crate::error::USAGE);
        fs::write(tree.join("kernel/drivers/net/virtio_net.ko.xz"), "").unwrap();
        check_driver(&kernel, None).unwrap();
        // `--modules` is where the modules come from, then.
        let empty = dir.path().join("empty");
        fs::create_dir_all(&empty).unwrap();
        assert!(check_driver(&kernel, Some(&empty)).is_err());
    }

    #[test]
    fn the_debian_kernel_has_virtio_net_as_a_module() {
        let Ok(kernel) = crate::locate::kernel(None) else {
            crate::testenv::missing("no kernel found");
            return;
        };
        check_driver(&kernel, None).unwrap();
    }
}
