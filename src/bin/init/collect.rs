//! `run --collect`: once the payload is done and before the scheduler's
//! cleanup, the trees under the directories /.guestinit/collect names go
//! to the host as CENT, CDAT and CEND frames (`proto::collect`). A reactor
//! source of its own rank: it reads a file only while its quota has room,
//! so a slow host slows it and nothing is lost. The walk is getdents64 on
//! one descriptor per level, at most `MAX_DEPTH` deep, with no allocation;
//! whatever it cannot or may not send is one warning naming it.

use crate::link::{self, Link};
use crate::reactor::{Ctx, Interests, Rank, Source};
use core::ffi::CStr;
use core::fmt;
use core::mem::MaybeUninit;
use guestinit::cell::TakeOnce;
use guestinit::fmt::ErrnoText;
use guestinit::outbox::Quota;
use guestinit::parse::collect::{self as request, Record};
use guestinit::proto::collect::{
    End, Entry, Kind, DEFAULT_MAX_BYTES, MAX_DEPTH, MAX_ENTRIES, MAX_PATH, MAX_ROOTS,
};
use guestinit::proto::{limit, path};
use guestinit::wire::{slice16, Tag};
use heapless::Vec;
use rustix::event::PollFlags;
use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, RawDir, SeekFrom, Stat, CWD};
use rustix::io::Errno;

/// The payload's lane: it is done by the time the collection starts.
const QUOTA: Quota = crate::payload::QUOTA;
/// Frames one turn fills at most, so the port's writes interleave.
const TURN_FRAMES: usize = 4;

static FILE: TakeOnce<[u8; limit::COLLECT_BYTES]> = TakeOnce::new([0; limit::COLLECT_BYTES]);

/// One open directory of the walk: where its listing resumes, and the
/// length of the relative path up to its entries' names.
struct Level {
    fd: OwnedFd,
    cookie: u64,
    prefix: usize,
}

/// The regular file whose bytes are going out.
struct Sending {
    fd: OwnedFd,
    left: u64,
    crc: u32,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    /// The payload is not done yet.
    Waiting,
    Walking,
    Done,
}

pub struct Collect {
    roots: Vec<&'static CStr, MAX_ROOTS>,
    /// The next root to open once the stack is empty.
    next_root: usize,
    stack: Vec<Level, MAX_DEPTH>,
    /// The current entry's path, relative to its root.
    path: [u8; MAX_PATH],
    path_len: usize,
    file: Option<Sending>,
    state: State,
    entries: u32,
    bytes: u64,
    max_bytes: u64,
    /// The `cores` root, which `core_pattern` names.
    cores: Option<&'static CStr>,
}

impl Collect {
    /// The collection /.guestinit/collect asks for; None without the file.
    pub fn read(link: &mut Link) -> Option<Collect> {
        let file = FILE.take()?;
        let len = match crate::small_file::read_file(path::COLLECT.as_bytes(), file) {
            Err(Errno::NOENT) => return None,
            Err(e) => {
                link.warn(format_args!("read {}: {}", path::COLLECT, ErrnoText(e)));
                return None;
            }
            Ok(None) => {
                link.warn(format_args!("{} is over {} bytes", path::COLLECT, limit::COLLECT_BYTES));
                return None;
            }
            Ok(Some(len)) => len,
        };
        let mut collect = Collect {
            roots: Vec::new(),
            next_root: 0,
            stack: Vec::new(),
            path: [0; MAX_PATH],
            path_len: 0,
            file: None,
            state: State::Waiting,
            entries: 0,
            bytes: 0,
            max_bytes: DEFAULT_MAX_BYTES,
            cores: None,
        };
        let file: &'static [u8] = &file[..len];
        for record in request::split(file) {
            let root = match record {
                Ok(Record::MaxBytes(n)) => {
                    collect.max_bytes = n;
                    continue;
                }
                Ok(Record::Dir(dir)) => dir,
                Ok(Record::Cores(dir)) => {
                    collect.cores = Some(dir);
                    allow_cores(link, dir);
                    dir
                }
                Err(e) => {
                    link.warn(format_args!("{}: {e}", path::COLLECT));
                    continue;
                }
            };
            if collect.roots.push(root).is_err() {
                link.warn(format_args!("more than {MAX_ROOTS} directories to collect: {} is not", Shown(root.to_bytes(), b"")));
            }
        }
        Some(collect)
    }

    /// One warning line: `collect ROOT/PATH: why`. Through `dyn` so that
    /// every call shares one formatting path (the init's size).
    #[inline(never)]
    fn say(&self, link: &mut Link, why: &dyn fmt::Display) {
        link.warn(format_args!("collect {}: {why}", self.shown()));
    }

    fn root(&self) -> &'static [u8] {
        self.roots[self.next_root - 1].to_bytes()
    }

    /// The current entry as the guest names it, for a warning.
    fn shown(&self) -> Shown<'_> {
        Shown(self.root(), &self.path[..self.path_len])
    }

    /// One step of the walk: a root opened, or the next entry of the
    /// directory on top started (a directory entered, a file opened, a
    /// link sent), or that directory left at its end.
    fn walk(&mut self, link: &mut Link) {
        let Some(top) = self.stack.last_mut() else {
            return self.open_root(link);
        };
        let mut buf = [MaybeUninit::<u8>::uninit(); 1024];
        let prefix = top.prefix;
        let next = rustix::fs::seek(&top.fd, SeekFrom::Start(top.cookie)).and_then(|_| {
            let mut dir = RawDir::new(&top.fd, &mut buf);
            match dir.next() {
                None => Ok(None),
                Some(Err(e)) => Err(e),
                Some(Ok(entry)) => {
                    let name = entry.file_name().to_bytes();
                    let len = name.len().min(MAX_PATH - prefix.min(MAX_PATH));
                    self.path[prefix..prefix + len].copy_from_slice(&name[..len]);
                    Ok(Some((entry.next_entry_cookie(), prefix + name.len())))
                }
            }
        });
        match next {
            Ok(Some((cookie, end))) => {
                top.cookie = cookie;
                self.path_len = end.min(MAX_PATH);
                let name = &self.path[prefix..self.path_len];
                if name == b"." || name == b".." {
                    return;
                }
                if end > MAX_PATH {
                    let shown = Shown(self.root(), &self.path[..prefix]);
                    return link.warn(format_args!("collect: a name in {shown} makes a path over {MAX_PATH} bytes: not sent"));
                }
                self.entry(link);
            }
            Ok(None) => {
                self.stack.pop();
            }
            Err(e) => {
                self.path_len = prefix.saturating_sub(1);
                self.say(link, &format_args!("list: {}", ErrnoText(e)));
                self.stack.pop();
            }
        }
    }

    fn open_root(&mut self, link: &mut Link) {
        let Some(&root) = self.roots.get(self.next_root) else {
            self.state = State::Done;
            return;
        };
        self.next_root += 1;
        self.path_len = 0;
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        match rustix::fs::openat(CWD, root, flags, Mode::empty()) {
            Ok(fd) => {
                let _ = self.stack.push(Level { fd, cookie: 0, prefix: 0 });
            }
            Err(Errno::NOENT) => self.say(link, &"no such directory"),
            Err(e) => self.say(link, &ErrnoText(e)),
        }
    }

    /// The entry at `path` in the directory on top of the stack.
    fn entry(&mut self, link: &mut Link) {
        let Some(top) = self.stack.last() else { return };
        let name = &self.path[top.prefix..self.path_len];
        if self.entries >= MAX_ENTRIES {
            link.warn(format_args!("collect: over {MAX_ENTRIES} entries: {} and the rest not sent", self.shown()));
            self.stack.clear();
            self.next_root = self.roots.len();
            return;
        }
        let stat = match rustix::fs::statat(&top.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) => stat,
            Err(e) => return self.say(link, &ErrnoText(e)),
        };
        match FileType::from_raw_mode(stat.st_mode) {
            FileType::Directory => self.enter(link, &stat),
            FileType::RegularFile => self.open_file(link, &stat),
            FileType::Symlink => self.send_link(link, &stat),
            FileType::Fifo => self.say(link, &"a FIFO: not sent"),
            FileType::Socket => self.say(link, &"a socket: not sent"),
            _ => self.say(link, &"a device: not sent"),
        }
    }

    fn header(&self, link: &mut Link, kind: Kind, stat: &Stat, size: u64) {
        let mut buf = [0u8; guestinit::proto::collect::ENTRY_FIXED + MAX_PATH];
        let entry = Entry {
            root: (self.next_root - 1) as u8,
            kind,
            mode: stat.st_mode & 0o7777,
            mtime_s: stat.st_mtime,
            mtime_ns: stat.st_mtime_nsec as u32,
            size,
            path: &self.path[..self.path_len],
        };
        if let Some(len) = entry.encode(&mut buf) {
            link.send(Tag::CENT, &buf[..len]);
        }
    }

    fn enter(&mut self, link: &mut Link, stat: &Stat) {
        let Some(top) = self.stack.last() else { return };
        if self.stack.is_full() || self.path_len + 1 >= MAX_PATH {
            return link.warn(format_args!("collect {}: deeper than {MAX_DEPTH} levels: not sent", self.shown()));
        }
        let name = &self.path[top.prefix..self.path_len];
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        match rustix::fs::openat(&top.fd, name, flags, Mode::empty()) {
            Ok(fd) => {
                self.entries += 1;
                self.header(link, Kind::Dir, stat, 0);
                self.path[self.path_len] = b'/';
                let prefix = self.path_len + 1;
                let _ = self.stack.push(Level { fd, cookie: 0, prefix });
            }
            Err(e) => self.say(link, &ErrnoText(e)),
        }
    }

    fn open_file(&mut self, link: &mut Link, stat: &Stat) {
        let Some(top) = self.stack.last() else { return };
        let size = stat.st_size as u64;
        // Fewer blocks than bytes: holes, which would come back filled.
        // A core has holes and is wanted whole: it comes back filled.
        let cores = self.cores.is_some_and(|c| c.to_bytes() == self.root());
        if !cores && (stat.st_blocks as u64).saturating_mul(512) < size {
            return self.say(link, &"a sparse file: not sent");
        }
        if self.bytes.saturating_add(size) > self.max_bytes {
            return link.warn(format_args!(
                "collect {}: {size} bytes would pass the bound of {} (--collect-max): not sent",
                self.shown(),
                self.max_bytes
            ));
        }
        let name = &self.path[top.prefix..self.path_len];
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        match rustix::fs::openat(&top.fd, name, flags, Mode::empty()) {
            Ok(fd) => {
                self.entries += 1;
                self.bytes += size;
                self.header(link, Kind::File, stat, size);
                self.file = Some(Sending { fd, left: size, crc: 0 });
                if size == 0 {
                    self.send_data(link);
                }
            }
            Err(e) => self.say(link, &ErrnoText(e)),
        }
    }

    /// A link's target as its one CDAT frame, between its CENT and its CEND.
    fn send_link(&mut self, link: &mut Link, stat: &Stat) {
        let Some(top) = self.stack.last() else { return };
        let Some(r) = link.reserve(QUOTA) else {
            return self.say(link, &"no frame for the link");
        };
        let name = &self.path[top.prefix..self.path_len];
        let area = link.payload_area(&r);
        let read = rustix::fs::readlinkat_raw(&top.fd, name, &mut area[..]);
        match read {
            Ok(len) if len < area.len() => {
                let crc = slice16::extend(0, &area[..len]);
                self.entries += 1;
                self.header(link, Kind::Symlink, stat, len as u64);
                link.commit(r, Tag::CDAT, len);
                link.send(Tag::CEND, &End { complete: true, crc }.encode());
            }
            Ok(_) => {
                link.release(r);
                self.say(link, &"a link's target over a frame: not sent");
            }
            Err(e) => {
                link.release(r);
                self.say(link, &format_args!("readlink: {}", ErrnoText(e)));
            }
        }
    }

    /// Up to [`TURN_FRAMES`] frames of the open file, then its CEND once
    /// all its bytes went; a file that ends early is warned of, and its
    /// CEND says it is incomplete.
    fn send_data(&mut self, link: &mut Link) {
        let Some(file) = self.file.as_mut() else { return };
        let mut failed = None;
        for _ in 0..TURN_FRAMES {
            if file.left == 0 {
                break;
            }
            let Some(r) = link.reserve(QUOTA) else { break };
            let area = link.payload_area(&r);
            let want = (file.left.min(link::MAX_PAYLOAD as u64)) as usize;
            match rustix::io::read(&file.fd, &mut area[..want]) {
                Ok(0) => {
                    link.release(r);
                    failed = Some(None);
                    break;
                }
                Ok(n) => {
                    file.crc = slice16::extend(file.crc, &area[..n]);
                    file.left -= n as u64;
                    link.commit(r, Tag::CDAT, n);
                }
                Err(Errno::INTR | Errno::AGAIN) => {
                    link.release(r);
                    break;
                }
                Err(e) => {
                    link.release(r);
                    failed = Some(Some(e));
                    break;
                }
            }
        }
        let crc = file.crc;
        match failed {
            None if file.left > 0 => return,
            None => link.send(Tag::CEND, &End { complete: true, crc }.encode()),
            Some(why) => {
                link.send(Tag::CEND, &End { complete: false, crc }.encode());
                match why {
                    None => self.say(link, &"the file shrank while it was read: not kept"),
                    Some(e) => self.say(link, &format_args!("read: {}", ErrnoText(e))),
                }
            }
        }
        self.file = None;
    }

    fn turn(&mut self, link: &mut Link) {
        match self.file {
            Some(_) => self.send_data(link),
            None => self.walk(link),
        }
    }
}

impl Source for Collect {
    fn rank(&self) -> Rank {
        Rank::Collect
    }

    /// The open file or directory, which polls readable at once, while the
    /// quota has room (a link's target needs a frame too).
    fn interests<'s>(&'s self, link: &Link, out: &mut Interests<'s>) {
        if self.state != State::Walking || !link.has_room(QUOTA) {
            return;
        }
        let fd = match (&self.file, self.stack.last()) {
            (Some(file), _) => file.fd.as_fd(),
            (None, Some(top)) => top.fd.as_fd(),
            (None, None) => return,
        };
        out.add(fd, PollFlags::IN, 0);
    }

    fn on_ready(&mut self, _token: u8, _events: PollFlags, ctx: &mut Ctx<'_>) {
        self.turn(ctx.link);
    }

    /// Now, when the next root is to be opened: there is no descriptor
    /// to poll for it.
    fn deadline(&self) -> Option<u64> {
        (self.state == State::Walking && self.file.is_none() && self.stack.is_empty()).then_some(0)
    }

    fn on_deadline(&mut self, ctx: &mut Ctx<'_>) {
        self.open_root(ctx.link);
    }

    fn cleanup(&mut self, _ctx: &mut Ctx<'_>) {
        self.state = State::Walking;
    }

    fn done(&self) -> bool {
        self.state == State::Done
    }
}

/// `core_pattern` names a file in `dir` (made now) and RLIMIT_CORE is
/// lifted in PID 1 before the payload's spawn, so the payload, and every
/// child started after it, dumps its core there as `core.PROGRAM.PID`.
fn allow_cores(link: &mut Link, dir: &CStr) {
    const PATTERN: &[u8] = b"/core.%e.%p\n";
    if let Err(e) = crate::small_file::make_dir(dir) {
        return link.warn(format_args!("--collect-cores: mkdir {}: {}", Shown(dir.to_bytes(), b""), ErrnoText(e)));
    }
    let dir = dir.to_bytes();
    let mut buf = [0u8; 256];
    let Some(pattern) = buf.get_mut(..dir.len() + PATTERN.len()) else {
        return link.warn(format_args!("--collect-cores: the directory's name is too long for core_pattern"));
    };
    pattern[..dir.len()].copy_from_slice(dir);
    pattern[dir.len()..].copy_from_slice(PATTERN);
    if let Err(e) = crate::small_file::write_file(b"/proc/sys/kernel/core_pattern", pattern) {
        return link.warn(format_args!("--collect-cores: core_pattern: {}", ErrnoText(e)));
    }
    let unlimited = rustix::process::Rlimit {
        current: None,
        maximum: None,
    };
    if let Err(e) = rustix::process::setrlimit(rustix::process::Resource::Core, unlimited) {
        link.warn(format_args!("--collect-cores: RLIMIT_CORE: {}", ErrnoText(e)));
    }
}

/// A root and a path under it, for one warning line: control bytes (a
/// newline in a name) escaped as `\xNN`.
struct Shown<'a>(&'a [u8], &'a [u8]);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sep: &[u8] = match self.1.is_empty() {
            true => b"",
            false => b"/",
        };
        for part in [self.0, sep, self.1] {
            for chunk in part.utf8_chunks() {
                for c in chunk.valid().chars() {
                    match c.is_control() {
                        true => write!(f, "\\x{:02x}", c as u32)?,
                        false => fmt::Write::write_char(f, c)?,
                    }
                }
                for b in chunk.invalid() {
                    write!(f, "\\x{b:02x}")?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_with_a_newline_shows_on_one_line() {
        let shown = std::format!("{}", Shown(b"/tmp/out", b"a b\nc\xff"));
        assert_eq!(shown, "/tmp/out/a b\\x0ac\\xff");
        assert_eq!(std::format!("{}", Shown(b"/x", b"")), "/x");
    }
}
