//! The snapshots on disk: one file per machine under
//! `$XDG_CACHE_HOME/guestinit/snapshots`, named by the machine's slot
//! (`key`). A file is a fixed header, then QEMU's migration stream as QEMU
//! wrote it. The header says what the state was made of and how long and
//! what checksum (XXH3-64) the stream has, so a stale, cut-short or corrupt file is found
//! before QEMU reads a byte of it; a file whose identity is the one its
//! last full check recorded (`SLOT.used`) is not read whole again. Files
//! are written aside and renamed, so a reader sees a whole file or none;
//! LRU by the last use (the `.used` file's time) bounds the directory.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::key::{Key, Parts};
use crate::cache::identity;

const MAGIC: &[u8; 8] = b"GISNAP\x00\x02";
/// Where QEMU's stream starts: room for the header and the frames to replay.
pub const HEADER_LEN: u64 = 4096;
/// The header's fixed part: magic, three digests, length, hash, replay length.
const FIXED_LEN: usize = 8 + 3 * 32 + 8 + 8 + 4;
/// The most bytes of frames a snapshot replays (KADR, SRDY, LIFE, HRDY and
/// any warning the init sent before them).
pub const REPLAY_MAX: usize = HEADER_LEN as usize - FIXED_LEN;
/// The cache's bound without `GUESTINIT_SNAPSHOT_CACHE_MIB`.
const DEFAULT_MAX_MIB: u64 = 4096;
/// A partial file older than this was left by a host that died.
const STALE_PARTIAL: Duration = Duration::from_secs(3600);
/// How old a snapshot's change time must be for its identity to be
/// recorded as checked: a write in the same clock tick as the check would
/// keep the time, one after this cannot.
const SETTLED: Duration = Duration::from_secs(2);

/// The directory of snapshots, if the user has a cache directory.
pub fn dir() -> Option<PathBuf> {
    Some(crate::cache::cache_dir()?.join("snapshots"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The file of `key`'s slot.
pub fn path(dir: &Path, key: &Key) -> PathBuf {
    dir.join(format!("{}.snap", hex(&key.slot)))
}

/// A snapshot that passed every check, its file at QEMU's stream.
pub struct Snapshot {
    pub file: File,
    /// The bulk port's bytes up to HRDY, as the machine sent them.
    pub replay: Vec<u8>,
}

/// What a slot's file holds for this run.
pub enum Found {
    Usable(Snapshot),
    Missing,
    /// It exists but cannot serve: why, in a few words.
    Unusable(String),
}

/// Opens and checks the snapshot at `path` for a machine of `parts`.
pub fn open(path: &Path, parts: &Parts) -> Found {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Found::Missing,
        Err(e) => return Found::Unusable(format!("unreadable ({e})")),
    };
    let meta = match file.metadata() {
        Ok(meta) => meta,
        Err(e) => return Found::Unusable(format!("unreadable ({e})")),
    };
    let checked = fs::read(used_path(path)).is_ok_and(|used| used == identity(&meta));
    match check(&mut file, &meta, parts, checked) {
        Ok(replay) => {
            record_use(path, &meta, SystemTime::now());
            Found::Usable(Snapshot { file, replay })
        }
        Err(why) => Found::Unusable(why),
    }
}

/// The file that records a snapshot's last use (its time) and, once the
/// snapshot's change time has settled, the identity its checks passed at.
fn used_path(snapshot: &Path) -> PathBuf {
    snapshot.with_extension("used")
}

/// Writes `snapshot`'s `.used` file at `now`, aside and renamed (runs at
/// once each write a whole one); a failure costs the next run a full check.
fn record_use(snapshot: &Path, meta: &fs::Metadata, now: SystemTime) {
    let settled = now
        .duration_since(ctime(meta))
        .is_ok_and(|age| age >= SETTLED);
    let content = match settled {
        true => identity(meta),
        false => Vec::new(),
    };
    let used = used_path(snapshot);
    let aside = used.with_extension(format!("used.{}.partial", std::process::id()));
    if fs::write(&aside, content).is_err() || fs::rename(&aside, &used).is_err() {
        let _ = fs::remove_file(&aside);
    }
}

/// The inode's change time, which no user can set back.
fn ctime(meta: &fs::Metadata) -> SystemTime {
    use std::os::unix::fs::MetadataExt;
    let at = Duration::new(meta.ctime().max(0) as u64, meta.ctime_nsec() as u32);
    SystemTime::UNIX_EPOCH + at
}

/// The checks, in the order that costs least: the header, the parts, the
/// length, then (unless the file was `checked` as it is) the stream's
/// XXH3, a read of the file; the file is left at the stream's start.
fn check(
    file: &mut File,
    meta: &fs::Metadata,
    parts: &Parts,
    checked: bool,
) -> Result<Vec<u8>, String> {
    let mut header = [0u8; HEADER_LEN as usize];
    let io = |e: io::Error| format!("unreadable ({e})");
    let len = meta.len();
    if len < HEADER_LEN {
        return Err(format!("cut short ({len} bytes)"));
    }
    file.read_exact(&mut header).map_err(io)?;
    let fixed = Header::parse(&header).ok_or("not a guestinit snapshot of this version")?;
    if let Some(part) = fixed.parts.changed(parts) {
        return Err(format!("stale (the {part} changed since it was taken)"));
    }
    let want = HEADER_LEN + fixed.state_len;
    if len != want {
        return Err(format!("cut short ({len} of {want} bytes)"));
    }
    if !checked && hash_from(file, HEADER_LEN).map_err(io)? != fixed.state_hash {
        return Err("corrupt (its checksum does not match)".into());
    }
    file.seek(SeekFrom::Start(HEADER_LEN)).map_err(io)?;
    Ok(header[FIXED_LEN..FIXED_LEN + fixed.replay_len].to_vec())
}

/// The XXH3-64 of `file` from `offset` to its end.
fn hash_from(file: &File, mut offset: u64) -> io::Result<u64> {
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read_at(&mut buf, offset)?;
        if n == 0 {
            return Ok(hasher.digest());
        }
        hasher.update(&buf[..n]);
        offset += n as u64;
    }
}

/// The header's fields.
struct Header {
    parts: Parts,
    state_len: u64,
    state_hash: u64,
    replay_len: usize,
}

impl Header {
    fn parse(bytes: &[u8; HEADER_LEN as usize]) -> Option<Header> {
        if &bytes[..8] != MAGIC {
            return None;
        }
        let digest = |at: usize| -> [u8; 32] { bytes[at..at + 32].try_into().unwrap_or_default() };
        let u64_at =
            |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap_or_default());
        let u32_at =
            |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap_or_default());
        let replay_len = u32_at(8 + 96 + 16) as usize;
        (replay_len <= REPLAY_MAX).then_some(Header {
            parts: Parts {
                kernel: digest(8),
                base: digest(40),
                qemu: digest(72),
            },
            state_len: u64_at(104),
            state_hash: u64_at(112),
            replay_len,
        })
    }

    fn write(&self, replay: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN as usize);
        out.extend_from_slice(MAGIC);
        for digest in [&self.parts.kernel, &self.parts.base, &self.parts.qemu] {
            out.extend_from_slice(digest);
        }
        out.extend_from_slice(&self.state_len.to_le_bytes());
        out.extend_from_slice(&self.state_hash.to_le_bytes());
        out.extend_from_slice(&(replay.len() as u32).to_le_bytes());
        out.extend_from_slice(replay);
        out.resize(HEADER_LEN as usize, 0);
        out
    }
}

/// A snapshot being written: QEMU writes its stream at [`HEADER_LEN`].
pub struct Pending {
    pub file: File,
    partial: PathBuf,
    path: PathBuf,
    parts: Parts,
}

impl Pending {
    /// A partial file beside the slot's, positioned for QEMU.
    pub fn create(dir: &Path, key: &Key) -> io::Result<Pending> {
        fs::create_dir_all(dir)?;
        let path = path(dir, key);
        let partial = path.with_extension(format!("{}.partial", std::process::id()));
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&partial)?;
        file.seek(SeekFrom::Start(HEADER_LEN))?;
        Ok(Pending {
            file,
            partial,
            path,
            parts: key.parts.clone(),
        })
    }

    /// Once QEMU wrote the whole stream: the header, then the rename that
    /// makes it the slot's snapshot. The partial file is removed on error.
    pub fn finish(self, replay: &[u8]) -> io::Result<PathBuf> {
        self.write_header(replay)?;
        fs::rename(&self.partial, &self.path)?;
        Ok(self.path.clone())
    }

    fn write_header(&self, replay: &[u8]) -> io::Result<()> {
        if replay.len() > REPLAY_MAX {
            return Err(io::Error::other(format!(
                "the machine sent {} bytes before HRDY, more than the {REPLAY_MAX} a snapshot keeps",
                replay.len()
            )));
        }
        let state_len = self.file.metadata()?.len().saturating_sub(HEADER_LEN);
        let header = Header {
            parts: self.parts.clone(),
            state_len,
            state_hash: hash_from(&self.file, HEADER_LEN)?,
            replay_len: replay.len(),
        };
        self.file.write_all_at(&header.write(replay), 0)
    }

    /// A snapshot that was not taken after all (as dropping it).
    pub fn abandon(self) {}
}

/// However the run ends, no partial file stays (once renamed there is
/// none to remove).
impl Drop for Pending {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.partial);
    }
}

/// The cache's bound in bytes.
pub fn max_bytes() -> u64 {
    std::env::var("GUESTINIT_SNAPSHOT_CACHE_MIB")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(DEFAULT_MAX_MIB)
        .saturating_mul(1 << 20)
}

/// Removes the least recently used snapshots (the later of a file's own
/// time and its `.used` file's) until the rest fit in `max` bytes (`keep`
/// is never removed), a `.used` file whose snapshot is gone, and partial
/// files a dead host left.
pub fn evict(dir: &Path, max: u64, keep: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let now = SystemTime::now();
    let mut snaps = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = entry.metadata() else { continue };
        let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        let name = path.to_string_lossy();
        if name.ends_with(".partial") {
            if now.duration_since(modified).unwrap_or_default() > STALE_PARTIAL {
                let _ = fs::remove_file(&path);
            }
        } else if name.ends_with(".used") {
            if !path.with_extension("snap").exists() {
                let _ = fs::remove_file(&path);
            }
        } else if name.ends_with(".snap") {
            let used = fs::metadata(used_path(&path)).and_then(|m| m.modified());
            let last = used.map_or(modified, |used| used.max(modified));
            snaps.push((last, meta.len(), path));
        }
    }
    snaps.sort();
    let mut total: u64 = snaps.iter().map(|s| s.1).sum();
    for (_, len, path) in snaps {
        if total <= max {
            break;
        }
        if path != keep && fs::remove_file(&path).is_ok() {
            let _ = fs::remove_file(used_path(&path));
            total -= len;
        }
    }
}

/// `guestinit cache clean`: every snapshot, and what else the cache
/// holds but the fetched kernels (`guestinit kernel`: downloads, not
/// learned state); the bytes freed.
pub fn clean_all(cache: &Path) -> io::Result<u64> {
    fn size(path: &Path) -> u64 {
        match fs::symlink_metadata(path) {
            Ok(m) if m.is_dir() => fs::read_dir(path)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| size(&e.path()))
                .sum(),
            Ok(m) => m.len(),
            Err(_) => 0,
        }
    }
    let entries = match fs::read_dir(cache) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        other => other?,
    };
    let mut freed = 0;
    for entry in entries {
        let path = entry?.path();
        if path.file_name().is_some_and(|n| n == "kernels") {
            continue;
        }
        freed += size(&path);
        match fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => fs::remove_dir_all(&path)?,
            _ => fs::remove_file(&path)?,
        }
    }
    Ok(freed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn key(n: u8) -> Key {
        Key {
            slot: [n; 32],
            parts: Parts {
                kernel: [1; 32],
                base: [2; 32],
                qemu: [3; 32],
            },
        }
    }

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("guestinit-snap-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn clean_removes_all_but_the_fetched_kernels() {
        let cache = scratch("clean");
        for dir in ["snapshots", "pob", "kernels/debian-sid-x/boot"] {
            fs::create_dir_all(cache.join(dir)).unwrap();
        }
        fs::write(cache.join("snapshots/a"), [0; 1000]).unwrap();
        fs::write(cache.join("pob/b"), [0; 24]).unwrap();
        fs::write(cache.join("kernels/debian-sid-x/boot/vmlinuz-7"), [0; 5000]).unwrap();
        assert_eq!(clean_all(&cache).unwrap(), 1024);
        let left: Vec<_> = fs::read_dir(&cache)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["kernels"]);
        assert!(cache.join("kernels/debian-sid-x/boot/vmlinuz-7").is_file());
        assert_eq!(clean_all(&cache.join("none")).unwrap(), 0);
        fs::remove_dir_all(&cache).unwrap();
    }

    /// A snapshot of `state` written as the host writes one.
    fn take(dir: &Path, key: &Key, state: &[u8], replay: &[u8]) -> PathBuf {
        let mut pending = Pending::create(dir, key).unwrap();
        pending.file.write_all(state).unwrap();
        pending.finish(replay).unwrap()
    }

    #[test]
    fn a_snapshot_reads_back_with_its_replay_and_the_file_at_the_stream() {
        let dir = scratch("ok");
        let key = key(7);
        let path = take(&dir, &key, b"QEVM stream", b"frames");
        let Found::Usable(mut snap) = open(&path, &key.parts) else {
            panic!("not usable")
        };
        assert_eq!(snap.replay, b"frames");
        let mut rest = Vec::new();
        snap.file.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, b"QEVM stream");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn stale_cut_short_and_corrupt_snapshots_say_which() {
        let dir = scratch("bad");
        let key = key(8);
        let path = take(&dir, &key, &[0x55; 10_000], b"");
        let unusable = |parts: &Parts| match open(&path, parts) {
            Found::Unusable(why) => why,
            _ => panic!("usable"),
        };
        for (part, name) in [(0, "kernel"), (1, "base archive"), (2, "QEMU")] {
            let mut parts = key.parts.clone();
            match part {
                0 => parts.kernel[0] ^= 1,
                1 => parts.base[0] ^= 1,
                _ => parts.qemu[0] ^= 1,
            }
            assert!(
                unusable(&parts).contains(&format!("the {name} changed")),
                "{name}"
            );
        }
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        file.write_all_at(&[0x54], HEADER_LEN + 5000).unwrap();
        assert!(unusable(&key.parts).starts_with("corrupt"));
        file.set_len(HEADER_LEN + 9_000).unwrap();
        assert!(unusable(&key.parts).starts_with("cut short"));
        file.set_len(100).unwrap();
        assert!(unusable(&key.parts).starts_with("cut short"));
        fs::write(&path, vec![0u8; 8192]).unwrap();
        assert!(unusable(&key.parts).starts_with("not a guestinit snapshot"));
        assert!(matches!(
            open(&dir.join("none.snap"), &key.parts),
            Found::Missing
        ));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_settled_snapshot_is_checked_whole_once_and_again_after_any_write() {
        let dir = scratch("used");
        let key = key(6);
        let path = take(&dir, &key, &[0x33; 10_000], b"");
        let meta = || fs::metadata(&path).unwrap();
        let used = || fs::read(used_path(&path)).unwrap();
        // Just written: its use is recorded, its identity not yet.
        assert!(matches!(open(&path, &key.parts), Found::Usable(_)));
        assert_eq!(used(), b"");
        let later = ctime(&meta()) + SETTLED;
        record_use(&path, &meta(), later);
        assert_eq!(used(), identity(&meta()));
        // A write in place gives a later change time: the record no longer
        // matches, so the next open reads the file whole and finds it.
        std::thread::sleep(Duration::from_millis(20));
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        file.write_all_at(&[0x32], HEADER_LEN + 5000).unwrap();
        assert_ne!(used(), identity(&meta()));
        assert!(
            matches!(open(&path, &key.parts), Found::Unusable(why) if why.starts_with("corrupt"))
        );
        // What the record covers is the hash alone: a cut is always seen.
        file.write_all_at(&[0x33], HEADER_LEN + 5000).unwrap();
        record_use(&path, &meta(), ctime(&meta()) + SETTLED);
        assert!(matches!(open(&path, &key.parts), Found::Usable(_)));
        file.set_len(HEADER_LEN + 9_000).unwrap();
        assert!(
            matches!(open(&path, &key.parts), Found::Unusable(why) if why.starts_with("cut short"))
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn eviction_removes_the_least_recently_used_but_never_the_kept_one() {
        let dir = scratch("lru");
        let paths: Vec<PathBuf> = (0..4)
            .map(|n| take(&dir, &key(n), &[n; 1000], b""))
            .collect();
        let old = SystemTime::now() - Duration::from_secs(100);
        for (n, path) in paths.iter().enumerate() {
            let file = File::options().write(true).open(path).unwrap();
            file.set_modified(old + Duration::from_secs(n as u64))
                .unwrap();
        }
        // The second was used last: its `.used` file is the newest time.
        record_use(
            &paths[1],
            &fs::metadata(&paths[1]).unwrap(),
            SystemTime::now(),
        );
        fs::write(dir.join("gone.used"), b"").unwrap();
        let each = HEADER_LEN + 1000;
        // Room for two: the oldest two go, though the oldest is kept.
        evict(&dir, 2 * each, &paths[0]);
        let left: Vec<bool> = paths.iter().map(|p| p.exists()).collect();
        assert_eq!(left, [true, true, false, false]);
        assert!(used_path(&paths[1]).exists());
        assert!(!dir.join("gone.used").exists());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_failed_finish_leaves_no_partial_file() {
        let dir = scratch("fail");
        let pending = Pending::create(&dir, &key(9)).unwrap();
        let partial = pending.partial.clone();
        assert!(pending.finish(&vec![0u8; REPLAY_MAX + 1]).is_err());
        assert!(!partial.exists());
        fs::remove_dir_all(&dir).unwrap();
    }
}
