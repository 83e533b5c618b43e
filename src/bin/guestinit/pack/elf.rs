//! The files a program needs to start in the guest: for a `#!` script its
//! interpreter; for a dynamic ELF its PT_INTERP loader and the closure of its
//! DT_NEEDED libraries, found where the loader would look. Every file is
//! stored in the guest at the path it has (or is found under) on the host.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

use object::elf;
use object::read::elf::{FileHeader, ProgramHeader};
use object::{Endianness, FileKind};

use crate::error::{Error, Result};

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
        if let Some(interpreter) = shebang(&data) {
            if depth >= MAX_INTERPRETER_DEPTH {
                return Err(Error::InterpreterLoop {
                    script: path.to_owned(),
                    max: MAX_INTERPRETER_DEPTH,
                });
            }
            if !interpreter.is_file() {
                return Err(Error::InterpreterNotFound {
                    interpreter,
                    script: path.to_owned(),
                });
            }
            return self.add_executable(&interpreter, depth + 1);
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
            self.add(interpreter);
        }
        for name in &dynamic.needed {
            let lib = find_library(name, path, &dynamic).ok_or_else(|| Error::LibraryNotFound {
                name: name.clone(),
                needed_by: path.to_owned(),
            })?;
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

/// Where the loader finds library `name` for the object at `requester`:
/// a name with `/` is a path; else DT_RUNPATH (or, without it, DT_RPATH)
/// with `$ORIGIN` expanded, then the system directories. Candidates of
/// another ELF class or machine are passed over, as the loader does.
fn find_library(name: &str, requester: &Path, dynamic: &Dynamic) -> Option<PathBuf> {
    if name.contains('/') {
        let path = PathBuf::from(name);
        return path.is_file().then_some(path);
    }
    let origin = requester.parent().unwrap_or(Path::new("/"));
    let origin = origin.to_string_lossy();
    let search = dynamic.runpath.as_ref().or(dynamic.rpath.as_ref());
    let own_dirs = search
        .into_iter()
        .flat_map(|list| list.split(':'))
        .filter(|dir| !dir.is_empty())
        .map(|dir| {
            dir.replace("${ORIGIN}", &origin)
                .replace("$ORIGIN", &origin)
        });
    own_dirs
        .chain(SYSTEM_LIB_DIRS.iter().map(|d| d.to_string()))
        .map(|dir| Path::new(&dir).join(name))
        .find(|candidate| {
            fs::read(candidate)
                .ok()
                .and_then(|data| Dynamic::parse(&data).ok())
                .is_some_and(|lib| dynamic.accepts(&lib))
        })
}

/// The interpreter path of a `#!` script (the first word after `#!`).
fn shebang(data: &[u8]) -> Option<PathBuf> {
    let line = data.strip_prefix(b"#!")?;
    let line = &line[..line.iter().position(|&b| b == b'\n').unwrap_or(line.len())];
    let word = line
        .split(|&b| b == b' ' || b == b'\t')
        .find(|w| !w.is_empty())?;
    Some(PathBuf::from(lossy(word)))
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })
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
    fn shebang_takes_the_first_word() {
        assert_eq!(shebang(b"#!/bin/sh -e\n"), Some(PathBuf::from("/bin/sh")));
        assert_eq!(
            shebang(b"#! \t/usr/bin/env python3"),
            Some(PathBuf::from("/usr/bin/env"))
        );
        assert_eq!(shebang(b"#!\n"), None);
        assert_eq!(shebang(b"\x7fELF"), None);
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
        assert!(find_library("libc.so.6", Path::new("/bin/ls"), &dynamic).is_some());
        let i386 = Dynamic {
            machine: elf::EM_386.0,
            is_64: false,
            ..Dynamic::default()
        };
        // A 32-bit requester must not get the 64-bit libc of this host.
        let found = find_library("libc.so.6", Path::new("/bin/ls"), &i386);
        assert!(found.is_none_or(|p| !p.starts_with("/lib/x86_64-linux-gnu")));
    }
}
