//! The payload's environment and working directory, as the files the init
//! reads (`/.guestinit/env`, `/.guestinit/cwd`), refused here when the
//! init would refuse them.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use guestinit::proto::{self, limit};

/// `/.guestinit/env`: the defaults, PATH led by `path_dirs`, then each
/// `K=V` of `vars` replacing its key or added; `None` when that is just
/// the defaults (the init's own).
pub fn env_file(vars: &[OsString], path_dirs: &[PathBuf]) -> Result<Option<Vec<u8>>> {
    if vars.is_empty() && path_dirs.is_empty() {
        return Ok(None);
    }
    let mut env: Vec<Vec<u8>> = proto::DEFAULT_ENV
        .iter()
        .map(|v| v.to_bytes().to_vec())
        .collect();
    if !path_dirs.is_empty() {
        let mut path = b"PATH=".to_vec();
        for dir in path_dirs {
            path.extend_from_slice(dir.as_os_str().as_bytes());
            path.push(b':');
        }
        path.extend_from_slice(proto::GUEST_PATH.as_bytes());
        env[0] = path;
    }
    for var in vars {
        set(&mut env, checked(var)?);
    }
    let file: Vec<u8> = env
        .iter()
        .flat_map(|v| v.iter().copied().chain([0]))
        .collect();
    if file.len() > limit::ENV_BYTES || env.len() > limit::ENV_VARS {
        return Err(Error::EnvTooLong {
            bytes: file.len(),
            count: env.len(),
        });
    }
    Ok(Some(file))
}

/// `var` as bytes, when it is `K=V` with a non-empty K and no NUL.
fn checked(var: &OsString) -> Result<Vec<u8>> {
    let bytes = var.as_bytes();
    let reason = match bytes.iter().position(|&b| b == b'=') {
        _ if bytes.contains(&0) => "it holds a NUL byte",
        None => "it is not K=V",
        Some(0) => "its name is empty",
        Some(_) => return Ok(bytes.to_vec()),
    };
    Err(Error::BadEnv {
        var: var.to_string_lossy().into_owned(),
        reason,
    })
}

/// Replaces the variable of `var`'s name in `env`, or appends `var`.
fn set(env: &mut Vec<Vec<u8>>, var: Vec<u8>) {
    let name_len = var.iter().position(|&b| b == b'=').unwrap_or(var.len()) + 1;
    match env.iter_mut().find(|v| v.starts_with(&var[..name_len])) {
        Some(old) => *old = var,
        None => env.push(var),
    }
}

/// `/.guestinit/cwd`: an absolute path within the init's bound.
pub fn cwd_file(cwd: Option<&Path>) -> Result<Option<Vec<u8>>> {
    let Some(cwd) = cwd else { return Ok(None) };
    let bytes = cwd.as_os_str().as_bytes();
    let reason = if !cwd.is_absolute() {
        "it must be an absolute guest path"
    } else if bytes.contains(&0) {
        "it holds a NUL byte"
    } else if bytes.len() > limit::CWD_BYTES {
        "it is longer than PATH_MAX"
    } else {
        return Ok(Some(bytes.to_vec()));
    };
    Err(Error::BadCwd {
        path: cwd.to_owned(),
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn variables_merge_over_the_defaults_and_include_dirs_lead_path() {
        assert_eq!(env_file(&[], &[]).unwrap(), None);
        let file = env_file(&vars(&["HOME=/root", "A=1=2"]), &["/inc".into()]).unwrap();
        let text = String::from_utf8(file.unwrap()).unwrap();
        let want = format!(
            "PATH=/inc:{}\0HOME=/root\0TERM=linux\0LANG=C.UTF-8\0A=1=2\0",
            proto::GUEST_PATH
        );
        assert_eq!(text, want);
    }

    #[test]
    fn what_the_init_would_refuse_is_refused() {
        for bad in ["NOEQUALS", "=v", "A=nul\0"] {
            let err = env_file(&vars(&[bad]), &[]).unwrap_err();
            assert!(matches!(err, Error::BadEnv { .. }), "{bad:?}: {err}");
        }
        let many: Vec<String> = (0..limit::ENV_VARS).map(|i| format!("V{i}=1")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let err = env_file(&vars(&many), &[]).unwrap_err();
        assert!(matches!(err, Error::EnvTooLong { .. }), "{err}");
        let long = format!("V={}", "x".repeat(limit::ENV_BYTES));
        assert!(env_file(&vars(&[&long]), &[]).is_err());
        assert!(cwd_file(Some(Path::new("rel"))).is_err());
        assert_eq!(
            cwd_file(Some(Path::new("/srv"))).unwrap(),
            Some(b"/srv".to_vec())
        );
    }
}
