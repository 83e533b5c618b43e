//! What `--kernel` and `kernel fetch` take: a Debian suite's cloud kernel,
//! kernel packages on disk, or a path (an image or a build tree).

use std::ffi::OsStr;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Spec {
    /// `debian:SUITE`: what that suite's `linux-image-cloud-amd64` points to.
    Debian { suite: String },
    /// `deb:A.deb[,B.deb...]`: a kernel package, and its split parts
    /// (image, modules, base) when it has them.
    Deb { files: Vec<PathBuf> },
    /// Anything else: an image or a build tree, as it was before specs.
    Path(PathBuf),
}

impl Spec {
    /// A value that starts `debian:` or `deb:` is a spec (a file of that
    /// name is `./debian:...`); anything else is a path.
    pub fn parse(value: &OsStr) -> Result<Spec> {
        let text = value.to_str().unwrap_or("");
        if let Some(suite) = text.strip_prefix("debian:") {
            let valid = !suite.is_empty()
                && suite.len() <= 64
                && suite
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !valid {
                return Err(Error::KernelFetch {
                    spec: text.to_owned(),
                    why: "a suite is a Debian codename or alias of lower-case letters, digits \
                          and '-' (bookworm, trixie, sid, stable)"
                        .into(),
                });
            }
            return Ok(Spec::Debian {
                suite: suite.to_owned(),
            });
        }
        if let Some(files) = text.strip_prefix("deb:") {
            let files: Vec<PathBuf> = files
                .split(',')
                .filter(|f| !f.is_empty())
                .map(PathBuf::from)
                .collect();
            if files.is_empty() {
                return Err(Error::KernelFetch {
                    spec: text.to_owned(),
                    why: "name one or more .deb files: deb:IMAGE.deb[,MODULES.deb...]".into(),
                });
            }
            return Ok(Spec::Deb { files });
        }
        Ok(Spec::Path(Path::new(value).to_owned()))
    }
}

impl fmt::Display for Spec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Spec::Debian { suite } => write!(f, "debian:{suite}"),
            Spec::Deb { files } => {
                let names: Vec<_> = files.iter().map(|p| p.display().to_string()).collect();
                write!(f, "deb:{}", names.join(","))
            }
            Spec::Path(path) => write!(f, "{}", path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Spec> {
        Spec::parse(OsStr::new(text))
    }

    #[test]
    fn suites_packages_and_paths() {
        assert_eq!(
            parse("debian:sid").unwrap(),
            Spec::Debian {
                suite: "sid".into()
            }
        );
        assert_eq!(
            parse("deb:a.deb,/x/b.deb").unwrap(),
            Spec::Deb {
                files: vec!["a.deb".into(), "/x/b.deb".into()]
            }
        );
        assert_eq!(
            parse("/boot/vmlinuz-6.1").unwrap(),
            Spec::Path("/boot/vmlinuz-6.1".into())
        );
        assert_eq!(
            parse("./debian:sid").unwrap(),
            Spec::Path("./debian:sid".into())
        );
        assert_eq!(parse("debian:sid").unwrap().to_string(), "debian:sid");
    }

    #[test]
    fn a_bad_suite_or_an_empty_deb_list_names_the_spec() {
        for bad in [
            "debian:",
            "debian:Sid",
            "debian:../etc",
            "debian:a b",
            "deb:",
            "deb:,",
        ] {
            let err = parse(bad).unwrap_err().to_string();
            assert!(err.starts_with(&format!("kernel {bad}: ")), "{err}");
        }
    }
}
