//! An archive entry as the plan holds it, and the helpers every part of
//! the pack names its host files with: a leaf, so `pack`'s parts import it
//! and not `pack` itself.

use std::fs;
use std::io;
use std::path::Path;

use crate::error::{Error, Result};

/// One entry of the archive, read and checked, ready to write.
pub enum Entry {
    Dir(String),
    CharDevice {
        name: String,
        major: u32,
        minor: u32,
    },
    File {
        name: String,
        perm: u32,
        data: Vec<u8>,
    },
    Symlink {
        name: String,
        target: String,
    },
}

impl Entry {
    /// Its name in the archive.
    pub fn name(&self) -> &str {
        match self {
            Entry::Dir(name)
            | Entry::CharDevice { name, .. }
            | Entry::File { name, .. }
            | Entry::Symlink { name, .. } => name,
        }
    }
}

/// The name of `path` inside the archive: relative, UTF-8.
pub fn archive_name(path: &Path) -> Result<String> {
    let relative = path.strip_prefix("/").unwrap_or(path);
    relative
        .to_str()
        .map(str::to_owned)
        .ok_or_else(|| Error::NonUtf8Path {
            path: path.to_owned(),
        })
}

/// A file's bytes, or an error naming it.
pub fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(|source| read_error(path, source))
}

pub fn read_error(path: &Path, source: io::Error) -> Error {
    Error::Read {
        path: path.to_owned(),
        source,
    }
}
