//! The host's end of `--collect`: CENT, CDAT and CEND frames
//! (`proto::collect`) from an untrusted guest, written under their root's
//! HOST_DIR and nowhere else. Every path is checked (`check_path`: no `..`,
//! no absolute name) and walked from HOST_DIR's descriptor one component
//! at a time with O_NOFOLLOW, so a symlink the guest made (which is
//! created as a link) is never followed by a later write. A file goes to
//! a temporary name through a bounded buffer and is renamed into place
//! only when its CRC-32 and size check; else it is removed and warned of.
//! Only std, rustix and the library: the fuzz target `collect` builds it.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use guestinit::proto::collect::{check_path, End, Entry, Kind, MAX_ENTRIES};
use guestinit::wire::{slice16, Tag};
use rustix::fd::OwnedFd;
use rustix::fs::{AtFlags, Mode, OFlags, Timespec, Timestamps};
use rustix::io::Errno;

/// The write buffer of the file being received: the host's memory for a
/// collection, whatever the file's size.
const WRITE_BUF: usize = 64 * 1024;
/// Warnings said at most; then one line that says more were not.
const MAX_WARNINGS: usize = 100;

/// One root: where its entries go.
pub struct Root {
    /// The guest directory, for warnings.
    pub guest: PathBuf,
    pub host: PathBuf,
    /// HOST_DIR, opened (and made) at the first entry.
    fd: Option<OwnedFd>,
}

impl Root {
    pub fn new(guest: PathBuf, host: PathBuf) -> Root {
        Root {
            guest,
            host,
            fd: None,
        }
    }
}

/// The entry whose CDAT frames are coming.
struct Current {
    root: usize,
    path: Vec<u8>,
    mtime: Timespec,
    mode: u32,
    left: u64,
    crc: u32,
    sink: Sink,
}

enum Sink {
    /// A regular file, at `tmp` in `dir` until it checks.
    File {
        dir: OwnedFd,
        tmp: CString,
        out: Buffered,
    },
    /// A link's target, at most one frame's worth.
    Link { dir: OwnedFd, target: Vec<u8> },
    /// Refused at its CENT (said then): its bytes are passed over.
    Skip,
}

/// A directory's mode and mtime, set at the end (its files change its
/// mtime, and a read-only one could not take them).
struct DirAttrs {
    root: usize,
    path: Vec<u8>,
    mode: u32,
    mtime: Timespec,
}

/// What the host keeps of a collection.
#[derive(Debug, Default, Clone)]
pub struct Kept {
    /// Every file and link written, by root.
    pub files: Vec<(usize, PathBuf)>,
}

pub struct Receiver {
    roots: Vec<Root>,
    current: Option<Current>,
    dirs: Vec<DirAttrs>,
    entries: u32,
    /// The bound on all bytes (`--collect-max`): the host's own check.
    max_bytes: u64,
    bytes: u64,
    tmp_count: u64,
    warnings: usize,
    pending: Vec<String>,
    pub kept: Kept,
}

/// Why an entry cannot be written.
type Why = String;

impl Receiver {
    pub fn new(roots: Vec<Root>, max_bytes: u64) -> Receiver {
        Receiver {
            roots,
            current: None,
            dirs: Vec::new(),
            entries: 0,
            max_bytes,
            bytes: 0,
            tmp_count: 0,
            warnings: 0,
            pending: Vec::new(),
            kept: Kept::default(),
        }
    }

    /// The warnings since the last call, each one line.
    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.pending)
    }

    fn warn(&mut self, text: String) {
        self.warnings += 1;
        match self.warnings {
            n if n < MAX_WARNINGS => self.pending.push(format!("collect: {text}")),
            MAX_WARNINGS => self
                .pending
                .push("collect: more warnings were not said".into()),
            _ => {}
        }
    }

    /// `path` under `root`, as the guest names it, on one line.
    fn shown(&self, root: usize, path: &[u8]) -> String {
        let base = self
            .roots
            .get(root)
            .map_or_else(|| format!("root {root}"), |r| r.guest.display().to_string());
        format!("{base}/{}", String::from_utf8_lossy(path).escape_debug())
    }

    /// One frame of the collection; other tags are not its.
    pub fn on_frame(&mut self, tag: Tag, payload: &[u8]) {
        match tag {
            Tag::CENT => self.on_entry(payload),
            Tag::CDAT => self.on_data(payload),
            Tag::CEND => self.on_end(payload),
            _ => {}
        }
    }

    fn on_entry(&mut self, payload: &[u8]) {
        if let Some(open) = self.current.take() {
            let shown = self.shown(open.root, &open.path);
            self.drop_current(open);
            self.warn(format!("{shown}: cut short by the next entry: not kept"));
        }
        let entry = match Entry::decode(payload) {
            Ok(entry) => entry,
            Err(e) => return self.warn(format!("a malformed entry: {e}")),
        };
        let root = usize::from(entry.root);
        let shown = self.shown(root, entry.path);
        let mtime = Timespec {
            tv_sec: entry.mtime_s,
            tv_nsec: i64::from(entry.mtime_ns.min(999_999_999)),
        };
        let sink = match self.admit(&entry) {
            Ok(sink) => sink,
            Err(why) => {
                self.warn(format!("{shown}: {why}: not kept"));
                Sink::Skip
            }
        };
        if entry.kind == Kind::Dir {
            return;
        }
        self.current = Some(Current {
            root,
            path: entry.path.to_vec(),
            mtime,
            mode: entry.mode & 0o7777,
            left: entry.size,
            crc: 0,
            sink,
        });
    }

    /// Checks `entry` and makes its place: a directory is made now, a
    /// file's temporary opened, a link's target awaited.
    fn admit(&mut self, entry: &Entry<'_>) -> Result<Sink, Why> {
        check_path(entry.path).map_err(|e| e.to_string())?;
        let root = usize::from(entry.root);
        if root >= self.roots.len() {
            return Err("an unknown root".into());
        }
        if self.entries >= MAX_ENTRIES {
            return Err(format!("over {MAX_ENTRIES} entries"));
        }
        self.entries += 1;
        if entry.kind == Kind::File {
            if self.bytes.saturating_add(entry.size) > self.max_bytes {
                return Err(format!(
                    "over the bound of {} bytes (--collect-max)",
                    self.max_bytes
                ));
            }
            self.bytes += entry.size;
        }
        let (dir, name) = self.parent(root, entry.path)?;
        match entry.kind {
            Kind::Dir => {
                match rustix::fs::mkdirat(&dir, name.as_c_str(), Mode::from_raw_mode(0o700)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(format!("mkdir: {e}")),
                }
                self.dirs.push(DirAttrs {
                    root,
                    path: entry.path.to_vec(),
                    mode: entry.mode & 0o7777,
                    mtime: Timespec {
                        tv_sec: entry.mtime_s,
                        tv_nsec: i64::from(entry.mtime_ns.min(999_999_999)),
                    },
                });
                Ok(Sink::Skip)
            }
            Kind::Symlink if entry.size > guestinit::wire::MAX_PAYLOAD as u64 => {
                Err("a link's target over a frame".into())
            }
            Kind::Symlink => Ok(Sink::Link {
                dir,
                target: Vec::new(),
            }),
            Kind::File => {
                self.tmp_count += 1;
                let tmp =
                    CString::new(format!(".guestinit-part-{}", self.tmp_count)).unwrap_or_default();
                let flags = OFlags::WRONLY
                    | OFlags::CREATE
                    | OFlags::EXCL
                    | OFlags::NOFOLLOW
                    | OFlags::CLOEXEC;
                let fd =
                    rustix::fs::openat(&dir, tmp.as_c_str(), flags, Mode::from_raw_mode(0o600))
                        .map_err(|e| format!("create: {e}"))?;
                Ok(Sink::File {
                    dir,
                    tmp,
                    out: Buffered::new(fd),
                })
            }
        }
    }

    /// HOST_DIR's descriptor for `root`, made and opened at first use.
    fn root_fd(&mut self, root: usize) -> Result<OwnedFd, Why> {
        let r = &mut self.roots[root];
        if r.fd.is_none() {
            std::fs::create_dir_all(&r.host)
                .map_err(|e| format!("make {}: {e}", r.host.display()))?;
            let host = CString::new(r.host.as_os_str().as_bytes()).map_err(|e| e.to_string())?;
            let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
            let fd = rustix::fs::open(host.as_c_str(), flags, Mode::empty())
                .map_err(|e| format!("open {}: {e}", r.host.display()))?;
            r.fd = Some(fd);
        }
        let fd = r.fd.as_ref().map(|fd| fd.try_clone());
        match fd {
            Some(Ok(fd)) => Ok(fd),
            Some(Err(e)) => Err(e.to_string()),
            None => Err("no HOST_DIR".into()),
        }
    }

    /// The directory that holds `path` (checked) under `root`, walked with
    /// O_NOFOLLOW from HOST_DIR and its missing parents made, and the last
    /// component's name.
    fn parent(&mut self, root: usize, path: &[u8]) -> Result<(OwnedFd, CString), Why> {
        let mut dir = self.root_fd(root)?;
        let mut parts = path.split(|&b| b == b'/').peekable();
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        while let Some(part) = parts.next() {
            // No NUL: check_path refused them.
            let name = CString::new(part).map_err(|e| e.to_string())?;
            if parts.peek().is_none() {
                return Ok((dir, name));
            }
            let next = match rustix::fs::openat(&dir, name.as_c_str(), flags, Mode::empty()) {
                Err(Errno::NOENT) => {
                    let _ = rustix::fs::mkdirat(&dir, name.as_c_str(), Mode::from_raw_mode(0o755));
                    rustix::fs::openat(&dir, name.as_c_str(), flags, Mode::empty())
                }
                other => other,
            };
            dir = next.map_err(|e| match e {
                Errno::LOOP | Errno::NOTDIR => {
                    format!(
                        "{} is not a directory (a link is never followed)",
                        String::from_utf8_lossy(part).escape_debug()
                    )
                }
                // Escaped: a guest's name may hold a newline, and a warning is one line.
                e => format!("open {}: {e}", String::from_utf8_lossy(part).escape_debug()),
            })?;
        }
        Err("an empty path".into())
    }

    fn on_data(&mut self, payload: &[u8]) {
        let Some(cur) = self.current.as_mut() else {
            return self.warn("a data frame outside an entry".into());
        };
        let len = payload.len() as u64;
        if len > cur.left {
            let open = self.current.take().expect("checked above");
            let shown = self.shown(open.root, &open.path);
            self.drop_current(open);
            return self.warn(format!("{shown}: more bytes than its size: not kept"));
        }
        cur.left -= len;
        cur.crc = slice16::extend(cur.crc, payload);
        let failed = match &mut cur.sink {
            Sink::File { out, .. } => out.write(payload).err().map(|e| e.to_string()),
            Sink::Link { target, .. } => {
                target.extend_from_slice(payload);
                None
            }
            Sink::Skip => None,
        };
        if let Some(e) = failed {
            let open = self.current.take().expect("checked above");
            let shown = self.shown(open.root, &open.path);
            let left = open.left;
            self.drop_current(open);
            // The rest of its frames are passed over, not warned of again.
            self.current = Some(Current::skip(left));
            self.warn(format!("{shown}: write: {e}: not kept"));
        }
    }

    fn on_end(&mut self, payload: &[u8]) {
        let Some(cur) = self.current.take() else {
            return self.warn("an end frame outside an entry".into());
        };
        let shown = self.shown(cur.root, &cur.path);
        let end = match End::decode(payload) {
            Ok(end) => end,
            Err(e) => {
                self.drop_current(cur);
                return self.warn(format!("{shown}: a malformed end: {e}: not kept"));
            }
        };
        if matches!(cur.sink, Sink::Skip) {
            return;
        }
        // The guest said why already.
        if !end.complete {
            return self.drop_current(cur);
        }
        if cur.left != 0 || end.crc != cur.crc {
            self.drop_current(cur);
            return self.warn(format!(
                "{shown}: its bytes do not check (CRC-32 or size): not kept"
            ));
        }
        match self.keep(cur) {
            Ok(path) => {
                self.kept.files.push(path);
            }
            Err(why) => self.warn(format!("{shown}: {why}: not kept")),
        }
    }

    /// Moves a checked entry into place, with its mode and mtime.
    fn keep(&mut self, cur: Current) -> Result<(usize, PathBuf), Why> {
        let name = cur.path.rsplit(|&b| b == b'/').next().unwrap_or_default();
        let name = CString::new(name).map_err(|e| e.to_string())?;
        let times = Timestamps {
            last_access: cur.mtime,
            last_modification: cur.mtime,
        };
        match cur.sink {
            Sink::File { dir, tmp, out } => {
                let file = out.finish().map_err(|e| format!("write: {e}"))?;
                let set = rustix::fs::fchmod(&file, Mode::from_raw_mode(cur.mode))
                    .and_then(|()| rustix::fs::futimens(&file, &times))
                    .and_then(|()| {
                        rustix::fs::renameat(&dir, tmp.as_c_str(), &dir, name.as_c_str())
                    });
                if let Err(e) = set {
                    let _ = rustix::fs::unlinkat(&dir, tmp.as_c_str(), AtFlags::empty());
                    return Err(format!("put in place: {e}"));
                }
            }
            Sink::Link { dir, target } => {
                let target =
                    CString::new(target).map_err(|_| "a link's target with a NUL".to_string())?;
                let made = match rustix::fs::symlinkat(target.as_c_str(), &dir, name.as_c_str()) {
                    Err(Errno::EXIST) => {
                        rustix::fs::unlinkat(&dir, name.as_c_str(), AtFlags::empty()).and_then(
                            |()| rustix::fs::symlinkat(target.as_c_str(), &dir, name.as_c_str()),
                        )
                    }
                    other => other,
                };
                made.map_err(|e| format!("symlink: {e}"))?;
                let _ =
                    rustix::fs::utimensat(&dir, name.as_c_str(), &times, AtFlags::SYMLINK_NOFOLLOW);
            }
            Sink::Skip => return Err("passed over".into()),
        }
        let root = &self.roots[cur.root];
        Ok((
            cur.root,
            root.host.join(std::ffi::OsStr::from_bytes(&cur.path)),
        ))
    }

    /// Removes what an entry that is not kept left.
    fn drop_current(&mut self, cur: Current) {
        if let Sink::File { dir, tmp, out } = cur.sink {
            drop(out);
            let _ = rustix::fs::unlinkat(&dir, tmp.as_c_str(), AtFlags::empty());
        }
    }

    /// The end of the stream: an entry still open is removed and warned
    /// of; directories get their modes and mtimes, deepest first.
    pub fn finish(&mut self) -> Kept {
        if let Some(open) = self.current.take() {
            let shown = self.shown(open.root, &open.path);
            let skipped = matches!(open.sink, Sink::Skip);
            self.drop_current(open);
            if !skipped {
                self.warn(format!("{shown}: the stream ended inside it: not kept"));
            }
        }
        for attrs in std::mem::take(&mut self.dirs).into_iter().rev() {
            let Ok((parent, name)) = self.parent(attrs.root, &attrs.path) else {
                continue;
            };
            let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            if let Ok(dir) = rustix::fs::openat(&parent, name.as_c_str(), flags, Mode::empty()) {
                let times = Timestamps {
                    last_access: attrs.mtime,
                    last_modification: attrs.mtime,
                };
                let _ = rustix::fs::fchmod(&dir, Mode::from_raw_mode(attrs.mode));
                let _ = rustix::fs::futimens(&dir, &times);
            }
        }
        std::mem::take(&mut self.kept)
    }
}

impl Current {
    /// An entry whose `left` bytes are passed over.
    fn skip(left: u64) -> Current {
        Current {
            root: 0,
            path: Vec::new(),
            mtime: Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            mode: 0,
            left,
            crc: 0,
            sink: Sink::Skip,
        }
    }
}

/// A file's writes through a buffer of [`WRITE_BUF`] bytes: the host's
/// memory for a file, whatever its size.
struct Buffered {
    fd: OwnedFd,
    buf: Vec<u8>,
}

impl Buffered {
    fn new(fd: OwnedFd) -> Buffered {
        Buffered {
            fd,
            buf: Vec::with_capacity(WRITE_BUF),
        }
    }

    fn write(&mut self, mut bytes: &[u8]) -> Result<(), Errno> {
        while !bytes.is_empty() {
            if self.buf.len() == WRITE_BUF {
                self.flush()?;
            }
            let n = bytes.len().min(WRITE_BUF - self.buf.len());
            self.buf.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), Errno> {
        let mut rest = &self.buf[..];
        while !rest.is_empty() {
            match rustix::io::write(&self.fd, rest) {
                Ok(n) => rest = &rest[n..],
                Err(Errno::INTR) => {}
                Err(e) => return Err(e),
            }
        }
        self.buf.clear();
        Ok(())
    }

    /// Everything written: the file's descriptor.
    fn finish(mut self) -> Result<OwnedFd, Errno> {
        self.flush()?;
        Ok(self.fd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn entry(kind: Kind, path: &[u8], size: u64) -> Vec<u8> {
        let mut buf = vec![0u8; 64 + path.len()];
        let n = Entry {
            root: 0,
            kind,
            mode: 0o640,
            mtime_s: 1_600_000_000,
            mtime_ns: 5,
            size,
            path,
        }
        .encode(&mut buf)
        .unwrap();
        buf.truncate(n);
        buf
    }

    /// Sends one entry whole: its CENT, its bytes, its CEND with `crc`.
    fn send(rx: &mut Receiver, kind: Kind, path: &[u8], data: &[u8], crc: u32) {
        rx.on_frame(Tag::CENT, &entry(kind, path, data.len() as u64));
        if kind != Kind::Dir {
            rx.on_frame(Tag::CDAT, data);
            rx.on_frame(
                Tag::CEND,
                &End {
                    complete: true,
                    crc,
                }
                .encode(),
            );
        }
    }

    fn good(rx: &mut Receiver, kind: Kind, path: &[u8], data: &[u8]) {
        send(rx, kind, path, data, slice16::hash(data));
    }

    fn setup(name: &str) -> (PathBuf, PathBuf, Receiver) {
        let base =
            std::env::temp_dir().join(format!("guestinit-collect-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let out = base.join("out");
        let outside = base.join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("victim"), b"host's own").unwrap();
        let rx = Receiver::new(vec![Root::new("/g".into(), out)], 1 << 20);
        (base, outside, rx)
    }

    /// Every file under `dir`, relative.
    fn tree(dir: &Path) -> Vec<String> {
        let mut found = Vec::new();
        let mut todo = vec![dir.to_owned()];
        while let Some(d) = todo.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                found.push(p.strip_prefix(dir).unwrap().display().to_string());
                if p.is_dir() && !p.is_symlink() {
                    todo.push(p);
                }
            }
        }
        found.sort();
        found
    }

    #[test]
    fn files_links_and_dirs_come_back_with_modes_and_mtimes() {
        let (base, _, mut rx) = setup("ok");
        good(&mut rx, Kind::Dir, b"d", b"");
        good(&mut rx, Kind::File, b"d/a b\nc", b"hello");
        good(&mut rx, Kind::Symlink, b"d/l", b"a b\nc");
        let kept = rx.finish();
        assert!(rx.take_warnings().is_empty());
        assert_eq!(kept.files.len(), 2);
        let out = base.join("out/d");
        assert_eq!(std::fs::read(out.join("a b\nc")).unwrap(), b"hello");
        assert_eq!(
            std::fs::read_link(out.join("l")).unwrap(),
            Path::new("a b\nc")
        );
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(out.join("a b\nc")).unwrap();
        assert_eq!(
            (meta.mode() & 0o7777, meta.mtime(), meta.mtime_nsec()),
            (0o640, 1_600_000_000, 5)
        );
        assert_eq!(std::fs::metadata(&out).unwrap().mode() & 0o7777, 0o640);
        std::fs::set_permissions(&out, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        std::fs::remove_dir_all(base).unwrap();
    }

    #[test]
    fn a_guest_cannot_write_outside_host_dir() {
        let (base, outside, mut rx) = setup("escape");
        let target = outside.to_str().unwrap().as_bytes().to_vec();
        for path in [
            &b"../outside/victim"[..],
            b"/tmp/abs",
            b"a/../../outside/victim",
            b"./x",
            b"a//b",
        ] {
            good(&mut rx, Kind::File, path, b"evil");
        }
        // A link out of HOST_DIR is made, as a link, but never followed.
        good(&mut rx, Kind::Symlink, b"esc", &target);
        good(&mut rx, Kind::File, b"esc/victim", b"evil");
        good(&mut rx, Kind::Dir, b"esc/sub", b"");
        good(
            &mut rx,
            Kind::Symlink,
            b"v",
            &outside.join("victim").into_os_string().into_encoded_bytes(),
        );
        good(&mut rx, Kind::File, b"v", b"evil");
        good(&mut rx, Kind::Symlink, b"up", b"..");
        good(&mut rx, Kind::File, b"up/outside/victim", b"evil");
        // Another root's number, and frames out of any entry.
        let mut other = entry(Kind::File, b"x", 4);
        other[0] = 7;
        rx.on_frame(Tag::CENT, &other);
        rx.on_frame(Tag::CDAT, b"evil");
        rx.on_frame(
            Tag::CEND,
            &End {
                complete: true,
                crc: 0,
            }
            .encode(),
        );
        rx.on_frame(Tag::CDAT, b"evil");
        rx.finish();
        let warnings = rx.take_warnings();
        assert!(warnings.len() >= 9, "{warnings:#?}");
        assert!(warnings.iter().all(|w| !w.contains('\n')), "{warnings:#?}");
        assert_eq!(
            std::fs::read(outside.join("victim")).unwrap(),
            b"host's own"
        );
        assert_eq!(tree(&outside), ["victim"]);
        // What is in HOST_DIR: the links, and `v` now a file in the link's place.
        assert_eq!(tree(&base.join("out")), ["esc", "up", "v"]);
        assert_eq!(std::fs::read(base.join("out/v")).unwrap(), b"evil");
        assert_eq!(
            tree(&base),
            [
                "out",
                "out/esc",
                "out/up",
                "out/v",
                "outside",
                "outside/victim"
            ]
        );
        std::fs::remove_dir_all(base).unwrap();
    }

    #[test]
    fn a_file_that_does_not_check_is_removed_and_said() {
        let (base, _, mut rx) = setup("crc");
        send(&mut rx, Kind::File, b"bad crc", b"data", 1);
        rx.on_frame(Tag::CENT, &entry(Kind::File, b"short", 10));
        rx.on_frame(Tag::CDAT, b"12345");
        rx.on_frame(
            Tag::CEND,
            &End {
                complete: true,
                crc: slice16::hash(b"12345"),
            }
            .encode(),
        );
        rx.on_frame(Tag::CENT, &entry(Kind::File, b"long", 2));
        rx.on_frame(Tag::CDAT, b"123");
        rx.on_frame(Tag::CENT, &entry(Kind::File, b"incomplete", 2));
        rx.on_frame(
            Tag::CEND,
            &End {
                complete: false,
                crc: 0,
            }
            .encode(),
        );
        good(&mut rx, Kind::File, b"big", &[0u8; 2 << 20]);
        rx.on_frame(Tag::CENT, &entry(Kind::File, b"cut", 2));
        rx.on_frame(Tag::CDAT, b"1");
        rx.finish();
        let warnings = rx.take_warnings().join("\n");
        for name in ["bad crc", "short", "long", "big", "cut"] {
            assert!(
                warnings.contains(&format!("/g/{name}: ")),
                "{name}: {warnings}"
            );
        }
        assert!(warnings.contains("--collect-max"), "{warnings}");
        assert!(
            !warnings.contains("incomplete"),
            "the guest said it: {warnings}"
        );
        assert!(
            tree(&base.join("out")).is_empty(),
            "{:?}",
            tree(&base.join("out"))
        );
        std::fs::remove_dir_all(base).unwrap();
    }
}
