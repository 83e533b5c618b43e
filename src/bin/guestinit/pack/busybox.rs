//! Shell and exec modes: busybox (the payload, packed at its host path
//! /bin/busybox) gets a `/bin` link for each applet its `--list` names, so
//! the shell finds `ls`, `stty`, `sleep`..., and exec mode's command goes
//! to `/exec_cmd`.

use std::path::Path;
use std::process::Command;

use guestinit::proto;

use super::{archive_name, Entry};
use crate::error::{Error, Result};

/// What shell and exec modes add to the archive.
#[derive(Clone, Debug, Default)]
pub struct Shell {
    /// `--exec`'s command.
    pub exec_cmd: Option<String>,
}

/// The applet links (those no other file takes) and /exec_cmd.
pub fn entries(busybox: &Path, shell: &Shell, files: &[Entry]) -> Result<Vec<Entry>> {
    let taken = |name: &str| {
        files.iter().any(|e| match e {
            Entry::File { name: n, .. } | Entry::Symlink { name: n, .. } => n == name,
            _ => false,
        })
    };
    let dir = Path::new(proto::path::BUSYBOX)
        .parent()
        .unwrap_or(Path::new("/"));
    let mut entries = Vec::new();
    for applet in applets(busybox)? {
        let name = archive_name(&dir.join(&applet))?;
        if applet != "busybox" && !taken(&name) {
            entries.push(Entry::Symlink {
                name,
                target: "busybox".into(),
            });
        }
    }
    if let Some(cmd) = &shell.exec_cmd {
        entries.push(Entry::File {
            name: archive_name(Path::new(proto::path::EXEC_CMD))?,
            perm: 0o644,
            data: cmd.as_bytes().to_vec(),
        });
    }
    Ok(entries)
}

/// `busybox --list`: one applet name a line.
fn applets(busybox: &Path) -> Result<Vec<String>> {
    let read = |source| Error::Read {
        path: busybox.to_owned(),
        source,
    };
    let out = Command::new(busybox).arg("--list").output().map_err(read)?;
    if !out.status.success() {
        return Err(read(std::io::Error::other(format!(
            "`busybox --list` failed ({})",
            out.status
        ))));
    }
    let names = String::from_utf8_lossy(&out.stdout);
    Ok(names
        .lines()
        .map(str::trim)
        .filter(|n| !n.is_empty() && !n.contains('/'))
        .map(str::to_owned)
        .collect())
}
