//! A private apt configuration for one Debian suite: its own sources,
//! lists and archives under the kernel cache, so the machine's apt state
//! is never touched. The archive is the machine's own, read from its apt
//! sources by apt itself: the project names no mirror.

use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// One suite's apt state, under `root`.
pub struct Apt {
    root: PathBuf,
    suite: String,
}

/// A source line's parts, as `apt-get indextargets` prints them.
#[derive(Debug, PartialEq, Eq)]
struct Source {
    uri: String,
    release: String,
    component: String,
}

impl Apt {
    pub fn new(root: &Path, suite: &str) -> Apt {
        Apt {
            root: root.to_owned(),
            suite: suite.to_owned(),
        }
    }

    /// The sources for the suite, written from the machine's: its own
    /// lines for that suite (with -updates and -security) when it has
    /// them, else the suite on the first archive it installs from.
    pub fn configure(&self) -> Result<(), String> {
        let listed = Command::new("apt-get")
            .args(["indextargets", "--no-release-info", "Identifier: Packages"])
            .args(["--format", "$(REPO_URI) $(RELEASE) $(COMPONENT)"])
            .output()
            .map_err(|e| format!("cannot run apt-get ({e}): this needs Debian's apt"))?;
        let machine = parse_sources(&String::from_utf8_lossy(&listed.stdout));
        let lines = sources_for(&machine, &self.suite).ok_or(
            "no Debian archive with a main component in this machine's apt sources \
             (/etc/apt/sources.list, /etc/apt/sources.list.d/*.list or *.sources)",
        )?;
        for dir in ["lists/partial", "archives/partial", "download"] {
            fs::create_dir_all(self.root.join(dir))
                .map_err(|e| format!("cannot make {}: {e}", self.root.join(dir).display()))?;
        }
        fs::write(self.root.join("sources.list"), lines.join("\n") + "\n")
            .map_err(|e| format!("cannot write {}: {e}", self.root.display()))
    }

    /// The options that point apt at this state and nothing else.
    fn options(&self) -> Vec<OsString> {
        let mut options: Vec<OsString> = Vec::new();
        let mut set = |key: &str, value: &Path| {
            options.push("-o".into());
            let mut pair = OsString::from(format!("{key}="));
            pair.push(value);
            options.push(pair);
        };
        set("Dir::Etc::SourceList", &self.root.join("sources.list"));
        set("Dir::Etc::SourceParts", Path::new("/dev/null"));
        set("Dir::State::Lists", &self.root.join("lists"));
        set("Dir::Cache::Archives", &self.root.join("archives"));
        set("Dir::Cache::pkgcache", Path::new(""));
        set("Dir::Cache::srcpkgcache", Path::new(""));
        // As root, apt downloads as _apt, which cannot write a private
        // dir of root's; it runs as root here instead (its own files only).
        if fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0) {
            options.extend(["-o".into(), "APT::Sandbox::User=root".into()]);
        }
        options
    }

    fn run(&self, program: &str, args: &[&str], dir: Option<&Path>) -> Result<Output, String> {
        let mut command = Command::new(program);
        command.args(self.options()).args(args);
        if let Some(dir) = dir {
            command.current_dir(dir);
        }
        let out = command
            .output()
            .map_err(|e| format!("cannot run {program}: {e}"))?;
        if out.status.success() {
            Ok(out)
        } else {
            let err = String::from_utf8_lossy(&out.stderr);
            Err(format!(
                "`{program} {}` failed: {}",
                args.join(" "),
                err.trim()
            ))
        }
    }

    pub fn update(&self) -> Result<(), String> {
        self.run("apt-get", &["update", "-qq"], None).map(drop)
    }

    /// The versioned package a meta package depends on
    /// (`linux-image-cloud-amd64` -> `linux-image-6.1.0-57-cloud-amd64`).
    pub fn resolve(&self, meta: &str) -> Result<String, String> {
        let out = self.run("apt-cache", &["depends", meta], None)?;
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.trim().strip_prefix("Depends: "))
            .find(|p| {
                p.starts_with("linux-image-")
                    && p.as_bytes().get(12).is_some_and(u8::is_ascii_digit)
            })
            .map(str::to_owned)
            .ok_or_else(|| {
                format!(
                    "{meta} in {} depends on no versioned kernel image",
                    self.suite
                )
            })
    }

    /// The version of `package` apt would install.
    pub fn version(&self, package: &str) -> Option<String> {
        let out = self
            .run("apt-cache", &["show", "--no-all-versions", package], None)
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let version = text.lines().find_map(|l| l.strip_prefix("Version: "))?;
        Some(version.replace(':', "_"))
    }

    /// The image package and the parts newer Debian kernels split off it.
    pub fn parts(&self, image: &str) -> Vec<String> {
        let version = image.strip_prefix("linux-image-").unwrap_or(image);
        let mut parts = vec![image.to_owned()];
        for part in ["linux-binary-", "linux-base-", "linux-modules-"] {
            let name = format!("{part}{version}");
            if self.run("apt-cache", &["show", &name], None).is_ok() {
                parts.push(name);
            }
        }
        parts
    }

    /// Downloads `packages` into a fresh download dir: the .deb files.
    pub fn download(&self, packages: &[String]) -> Result<Vec<PathBuf>, String> {
        let dir = self.root.join("download");
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).map_err(|e| format!("cannot make {}: {e}", dir.display()))?;
        let mut args = vec!["download", "-qq"];
        args.extend(packages.iter().map(String::as_str));
        self.run("apt-get", &args, Some(&dir))?;
        let mut debs: Vec<PathBuf> = fs::read_dir(&dir)
            .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
            .filter_map(|e| Some(e.ok()?.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "deb"))
            .collect();
        debs.sort();
        Ok(debs)
    }
}

fn parse_sources(listed: &str) -> Vec<Source> {
    listed
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            Some(Source {
                uri: words.next()?.to_owned(),
                release: words.next()?.to_owned(),
                component: words.next()?.to_owned(),
            })
        })
        .collect()
}

/// The sources.list lines for `suite`: the machine's own lines of that
/// suite and its -updates and -security (main only: the kernel is there;
/// not -backports, whose kernel is not the suite's),
/// else `suite main` on the archive of its first release suite.
fn sources_for(machine: &[Source], suite: &str) -> Option<Vec<String>> {
    let main = |s: &&Source| s.component == "main";
    let own: Vec<String> = machine
        .iter()
        .filter(main)
        .filter(|s| {
            s.release == suite
                || s.release
                    .strip_prefix(suite)
                    .is_some_and(|r| r == "-updates" || r == "-security")
        })
        .map(|s| format!("deb {} {} main", s.uri, s.release))
        .collect();
    if !own.is_empty() {
        return Some(own);
    }
    let archive = machine
        .iter()
        .filter(main)
        .find(|s| !s.release.contains('-'))?;
    Some(vec![format!("deb {} {suite} main", archive.uri)])
}

#[cfg(test)]
mod tests {
    use super::*;

    // The URIs are opaque to the code, carried through as they stand: local
    // `file:` archives here, so no mirror is named even in a test.
    const MACHINE: &str = "\
file:/srv/archive/debian/ bookworm main
file:/srv/archive/debian/ bookworm contrib
file:/srv/archive/debian/ bookworm-updates main
file:/srv/security/debian-security/ bookworm-security main
file:/srv/archive/debian/ bookworm-backports main
";

    #[test]
    fn the_machines_own_suite_keeps_its_lines_and_another_takes_its_archive() {
        let machine = parse_sources(MACHINE);
        assert_eq!(
            sources_for(&machine, "bookworm").unwrap(),
            [
                "deb file:/srv/archive/debian/ bookworm main",
                "deb file:/srv/archive/debian/ bookworm-updates main",
                "deb file:/srv/security/debian-security/ bookworm-security main",
            ]
        );
        assert_eq!(
            sources_for(&machine, "sid").unwrap(),
            ["deb file:/srv/archive/debian/ sid main"]
        );
        // Not a prefix match: "book" is not bookworm.
        assert_eq!(
            sources_for(&machine, "book").unwrap(),
            ["deb file:/srv/archive/debian/ book main"]
        );
        assert_eq!(sources_for(&[], "sid"), None);
    }
}
