//! The names both sides of the link agree on: port names, kernel
//! command-line keys, initramfs paths and the diagnostic line prefixes.
//! The init and the host tool both use these, so neither can drift.

/// The bulk port's name as this project's host sets it (`virtserialport,name=`).
pub const BULK_PORT: &str = "guestinit.bulk";
/// The bulk port's name under ktstr's VMM, accepted beside [`BULK_PORT`].
pub const KTSTR_BULK_PORT: &str = "ktstr-bulk";

/// The payload's PATH, as the init sets it: `#!/usr/bin/env X` finds X here.
pub const GUEST_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The payload's environment when the archive has no [`path::ENV`] file;
/// the host merges `--env` over the same list.
pub const DEFAULT_ENV: [&core::ffi::CStr; 4] = [
    c"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    c"HOME=/tmp",
    c"TERM=linux",
    c"LANG=C.UTF-8",
];

/// The bounds of the files the init reads into static buffers; the host
/// refuses at pack time what would exceed them.
pub mod limit {
    /// [`super::path::ENV`]'s bytes, terminators included.
    pub const ENV_BYTES: usize = 8192;
    /// Variables in the payload's environment.
    pub const ENV_VARS: usize = crate::sys::process::MAX_ENV;
    /// [`super::path::CWD`]'s bytes (PATH_MAX less the NUL).
    pub const CWD_BYTES: usize = 4095;
}

/// Kernel command-line keys the init reads.
pub mod key {
    /// Present: the host acknowledges EXIT with EACK before power-off.
    pub const ACK: &str = "guestinit.ack";
    /// `panic` or `segv`: crash on purpose (tests of the crash path).
    pub const CRASH: &str = "guestinit.crash";
}

/// Paths in the initramfs the host builds.
pub mod path {
    /// The payload's argv: NUL-terminated arguments (what guestinit packs),
    /// or one per line (ktstr); see `parse::args`.
    pub const ARGS: &str = "/args";
    /// Optional: the path the init passes to execve, when it is not argv[0]
    /// (the program was packed under [`ROOT`]). Its bytes are the path, with
    /// no terminator; absent, the init execs argv[0].
    pub const EXEC: &str = "/.guestinit/exec";
    /// Optional: the payload's whole environment, `K=V` entries each ending
    /// in NUL; absent, the init uses [`super::DEFAULT_ENV`].
    pub const ENV: &str = "/.guestinit/env";
    /// Optional: the payload's working directory, an absolute path without
    /// a terminator; absent, the init's own (`/`).
    pub const CWD: &str = "/.guestinit/cwd";
    /// Where `--include` puts files by default, as ktstr does.
    pub const INCLUDE: &str = "/include-files";
    /// Where the host packs payload files whose own path lies under one of
    /// [`MOUNTED`]: `/.guestinit/root/tmp/x/prog` for `/tmp/x/prog`.
    pub const ROOT: &str = "/.guestinit/root";
    /// The directories the init mounts filesystems over, hiding whatever the
    /// archive put there (the init's `mounts::MOUNTS` are all under these).
    pub const MOUNTED: [&str; 5] = ["/tmp", "/run", "/dev", "/proc", "/sys"];
    /// Kernel modules, `NNN-name.ko[.xz|.zst]`, loaded in name order.
    pub const MODULES: &str = "/modules";
    /// The archive's last entry; missing means the kernel ran out of memory
    /// while unpacking.
    pub const SENTINEL: &str = "/.guestinit-complete";
}

/// How the init's lines on COM2 begin; the host's verdicts read them.
pub mod prefix {
    /// The init could not do its job; the rest of the line says why.
    pub const FATAL: &str = "FATAL: ";
    /// The init itself crashed (a panic or a fatal signal).
    pub const PANIC: &str = "PANIC: ";
    /// A warning: the init goes on.
    pub const WARNING: &str = "guestinit: ";
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_default_path_is_the_guest_path() {
        let path = super::DEFAULT_ENV[0].to_str().unwrap();
        assert_eq!(path.strip_prefix("PATH="), Some(super::GUEST_PATH));
    }
}
