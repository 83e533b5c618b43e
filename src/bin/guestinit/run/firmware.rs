//! The firmware QEMU boots the kernel with: qboot, which QEMU ships, in
//! place of SeaBIOS, its default. qboot does only what a direct kernel
//! boot needs (PCI set-up, QEMU's ACPI tables, E820, the jump to the
//! kernel): no option ROMs, no boot menu, no POST, which under TCG saves
//! about a tenth of a second a boot (docs/BENCHMARKS.md's levers).

use std::path::{Path, PathBuf};

use guestinit::parse::cmdline::Cmdline;

use crate::locate;

/// qboot's file in QEMU's data directory.
const QBOOT: &str = "qboot.rom";

/// Where QEMU keeps its firmware when its own prefix is not known.
const DATA_DIRS: [&str; 2] = ["/usr/share/qemu", "/usr/local/share/qemu"];

/// The firmware for a kernel command line that ends in `append` (the
/// user's): qboot, but SeaBIOS (`None`, QEMU's default) for `acpi=off`.
/// qboot writes no MP table, so a kernel told to ignore ACPI finds no
/// APIC and hangs calibrating its TSC ("Unable to calibrate against PIT").
pub fn choose(qemu: &str, append: Option<&str>) -> Option<PathBuf> {
    let cmdline = Cmdline::new(append.unwrap_or_default().as_bytes());
    match cmdline.get(b"acpi") {
        Some(Some(b"off")) => None,
        _ => qboot(qemu),
    }
}

/// qboot for `-bios`, or `None` (QEMU's default firmware) where QEMU did
/// not install it: never an error, as SeaBIOS boots the same kernel.
fn qboot(qemu: &str) -> Option<PathBuf> {
    let prefix = locate::on_path(qemu.as_ref())
        .and_then(|binary| Some(binary.parent()?.parent()?.join("share/qemu")));
    find(
        prefix
            .iter()
            .map(PathBuf::as_path)
            .chain(DATA_DIRS.map(Path::new)),
    )
}

/// qboot's file in the first of `dirs` that has it.
fn find<'a>(dirs: impl IntoIterator<Item = &'a Path>) -> Option<PathBuf> {
    dirs.into_iter()
        .map(|dir| dir.join(QBOOT))
        .find(|file| file.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scratch::ScratchDir;

    #[test]
    fn acpi_off_boots_with_seabios() {
        let qboot = qboot(QEMU_FOR_TESTS);
        assert_eq!(choose(QEMU_FOR_TESTS, None), qboot);
        assert_eq!(choose(QEMU_FOR_TESTS, Some("quiet acpi=on")), qboot);
        assert_eq!(choose(QEMU_FOR_TESTS, Some("quiet acpi=off")), None);
        assert_eq!(choose(QEMU_FOR_TESTS, Some("acpi=off acpi=force")), qboot);
        assert_eq!(choose(QEMU_FOR_TESTS, Some("x=\"acpi=off\"")), qboot);
    }

    const QEMU_FOR_TESTS: &str = "qemu-system-x86_64";

    #[test]
    fn qboot_is_the_first_file_found_and_none_is_the_default_firmware() {
        let dir = ScratchDir::new("test").unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(b.join(QBOOT)).unwrap(); // a directory is no file
        assert_eq!(find([a.as_path(), b.as_path()]), None);
        std::fs::write(a.join(QBOOT), b"rom").unwrap();
        assert_eq!(find([b.as_path(), a.as_path()]), Some(a.join(QBOOT)));
    }
}
