//! The files a program needs to start in the guest: for a `#!` script its
//! interpreter; for a dynamic ELF its PT_INTERP loader and the closure of its
//! DT_NEEDED libraries, found where the loader would look; for a
//! `#!/usr/bin/env X` script also X, found on the host's PATH.
//!
//! Files under a directory the guest mounts over are packed elsewhere
//! (`layout`). That works for the program and for libraries found through
//! `$ORIGIN` (the loader takes it from /proc/self/exe, the moved path), but
//! not for a file the guest opens by its literal path: an ELF interpreter
//! (PT_INTERP is fixed in the file), a `#!` interpreter, a library found
//! through an absolute RUNPATH/RPATH. Those are refused at pack time.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

use object::elf;
use object::read::elf::{FileHeader, ProgramHeader};
use object::{Endianness, FileKind};

use super::entry::read;
use super::layout::mounted_dir;
use crate::error::{Error, Result};
use crate::locate;
use guestinit::proto;

/// The loader's default directories (Debian multiarch first), searched after
/// an object's DT_RUNPATH or DT_RPATH; the guest has no ld.so.cache either.
const SYSTEM_LIB_DIRS: &[&str] = &[
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib64",
    "/usr/lib64",
    "/lib",
    "/usr/lib",
];

/// How many `#!` interpreters may chain, as in the kernel (binfmt_script).
const MAX_INTERPRETER_DEPTH: usize = 4;

/// `program` first, then every file it needs, each once.
pub fn closure(program: &Path) -> Result<Vec<PathBuf>> {
    let mut closure = Closure::default();
    closure.add_executable(program, 0)?;
    Ok(closure.files)
}

#[derive(Default)]
struct Closure {
    files: Vec<PathBuf>,
    seen: HashSet<PathBuf>,
}

/// What the dynamic loader reads from one ELF object.
#[derive(Debug, Default)]
struct Dynamic {
    is_64: bool,
    machine: u16,
    interpreter: Option<PathBuf>,
    needed: Vec<String>,
    runpath: Option<String>,
    rpath: Option<String>,
}

impl Closure {
    fn add(&mut self, path: &Path) -> bool {
        let new = self.seen.insert(path.to_owned());
        if new {
            self.files.push(path.to_owned());
        }
        new
    }

    fn add_executable(&mut self, path: &Path, depth: usize) -> Result<()> {
        if !self.add(path) {
            return Ok(());
        }
        let data = read(path)?;
        if let Some(line) = shebang(&data) {
            if depth >= MAX_INTERPRETER_DEPTH {
                return Err(Error::InterpreterLoop {
                    script: path.to_owned(),
                    max: MAX_INTERPRETER_DEPTH,
                });
            }
            let interpreter = PathBuf::from(lossy(line.interpreter));
            if !interpreter.is_file() {
                return Err(Error::InterpreterNotFound {
                    interpreter,
                    script: path.to_owned(),
                });
            }
            visible(&interpreter, "#! interpreter", path)?;
            self.add_executable(&interpreter, depth + 1)?;
            if interpreter.file_name().is_some_and(|n| n == "env") {
                if let Some(name) = env_program(line.rest) {
                    let program = env_target(&lossy(name), path)?;
                    self.add_executable(&program, depth + 1)?;
                }
            }
            return Ok(());
        }
        if FileKind::parse(&*data).is_ok_and(|k| matches!(k, FileKind::Elf32 | FileKind::Elf64)) {
            self.add_elf_needs(path, &data)?;
        }
        Ok(())
    }

    /// Adds the loader and the libraries of the ELF object at `path`.
    fn add_elf_needs(&mut self, path: &Path, data: &[u8]) -> Result<()> {
        let dynamic = Dynamic::parse(data).map_err(|reason| Error::BadElf {
            path: path.to_owned(),
            reason,
        })?;
        if let Some(interpreter) = &dynamic.interpreter {
            if !interpreter.is_file() {
                return Err(Error::InterpreterNotFound {
                    interpreter: interpreter.clone(),
                    script: path.to_owned(),
                });
            }
            visible(interpreter, "ELF interpreter", path)?;
            self.add(interpreter);
        }
        for name in &dynamic.needed {
            let (lib, via_origin) =
                find_library(name, path, &dynamic).ok_or_else(|| Error::LibraryNotFound {
                    name: name.clone(),
                    needed_by: path.to_owned(),
                })?;
            // $ORIGIN moves with a moved requester; any other way is literal.
            if !(via_origin && mounted_dir(path).is_some()) {
                visible(&lib, "library", path)?;
            }
            if self.add(&lib) {
                self.add_elf_needs(&lib, &read(&lib)?)?;
            }
        }
        Ok(())
    }
}

impl Dynamic {
    fn parse(data: &[u8]) -> object::Result<Dynamic> {
        match FileKind::parse(data)? {
            FileKind::Elf64 => Self::parse_as::<elf::FileHeader64<Endianness>>(data),
            _ => Self::parse_as::<elf::FileHeader32<Endianness>>(data),
        }
    }

    fn parse_as<Elf: FileHeader<Endian = Endianness>>(data: &[u8]) -> object::Result<Dynamic> {
        let header = Elf::parse(data)?;
        let endian = header.endian()?;
        let mut out = Dynamic {
            is_64: header.is_class_64(),
            machine: header.e_machine(endian).0,
            ..Dynamic::default()
        };
        for segment in header.program_headers(endian, data)? {
            if let Some(interp) = segment.interpreter(endian, data)? {
                out.interpreter = Some(PathBuf::from(lossy(interp)));
            }
        }
        let table = header.sections(endian, data)?.dynamic_table(endian, data)?;
        for entry in table.iter() {
            let text = || table.string(entry).map(lossy);
            match entry.tag {
                elf::DT_NEEDED => out.needed.push(text()?),
                elf::DT_RUNPATH => out.runpath = Some(text()?),
                elf::DT_RPATH => out.rpath = Some(text()?),
                _ => {}
            }
        }
        Ok(out)
    }

    /// Whether the loader of `self` can use `other` (same class and machine).
    fn accepts(&self, other: &Dynamic) -> bool {
        self.is_64 == other.is_64 && self.machine == other.machine
    }
}

/// Where the loader finds library `name` for the object at `requester`,
/// and whether through `$ORIGIN`: a name with `/` is a path; else DT_RUNPATH
/// (or, without it, DT_RPATH) with `$ORIGIN` expanded, then the system
/// directories. Candidates of another ELF class or machine are passed over,
/// as the loader does.
fn find_library(name: &str, requester: &Path, dynamic: &Dynamic) -> Option<(PathBuf, bool)> {
    if name.contains('/') {
        let path = PathBuf::from(name);
        return path.is_file().then_some((path, false));
    }
    let origin = requester.parent().unwrap_or(Path::new("/"));
    let origin = origin.to_string_lossy();
    let search = dynamic.runpath.as_ref().or(dynamic.rpath.as_ref());
    let own_dirs = search
        .into_iter()
        .flat_map(|list| list.split(':'))
        .filter(|dir| !dir.is_empty())
        .map(|dir| {
            let expanded = dir
                .replace("${ORIGIN}", &origin)
                .replace("$ORIGIN", &origin);
            (
                expanded,
                dir.contains("$ORIGIN") || dir.contains("${ORIGIN}"),
            )
        });
    own_dirs
        .chain(SYSTEM_LIB_DIRS.iter().map(|d| (d.to_string(), false)))
        .map(|(dir, via_origin)| (Path::new(&dir).join(name), via_origin))
        .find(|(candidate, _)| {
            fs::read(candidate)
                .ok()
                .and_then(|data| Dynamic::parse(&data).ok())
                .is_some_and(|lib| dynamic.accepts(&lib))
        })
}

/// Refuses `path` when the guest opens it by its literal path under a
/// directory the guest mounts over (so it cannot be moved out of the way).
fn visible(path: &Path, what: &'static str, needed_by: &Path) -> Result<()> {
    match mounted_dir(path) {
        Some(dir) => Err(Error::MountedOver {
            path: path.to_owned(),
            what,
            needed_by: needed_by.to_owned(),
            dir,
        }),
        None => Ok(()),
    }
}

/// The program a `#!/usr/bin/env REST` line runs. The kernel passes REST as
/// one argument: the program's name, unless it is `-S` with words to split,
/// where options and `NAME=VALUE` words come before the name.
fn env_program(rest: &[u8]) -> Option<&[u8]> {
    let rest = rest.trim_ascii();
    let Some(split) = rest.strip_prefix(b"-S") else {
        return (!rest.is_empty()).then_some(rest);
    };
    split
        .split(|b| b.is_ascii_whitespace())
        .filter(|w| !w.is_empty())
        .find(|w| !w.starts_with(b"-") && !w.contains(&b'='))
}

/// The host file env runs as `name` for `script`: found on the host's PATH,
/// in a directory of the guest's PATH too (env searches that one).
fn env_target(name: &str, script: &Path) -> Result<PathBuf> {
    let not_found = || Error::EnvProgramNotFound {
        name: name.to_owned(),
        script: script.to_owned(),
    };
    if name.contains('/') {
        // A path: env opens it as written (relative ones are refused).
        let program = Some(PathBuf::from(name))
            .filter(|p| p.is_absolute() && p.is_file())
            .ok_or_else(not_found)?;
        visible(&program, "program env runs", script)?;
        return Ok(program);
    }
    let program = locate::on_path(name.as_ref()).ok_or_else(not_found)?;
    let dir = program.parent().unwrap_or(Path::new("/"));
    if proto::GUEST_PATH.split(':').any(|d| Path::new(d) == dir) {
        Ok(program)
    } else {
        Err(Error::EnvProgramOutsidePath {
            program,
            script: script.to_owned(),
        })
    }
}

/// A `#!` line: the interpreter (its first word) and the rest, trimmed.
struct Shebang<'a> {
    interpreter: &'a [u8],
    rest: &'a [u8],
}

/// The `#!` line of `data`, if it names an interpreter.
fn shebang(data: &[u8]) -> Option<Shebang<'_>> {
    let line = data.strip_prefix(b"#!")?;
    let line = &line[..line.iter().position(|&b| b == b'\n').unwrap_or(line.len())];
    let blank = |b: &u8| *b == b' ' || *b == b'\t';
    let start = line.iter().position(|b| !blank(b))?;
    let line = &line[start..];
    let end = line.iter().position(blank).unwrap_or(line.len());
    Some(Shebang {
        interpreter: &line[..end],
        rest: line[end..].trim_ascii(),
    })
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scratch::ScratchDir;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn ls_needs_libc_and_the_loader() {
        let files = closure(Path::new("/bin/ls")).unwrap();
        assert_eq!(files[0], Path::new("/bin/ls"));
        assert!(
            files.contains(&PathBuf::from("/lib64/ld-linux-x86-64.so.2")),
            "{files:?}"
        );
        assert!(
            files.iter().any(|f| f.file_name().unwrap() == "libc.so.6"),
            "{files:?}"
        );
        let unique: HashSet<_> = files.iter().collect();
        assert_eq!(unique.len(), files.len(), "each file once");
    }

    #[test]
    fn static_busybox_needs_nothing_else() {
        let busybox = Path::new("/bin/busybox");
        if busybox.exists() {
            assert_eq!(closure(busybox).unwrap(), vec![busybox.to_owned()]);
        }
    }

    #[test]
    fn scripts_bring_their_interpreter_and_its_libraries() {
        let dir = ScratchDir::new("test").unwrap();
        let script = dir.path().join("hello");
        fs::write(&script, "#!/bin/sh -e\necho hi\n").unwrap();
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
        let files = closure(&script).unwrap();
        assert_eq!(files[..2], [script.clone(), PathBuf::from("/bin/sh")]);
        assert!(files.iter().any(|f| f.file_name().unwrap() == "libc.so.6"));

        fs::write(&script, "#! /no/such/shell\n").unwrap();
        assert!(matches!(
            closure(&script),
            Err(Error::InterpreterNotFound { .. })
        ));
    }

    #[test]
    fn shebang_takes_the_first_word_and_the_rest() {
        let parts = |data: &'static [u8]| shebang(data).map(|s| (s.interpreter, s.rest));
        assert_eq!(
            parts(b"#!/bin/sh -e\n"),
            Some((&b"/bin/sh"[..], &b"-e"[..]))
        );
        assert_eq!(
            parts(b"#! \t/usr/bin/env python3 \nx"),
            Some((&b"/usr/bin/env"[..], &b"python3"[..]))
        );
        assert_eq!(parts(b"#!\n").map(|_| ()), None);
        assert_eq!(parts(b"\x7fELF").map(|_| ()), None);
    }

    #[test]
    fn env_runs_the_first_word_after_its_options() {
        assert_eq!(env_program(b"python3"), Some(&b"python3"[..]));
        assert_eq!(env_program(b"-S busybox sh"), Some(&b"busybox"[..]));
        assert_eq!(env_program(b"-S -i A=1 perl -w"), Some(&b"perl"[..]));
        // Without -S the kernel's single argument is the name, spaces and all.
        assert_eq!(env_program(b"busybox sh"), Some(&b"busybox sh"[..]));
        assert_eq!(env_program(b""), None);
    }

    #[test]
    fn env_scripts_bring_their_program_or_are_refused() {
        let dir = ScratchDir::new("test").unwrap();
        let script = dir.path().join("hello");
        fs::write(&script, "#!/usr/bin/env -S sh -e\necho hi\n").unwrap();
        let files = closure(&script).unwrap();
        let sh = locate::on_path("sh".as_ref()).unwrap();
        assert!(files.contains(&PathBuf::from("/usr/bin/env")), "{files:?}");
        assert!(files.contains(&sh), "{files:?}");
        for missing in ["no-such-program-guestinit", "./sh"] {
            fs::write(&script, format!("#!/usr/bin/env {missing}\n")).unwrap();
            assert!(matches!(
                closure(&script),
                Err(Error::EnvProgramNotFound { .. })
            ));
        }
        let tmp = tmp_dir("env-mounted");
        fs::copy("/bin/sh", tmp.join("sh")).unwrap();
        fs::write(&script, format!("#!/usr/bin/env {}/sh\n", tmp.display())).unwrap();
        let err = closure(&script).unwrap_err();
        let _ = fs::remove_dir_all(tmp);
        assert!(matches!(err, Error::MountedOver { .. }), "{err}");
    }

    #[test]
    fn literal_paths_under_guest_mounts_are_refused() {
        let dir = tmp_dir("elf-mounted");
        let script = dir.join("s");
        let interpreter = dir.join("sh");
        fs::copy("/bin/sh", &interpreter).unwrap();
        fs::write(&script, format!("#!{}\n", interpreter.display())).unwrap();
        let err = closure(&script).unwrap_err();
        assert!(
            matches!(
                err,
                Error::MountedOver {
                    what: "#! interpreter",
                    ..
                }
            ),
            "{err}"
        );
        // The program itself may lie there: it is packed elsewhere.
        assert_eq!(closure(&interpreter).unwrap()[0], interpreter);
        let _ = fs::remove_dir_all(dir);
    }

    /// A fresh directory under /tmp, a directory the guest mounts over.
    fn tmp_dir(name: &str) -> PathBuf {
        let dir = Path::new("/tmp").join(format!("guestinit-{name}-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_missing_library_is_named() {
        let dynamic = Dynamic {
            is_64: true,
            machine: elf::EM_X86_64.0,
            runpath: Some("$ORIGIN/../lib".into()),
            ..Dynamic::default()
        };
        assert_eq!(
            find_library("libnot-there.so.9", Path::new("/bin/ls"), &dynamic),
            None
        );
        let origin = Dynamic {
            is_64: true,
            machine: elf::EM_X86_64.0,
            runpath: Some("$ORIGIN/../lib/x86_64-linux-gnu".into()),
            ..Dynamic::default()
        };
        assert_eq!(
            find_library("libc.so.6", Path::new("/usr/bin/ls"), &origin).map(|(_, o)| o),
            Some(true)
        );
        assert!(find_library("libc.so.6", Path::new("/bin/ls"), &dynamic).is_some());
        let i386 = Dynamic {
            machine: elf::EM_386.0,
            is_64: false,
            ..Dynamic::default()
        };
        // A 32-bit requester must not get the 64-bit libc of this host.
        let found = find_library("libc.so.6", Path::new("/bin/ls"), &i386);
        assert!(found.is_none_or(|(p, _)| !p.starts_with("/lib/x86_64-linux-gnu")));
    }
}
