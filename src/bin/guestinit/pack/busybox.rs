//! Shell and exec modes: busybox (the payload, packed at its host path
//! /bin/busybox) gets a `/bin` link for each applet its `--list` names, so
//! the shell finds `ls`, `stty`, `sleep`..., and exec mode's command goes
//! to `/exec_cmd`.

use std::path::Path;
use std::process::Command;

use guestinit::parse::args;
use guestinit::proto;

use super::entry::{archive_name, Entry};
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
        // The init reads it into a buffer of MAX_BYTES and ends it with a NUL.
        let max = args::MAX_BYTES - 1;
        if cmd.len() > max {
            return Err(Error::ExecTooLong {
                bytes: cmd.len(),
                max,
            });
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn exec(cmd: String) -> Result<Vec<Entry>> {
        let shell = Shell {
            exec_cmd: Some(cmd),
        };
        entries(Path::new(proto::path::BUSYBOX), &shell, &[])
    }

    #[test]
    fn applets_link_to_busybox_and_the_command_is_bounded_by_the_inits_buffer() {
        let fits = exec("x".repeat(args::MAX_BYTES - 1)).unwrap();
        let link = |want: &str| {
            fits.iter().any(|e| {
                matches!(e, Entry::Symlink { name, target } if name == want && target == "busybox")
            })
        };
        assert!(link("bin/sh") && link("bin/stty"));
        assert!(fits
            .iter()
            .any(|e| matches!(e, Entry::File { name, .. } if name == "exec_cmd")));
        let too_long = exec("x".repeat(args::MAX_BYTES));
        assert!(matches!(too_long, Err(Error::ExecTooLong { .. })));
    }
}
