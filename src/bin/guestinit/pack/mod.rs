//! `guestinit pack`: the initramfs a run boots, a cpio newc archive.
//!
//! Entries, in this order (the guest init relies on the names and on the
//! last one); `plan` builds each section whole and chains them in this order:
//! 1. directories (`dev`, `modules`, every parent of a file below), then
//!    `/dev/console` (char 5:1, mode 0600) so the kernel can open init's fds 0-2;
//! 2. `/init` (0755): the guest init;
//! 3. `/args`: the payload's argv, each argument ending in NUL; argv[0] is
//!    the program's absolute host path;
//! 4. guestinit's own files, each only when needed: `/.guestinit/exec`
//!    (when the program is not packed at argv[0], the path the init execs
//!    instead), `/.guestinit/cwd` (`--cwd`), `/.guestinit/env` (`--env`,
//!    `--include`'s PATH);
//! 5. the payload, then its `#!` interpreter (and env's program) or ELF
//!    loader and shared libraries, each at the path the guest will open:
//!    its host path, or under `/.guestinit/root` when a guest mount would
//!    hide that path (`layout`); then `--include`'s files;
//! 6. `/boot/config-RELEASE`, the kernel's config, when it is found;
//!    with `--net`, `/etc/resolv.conf` (unless `--include` brings one);
//!    in shell and exec modes busybox's applet links and `/exec_cmd`;
//! 7. the scheduler's files (`/scheduler`, its scripts and cgroups);
//! 8. `/modules/NNN-name.ko[.xz|.zst]`: kernel modules in load order (NNN from 000);
//! 9. `/.guestinit-complete`, the last entry: if it is missing, the kernel ran
//!    out of memory while unpacking. Then the cpio trailer.

mod busybox;
mod cpio;
mod elf;
mod entry;
mod environ;
mod include;
pub mod kernel;
mod layout;
mod modules;
pub mod sched;
mod shared;

use std::collections::BTreeSet;
use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::cli::{Compress, PackArgs, Setup};
use crate::error::{Error, Result};
use crate::locate;
use entry::{archive_name, read_error, Entry};
use guestinit::parse::args;
use guestinit::proto;
use guestinit::proto::path::is_reserved;

/// The last file of the archive, proof that it unpacked completely.
/// The sentinel's name in the archive (no leading slash).
pub const SENTINEL: &str = proto::path::SENTINEL.split_at(1).1;

/// Where the guest's resolver reads its name server (with `--net`).
const RESOLV_CONF: &str = "/etc/resolv.conf";

/// What goes into an initramfs, as the user named it; `plan` resolves it
/// in the order a user would fix it: the program, then init and modules.
pub struct Spec {
    /// The payload's argv as the user gave it.
    pub argv: Vec<OsString>,
    /// `--init`, else the init beside this executable.
    pub init: Option<PathBuf>,
    /// The kernel whose module tree to use, unless `modules` is given.
    pub kernel: Option<PathBuf>,
    /// `--modules DIR`.
    pub modules: Option<PathBuf>,
    /// `--scheduler` and its files.
    pub sched: crate::cli::SchedArgs,
    /// `--include`, `--env`, `--cwd`.
    pub setup: Setup,
    /// Shell and exec modes: busybox's applet links, and /exec_cmd.
    pub shell: Option<busybox::Shell>,
    /// Modules the devices need (the disks' `disk::modules`, the NIC's
    /// `net::MODULES`, the shares' `share::MODULES`), packed where the
    /// kernel has them as modules.
    pub device_modules: Vec<&'static str>,
    /// `--net`: `/etc/resolv.conf` naming the network's DNS forwarder.
    pub net: bool,
    /// `--share`: listed for the init, and a program under one is not packed.
    pub shares: Vec<crate::share::Share>,
    /// `--collect`: /.guestinit/collect (`collect::file`).
    pub collect: Option<Vec<u8>>,
}

pub use busybox::Shell;

/// The archive's entries, read and checked, ready to write: in sections,
/// so that a machine that may be restored boots from the base (what every
/// run of the machine shares) and is handed the payload's part apart.
pub struct Plan {
    /// Every directory the archive makes.
    dirs: Vec<Entry>,
    /// `/dev/console` and `/init`.
    head: Vec<Entry>,
    /// /args, guestinit's own files, the payload's files, the scheduler's.
    payload: Vec<Entry>,
    /// The kernel's config, the modules, the sentinel.
    tail: Vec<Entry>,
}

/// Which entries of a [`Plan`] an archive holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// Everything, the payload's files in the kernel's initramfs.
    Whole,
    /// What every run of the machine shares (`guestinit.handover`).
    Base,
    /// What the init unpacks from the handover port.
    Payload,
}

impl Plan {
    fn entries(&self, part: Part) -> Vec<&Entry> {
        match part {
            Part::Whole => [&self.dirs, &self.head, &self.payload, &self.tail]
                .into_iter()
                .flatten()
                .collect(),
            Part::Base => {
                let names: BTreeSet<&Path> = self
                    .tail
                    .iter()
                    .flat_map(|e| Path::new(e.name()).ancestors().skip(1))
                    .chain([Path::new("dev"), Path::new("modules")])
                    .collect();
                let dirs = self
                    .dirs
                    .iter()
                    .filter(|d| names.contains(Path::new(d.name())));
                dirs.chain(&self.head).chain(&self.tail).collect()
            }
            Part::Payload => self.dirs.iter().chain(&self.payload).collect(),
        }
    }
}

pub fn main(args: PackArgs) -> Result<()> {
    let spec = Spec {
        argv: args.program,
        init: args.init,
        kernel: args.kernel,
        modules: args.modules,
        sched: args.sched,
        setup: args.setup,
        shell: None,
        device_modules: vec![],
        net: false,
        shares: vec![],
        collect: None,
    };
    write(&plan(&spec)?, &args.output, args.compress)
}

/// The modules to pack: those of `--modules DIR` if given, else those the
/// kernel needs from its own module tree; `extra` (the devices') from either.
fn modules(
    kernel: Option<&Path>,
    modules: Option<&Path>,
    extra: &[&str],
) -> Result<Vec<modules::Module>> {
    match modules {
        Some(dir) if dir.is_dir() => {
            kernel::with_extra(dir, modules::resolve(dir, modules::WANTED)?, extra)
        }
        Some(dir) => Err(Error::Read {
            path: dir.to_owned(),
            source: io::ErrorKind::NotFound.into(),
        }),
        None => kernel::modules(&locate::kernel(kernel)?, extra),
    }
}

/// Host files read into entries at their guest paths, each guest path once
/// (an included program and the payload share libraries); none may take
/// one of guestinit's own names.
fn host_files(placed: impl Iterator<Item = (PathBuf, PathBuf)>) -> Result<Vec<Entry>> {
    let mut seen = BTreeSet::new();
    let mut files = Vec::new();
    for (guest, path) in placed {
        let name = archive_name(&guest)?;
        // Files `layout` moved under ROOT are judged by their own path.
        let unmoved = guest.strip_prefix(proto::path::ROOT).unwrap_or(&guest);
        if is_reserved(&archive_name(unmoved)?) {
            return Err(Error::Collision { path: guest });
        }
        if !seen.insert(name.clone()) {
            continue;
        }
        let meta = fs::metadata(&path).map_err(|source| read_error(&path, source))?;
        let data = fs::read(&path).map_err(|source| read_error(&path, source))?;
        files.push(Entry::File {
            name,
            perm: meta.permissions().mode() & 0o777,
            data,
        });
    }
    Ok(files)
}

/// The kernel's config at `/boot/config-RELEASE` (libbpf reads it there),
/// whenever it is found: beside the kernel, or in `--modules`' tree when no
/// kernel is named. A scheduler without one is refused: libbpf would fail.
fn kernel_config(spec: &Spec) -> Result<Option<Entry>> {
    let image = locate::kernel(spec.kernel.as_deref());
    let found = match (
        &spec.kernel,
        spec.modules.as_deref().and_then(kernel::tree_config),
    ) {
        (None, Some(found)) => Some(found),
        _ => match &image {
            Ok(image) => kernel::config(image)?,
            Err(_) => None,
        },
    };
    let Some((path, data)) = found else {
        return match (&spec.sched.scheduler, image) {
            (Some(_), Ok(kernel)) => Err(Error::NoKernelConfig {
                looked: kernel::companions(&kernel)?
                    .tried
                    .iter()
                    .map(|t| t.join("config").display().to_string())
                    .collect(),
                kernel,
            }),
            (Some(_), Err(e)) => Err(e),
            (None, _) => Ok(None),
        };
    };
    Ok(Some(Entry::File {
        name: archive_name(&path)?,
        perm: 0o644,
        data,
    }))
}

/// Resolves and reads everything the archive holds.
pub fn plan(spec: &Spec) -> Result<Plan> {
    let (program_arg, rest) = spec.argv.split_first().ok_or(Error::ProgramNotFound {
        name: "(none given)".into(),
    })?;
    let view = shared::View::new(&spec.shares);
    let on_share = view.program(program_arg)?;
    let (program, host_program) = match &on_share {
        Some(found) => (found.guest.clone(), found.host.clone()),
        None => {
            let program = locate::program(program_arg)?;
            (program.clone(), program)
        }
    };
    let mut payload = elf::closure(&host_program)?;
    let sched = sched::plan(&spec.sched)?;
    // The scheduler's libraries live at their host paths, beside the payload's.
    for lib in sched.iter().flat_map(|s| &s.libs) {
        if !payload.contains(lib) {
            payload.push(lib.clone());
        }
    }
    // The init execs argv[0] unless told otherwise (a program on a share
    // is there at argv[0]).
    let exec = Some(layout::guest_path(&program)).filter(|p| *p != program && on_share.is_none());
    // A program on a share: neither it nor what the guest sees of its
    // needs through a share is packed.
    let links = match on_share {
        Some(_) => {
            let (packed, links) = view.split(&payload[1..])?;
            payload = packed;
            links
        }
        None => Vec::new(),
    };
    let args = args_file(program.as_os_str(), rest, exec.as_deref())?;
    let init = locate::init(spec.init.as_deref())?;
    let modules = modules(
        spec.kernel.as_deref(),
        spec.modules.as_deref(),
        &spec.device_modules,
    )?;

    let included = include::resolve(&spec.setup.include)?;
    let placed = payload.iter().map(|p| (layout::guest_path(p), p.clone()));
    let mut files = host_files(placed.chain(included.files))?;
    for link in links {
        if let Entry::Symlink { name, .. } = &link {
            if !is_reserved(name) && !files.iter().any(|f| f.name() == name) {
                files.push(link);
            }
        }
    }
    let config = kernel_config(spec)?;
    // A user's own --include of the file wins.
    let resolv = RESOLV_CONF.split_at(1).1;
    let resolv_included = files
        .iter()
        .any(|f| matches!(f, Entry::File { name, .. } if name == resolv));
    if spec.net && !resolv_included {
        files.push(Entry::File {
            name: resolv.into(),
            perm: 0o644,
            data: crate::net::resolv_conf(),
        });
    }
    if let Some(shell) = &spec.shell {
        files.extend(busybox::entries(&host_program, shell, &files)?);
    }
    let env = environ::env_file(&spec.setup.env, &included.path_dirs)?;
    let cwd = environ::cwd_file(spec.setup.cwd.as_deref())?;
    // guestinit's own files under /.guestinit, which the init reads.
    let mut own = Vec::new();
    for (path, data) in [
        (
            proto::path::EXEC,
            exec.map(|e| e.into_os_string().into_vec()),
        ),
        (proto::path::CWD, cwd),
        (proto::path::ENV, env),
        (proto::path::SHARES, crate::share::file(&spec.shares)?),
        (proto::path::COLLECT, spec.collect.clone()),
    ] {
        if let Some(data) = data {
            own.push(Entry::File {
                name: archive_name(Path::new(path))?,
                perm: 0o644,
                data,
            });
        }
    }

    let mut dirs: BTreeSet<PathBuf> = [PathBuf::from("dev"), PathBuf::from("modules")].into();
    if sched.is_some() {
        dirs.insert(PathBuf::from("boot"));
    }
    for dir in &included.dirs {
        dirs.extend(
            Path::new(&archive_name(dir)?)
                .ancestors()
                .map(Path::to_owned),
        );
    }
    // `--cwd` exists even when nothing was packed there, as `docker run -w`
    // makes it; under a guest mount the init's filesystem decides.
    if let Some(cwd) = spec.setup.cwd.as_deref() {
        if layout::mounted_dir(cwd).is_none() && cwd != Path::new("/") {
            let name = archive_name(cwd)?;
            dirs.extend(Path::new(&name).ancestors().map(Path::to_owned));
        }
    }
    dirs.remove(Path::new(""));
    for entry in own.iter().chain(&files).chain(&config) {
        let (Entry::File { name, .. } | Entry::Symlink { name, .. }) = entry else {
            continue;
        };
        dirs.extend(
            Path::new(name)
                .ancestors()
                .skip(1)
                .filter(|a| !a.as_os_str().is_empty())
                .map(Path::to_owned),
        );
    }

    let dirs = dirs
        .iter()
        .map(|dir| archive_name(dir).map(Entry::Dir))
        .collect::<Result<Vec<_>>>()?;
    let console = Entry::CharDevice {
        name: "dev/console".into(),
        major: 5,
        minor: 1,
    };
    let init = Entry::File {
        name: "init".into(),
        perm: 0o755,
        data: fs::read(&init).map_err(|source| read_error(&init, source))?,
    };
    let args = Entry::File {
        name: "args".into(),
        perm: 0o644,
        data: args,
    };
    let sched = sched.into_iter().flat_map(|s| s.files);
    let sched = sched.map(|(name, perm, data)| Entry::File { name, perm, data });
    let modules = modules
        .iter()
        .enumerate()
        .map(|(i, module)| {
            Ok(Entry::File {
                name: format!("modules/{i:03}-{}{}", module.name, module.ending),
                perm: 0o644,
                data: fs::read(&module.path).map_err(|source| read_error(&module.path, source))?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let sentinel = Entry::File {
        name: SENTINEL.into(),
        perm: 0o644,
        data: b"complete\n".to_vec(),
    };
    // The sections in the module header's order, each built whole above.
    Ok(Plan {
        dirs,
        head: vec![console, init],
        payload: [args]
            .into_iter()
            .chain(own)
            .chain(files)
            .chain(sched)
            .collect(),
        tail: config
            .into_iter()
            .chain(modules)
            .chain([sentinel])
            .collect(),
    })
}

/// The `/args` file: the absolute program path, then the arguments, each
/// ending in NUL, within the init's limits (which `exec`, the path the init
/// reads into the same buffer, shares with its NUL and one byte to spare).
fn args_file(program: &OsStr, rest: &[OsString], exec: Option<&Path>) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    for arg in std::iter::once(program).chain(rest.iter().map(OsString::as_os_str)) {
        let bytes = arg.as_bytes();
        if bytes.contains(&0) {
            return Err(Error::BadArgument {
                arg: arg.to_string_lossy().into_owned(),
            });
        }
        out.extend_from_slice(bytes);
        out.push(0);
    }
    let count = 1 + rest.len();
    let bytes = out.len() + exec.map_or(0, |e| e.as_os_str().len() + 2);
    if bytes > args::MAX_BYTES || count > args::MAX_ARGS {
        return Err(Error::ArgsTooLong { bytes, count });
    }
    Ok(out)
}

/// Writes `plan` to `path`, gzip'd if asked.
pub fn write(plan: &Plan, path: &Path, compress: Compress) -> Result<()> {
    let file = File::create(path).map_err(|source| Error::Write {
        path: path.to_owned(),
        source,
    })?;
    write_to(plan, file, path, compress)
}

/// Writes `plan` to `file` (`path` names it in errors), gzip'd if asked.
pub fn write_to(plan: &Plan, file: File, path: &Path, compress: Compress) -> Result<()> {
    write_part(plan, Part::Whole, file, path, compress)
}

/// Writes `part` of `plan` to `out` (`path` names it in errors), gzip'd if asked.
pub fn write_part<W: Write>(
    plan: &Plan,
    part: Part,
    file: W,
    path: &Path,
    compress: Compress,
) -> Result<()> {
    let write_error = |source| Error::Write {
        path: path.to_owned(),
        source,
    };
    let out = BufWriter::new(file);
    let result = match compress {
        Compress::None => write_archive(plan, part, out).and_then(|mut out| out.flush()),
        Compress::Gzip => {
            let gz = flate2::write::GzEncoder::new(out, flate2::Compression::default());
            write_archive(plan, part, gz).and_then(|gz| gz.finish()?.flush())
        }
    };
    result.map_err(write_error)
}

fn write_archive<W: Write>(plan: &Plan, part: Part, out: W) -> io::Result<W> {
    let mut archive = cpio::Archive::new(out);
    for entry in plan.entries(part) {
        match entry {
            Entry::Dir(name) => archive.dir(name)?,
            Entry::CharDevice { name, major, minor } => {
                archive.char_device(name, 0o600, *major, *minor)?
            }
            Entry::File { name, perm, data } => archive.file(name, *perm, data)?,
            Entry::Symlink { name, target } => archive.symlink(name, target)?,
        }
    }
    archive.finish()
}

#[cfg(test)]
mod tests {
    use super::cpio::read_back::parse;
    use super::*;
    use crate::scratch::ScratchDir;

    #[test]
    fn an_argv_beyond_the_init_limits_is_refused() {
        let many: Vec<OsString> = (0..args::MAX_ARGS).map(|_| "x".into()).collect();
        let err = args_file("/bin/sh".as_ref(), &many, None).unwrap_err();
        assert!(
            matches!(err, Error::ArgsTooLong { count: 1025, .. }),
            "{err}"
        );
        let long = vec![OsString::from("y".repeat(args::MAX_BYTES))];
        assert!(matches!(
            args_file("/bin/sh".as_ref(), &long, None),
            Err(Error::ArgsTooLong { .. })
        ));
        assert!(args_file("/bin/sh".as_ref(), &many[1..], None).is_ok());
        // The exec path shares the init's buffer.
        let fits = vec![OsString::from("y".repeat(args::MAX_BYTES - 8 - 2))];
        assert!(args_file("/bin/sh".as_ref(), &fits, None).is_ok());
        let exec = Path::new("/.guestinit/root/tmp/sh");
        assert!(matches!(
            args_file("/bin/sh".as_ref(), &fits, Some(exec)),
            Err(Error::ArgsTooLong { .. })
        ));
    }

    #[test]
    fn newlines_are_carried_and_nul_refused() {
        let argv = [OsString::from("-c"), OsString::from("echo a\necho b")];
        let file = args_file("/bin/sh".as_ref(), &argv, None).unwrap();
        assert_eq!(file, b"/bin/sh\0-c\0echo a\necho b\0");
        let nul = [OsString::from("a\0b")];
        assert!(matches!(
            args_file("/bin/sh".as_ref(), &nul, None),
            Err(Error::BadArgument { .. })
        ));
    }

    /// A spec for `program args`, with a stand-in init and a fake module
    /// tree where virtio_console and virtio_pci are built in.
    fn spec(dir: &Path, argv: &[&str]) -> Spec {
        let init = dir.join("init-bin");
        fs::write(&init, b"\x7fELF stand-in").unwrap();
        let modules = dir.join("modules");
        fs::create_dir_all(&modules).unwrap();
        fs::write(
            modules.join("modules.builtin"),
            "kernel/drivers/char/virtio_console.ko\nkernel/drivers/virtio/virtio_pci.ko\n",
        )
        .unwrap();
        Spec {
            argv: argv.iter().map(OsString::from).collect(),
            init: Some(init),
            kernel: None,
            modules: Some(modules),
            sched: crate::cli::SchedArgs::default(),
            setup: Setup::default(),
            shell: None,
            device_modules: vec![],
            net: false,
            shares: vec![],
            collect: None,
        }
    }

    fn archive(plan: &Plan) -> Vec<u8> {
        write_archive(plan, Part::Whole, Vec::new()).unwrap()
    }

    #[test]
    fn entry_order_and_contents() {
        let dir = ScratchDir::new("test").unwrap();
        let plan = plan(&spec(dir.path(), &["sh", "-c", "echo hi"])).unwrap();
        let entries = parse(&archive(&plan));
        let names: Vec<_> = entries.iter().map(|e| e.name.as_str()).collect();
        let at = |n: &str| names.iter().position(|x| *x == n).unwrap();

        let console = at("dev/console");
        assert!(names[..console]
            .iter()
            .all(|n| entries[at(n)].mode & 0o170000 == 0o040000));
        assert_eq!(entries[console].mode, 0o020600);
        assert_eq!(entries[console].rdev, (5, 1));
        assert_eq!(names[console + 1..console + 3], ["init", "args"]);
        assert_eq!(entries[console + 1].mode, 0o100755);

        let sh = locate::program("sh".as_ref()).unwrap();
        let args = String::from_utf8(entries[console + 2].data.clone()).unwrap();
        assert_eq!(args, format!("{}\0-c\0echo hi\0", sh.display()));
        assert_eq!(
            names[console + 3],
            sh.strip_prefix("/").unwrap().to_str().unwrap()
        );
        assert!(names.iter().any(|n| n.ends_with("/libc.so.6")), "{names:?}");

        for (i, name) in names.iter().enumerate() {
            let parent = Path::new(name).parent().unwrap();
            if !parent.as_os_str().is_empty() {
                let p = at(parent.to_str().unwrap());
                assert!(p < i, "{parent:?} comes before {name}");
            }
        }
        assert_eq!(
            *names.last().unwrap(),
            SENTINEL,
            "sentinel is the last entry"
        );
    }

    #[test]
    fn modules_are_numbered_in_load_order() {
        let dir = ScratchDir::new("test").unwrap();
        let mut spec = spec(dir.path(), &["/bin/sh"]);
        let Some(tree) =
            fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache/kernel/lib/modules"))
                .ok()
                .and_then(|mut d| d.next())
        else {
            crate::testenv::missing("no kernel in .cache/kernel");
            return;
        };
        spec.modules = Some(tree.unwrap().path());
        let entries = parse(&archive(&plan(&spec).unwrap()));
        let modules: Vec<_> = entries
            .iter()
            .filter_map(|e| e.name.strip_prefix("modules/"))
            .collect();
        assert_eq!(modules.len(), 6, "{modules:?}");
        for (i, m) in modules.iter().enumerate() {
            assert!(
                m.starts_with(&format!("{i:03}-")) && m.ends_with(".ko"),
                "{m}"
            );
        }
        assert_eq!(modules[0], "000-virtio_ring.ko");
        let last_two: Vec<_> = entries
            .iter()
            .rev()
            .take(2)
            .map(|e| e.name.as_str())
            .collect();
        assert_eq!(last_two[0], SENTINEL);
        assert!(last_two[1].starts_with("modules/"));
    }

    #[test]
    fn bad_arguments_and_missing_programs_are_errors() {
        let dir = ScratchDir::new("test").unwrap();
        assert!(matches!(
            plan(&spec(dir.path(), &["sh", "nul\0byte"])),
            Err(Error::BadArgument { .. })
        ));
        assert!(matches!(
            plan(&spec(dir.path(), &["no-such-program-guestinit"])),
            Err(Error::ProgramNotFound { .. })
        ));
        let missing = spec(dir.path(), &["sh"]);
        fs::remove_file(missing.modules.as_ref().unwrap().join("modules.builtin")).unwrap();
        assert!(matches!(plan(&missing), Err(Error::ModuleNotFound { .. })));
    }

    #[test]
    fn programs_under_guest_mounts_move_and_get_an_exec_path() {
        let dir = ScratchDir::new("test").unwrap();
        let tmp = Path::new("/tmp").join(format!("guestinit-pack-{}", std::process::id()));
        fs::create_dir_all(&tmp).unwrap();
        let program = tmp.join("ls");
        fs::copy("/bin/ls", &program).unwrap();
        let argv = [program.to_str().unwrap(), "-l"];
        let entries = parse(&archive(&plan(&spec(dir.path(), &argv)).unwrap()));
        let _ = fs::remove_dir_all(&tmp);
        let file = |n: &str| entries.iter().find(|e| e.name == n).map(|e| e.data.clone());
        let moved = format!("/.guestinit/root{}", program.display());
        assert_eq!(file(".guestinit/exec"), Some(moved.clone().into_bytes()));
        assert_eq!(
            file("args"),
            Some(format!("{}\0-l\0", program.display()).into_bytes())
        );
        assert!(file(&moved[1..]).is_some_and(|d| d == fs::read("/bin/ls").unwrap()));
        assert!(entries.iter().all(|e| !e.name.starts_with("tmp")));
        // Its libraries stay where the loader looks for them.
        assert!(entries
            .iter()
            .any(|e| e.name.ends_with("x86_64-linux-gnu/libc.so.6")));
        let plain = parse(&archive(&plan(&spec(dir.path(), &["/bin/ls"])).unwrap()));
        assert!(plain.iter().all(|e| !e.name.starts_with(".guestinit/")));
    }

    #[test]
    fn setup_files_are_packed_and_includes_may_not_take_guestinits_names() {
        let dir = ScratchDir::new("test").unwrap();
        let data = dir.path().join("data.txt");
        fs::write(&data, "d").unwrap();
        let mut spec = spec(dir.path(), &["/bin/sh"]);
        spec.setup = Setup {
            include: vec![data.clone().into()],
            env: vec!["A=1".into()],
            cwd: Some("/srv".into()),
        };
        let entries = parse(&archive(&plan(&spec).unwrap()));
        let file = |n: &str| entries.iter().find(|e| e.name == n).map(|e| e.data.clone());
        assert_eq!(file("include-files/data.txt"), Some(b"d".to_vec()));
        assert_eq!(file(".guestinit/cwd"), Some(b"/srv".to_vec()));
        assert!(entries
            .iter()
            .any(|e| e.name == "srv" && e.mode & 0o170000 == 0o040000));
        assert!(file(".guestinit/env").is_some_and(|env| env.ends_with(b"\0A=1\0")));
        spec.setup.include = vec![format!("{}:/init", data.display()).into()];
        assert!(matches!(plan(&spec), Err(Error::Collision { .. })));
    }

    #[test]
    fn a_program_on_a_share_is_not_packed_nor_what_the_share_shows_of_its_needs() {
        let dir = ScratchDir::new("test").unwrap();
        let mut spec = spec(dir.path(), &["/usr/bin/env", "true"]);
        spec.shares = vec![crate::share::Share::parse("/usr,ro").unwrap()];
        let entries = parse(&archive(&plan(&spec).unwrap()));
        let entry = |n: &str| entries.iter().find(|e| e.name == n);
        assert!(
            entries.iter().all(|e| !e.name.starts_with("usr/")),
            "nothing under the share"
        );
        assert_eq!(entry("args").unwrap().data, b"/usr/bin/env\0true\0");
        assert_eq!(
            entry(".guestinit/shares").unwrap().data,
            b"share0\0/usr\0ro\0"
        );
        assert!(entry(".guestinit/exec").is_none());
        // The loader PT_INTERP names is a link to where the share shows it
        // (on a merged-/usr host), or packed.
        let loader = entry("lib64/ld-linux-x86-64.so.2").unwrap();
        let real = fs::canonicalize("/lib64/ld-linux-x86-64.so.2").unwrap();
        match real.strip_prefix("/usr") {
            Ok(_) => {
                assert_eq!(loader.mode & 0o170000, 0o120000);
                assert_eq!(loader.data, real.as_os_str().as_bytes());
            }
            Err(_) => assert_eq!(loader.mode & 0o170000, 0o100000),
        }
        // Without the share, the same program is packed as ever.
        spec.shares.clear();
        let plain = parse(&archive(&plan(&spec).unwrap()));
        assert!(plain.iter().any(|e| e.name == "usr/bin/env"));
        assert!(plain.iter().all(|e| e.name != ".guestinit/shares"));
    }

    #[test]
    fn the_network_brings_resolv_conf_unless_one_is_included() {
        let dir = ScratchDir::new("test").unwrap();
        let mut spec = spec(dir.path(), &["/bin/sh"]);
        let file = |spec: &Spec| {
            let entries = parse(&archive(&plan(spec).unwrap()));
            let found = entries.iter().find(|e| e.name == "etc/resolv.conf");
            found.map(|e| e.data.clone())
        };
        assert_eq!(file(&spec), None);
        spec.net = true;
        assert_eq!(file(&spec), Some(b"nameserver 10.0.2.3\n".to_vec()));
        let own = dir.path().join("resolv");
        fs::write(&own, "nameserver 192.0.2.53\n").unwrap();
        spec.setup.include = vec![format!("{}:/etc/resolv.conf", own.display()).into()];
        assert_eq!(file(&spec), Some(b"nameserver 192.0.2.53\n".to_vec()));
    }

    #[test]
    fn gzip_output_unpacks_to_the_same_archive() {
        let dir = ScratchDir::new("test").unwrap();
        let plan = plan(&spec(dir.path(), &["/bin/sh"])).unwrap();
        let out = dir.path().join("initramfs.gz");
        write(&plan, &out, Compress::Gzip).unwrap();
        let mut unpacked = Vec::new();
        io::Read::read_to_end(
            &mut flate2::read::GzDecoder::new(File::open(&out).unwrap()),
            &mut unpacked,
        )
        .unwrap();
        assert_eq!(unpacked, archive(&plan));
    }
}
