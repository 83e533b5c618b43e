//! Properties of `--collect`'s contracts: the request file
//! (`parse::collect`), the frames' records (`proto::collect`) and the
//! host's receiver (`run::collect`), which takes frames from an untrusted
//! guest. Shared by the property tests and the fuzz targets
//! `collect_request` and `collect`. Each panics when its property fails.

use std::ffi::CString;
use std::path::{Path, PathBuf};

use guestinit::parse::collect::{self as request, Bad, Record};
use guestinit::proto::collect::{check_path, BadPath, End, Entry, Kind, MAX_PATH};
use guestinit::wire::Tag;

#[allow(dead_code, clippy::all)]
#[path = "../../src/bin/guestinit/run/collect.rs"]
mod receiver;

/// One record as the property tests build it.
#[derive(Clone, Debug)]
pub enum Req {
    Max(u64),
    Dir(Vec<u8>),
    Cores(Vec<u8>),
}

/// What the file of `records` reads back as: the same records.
pub fn request_round_trip(records: &[Req]) {
    let owned: Vec<(u8, CString, u64)> = records
        .iter()
        .map(|r| match r {
            Req::Max(n) => (0, CString::default(), *n),
            Req::Dir(d) => (1, CString::new(d.clone()).expect("no NUL"), 0),
            Req::Cores(d) => (2, CString::new(d.clone()).expect("no NUL"), 0),
        })
        .collect();
    let want: Vec<Record<'_>> = owned
        .iter()
        .map(|(kind, dir, n)| match kind {
            0 => Record::MaxBytes(*n),
            1 => Record::Dir(dir),
            _ => Record::Cores(dir),
        })
        .collect();
    let mut file = Vec::new();
    for r in &want {
        r.write_to(&mut file);
    }
    let got: Vec<_> = request::split(&file).collect();
    assert_eq!(got, want.into_iter().map(Ok).collect::<Vec<_>>());
}

/// The request parser on any bytes, against a model of NUL-ended pairs.
pub fn request_bytes(file: &[u8]) {
    let mut pieces: Vec<&[u8]> = file.split(|&b| b == 0).collect();
    let remainder = pieces.pop().unwrap_or_default();
    let pairs = pieces.chunks_exact(2);
    let cut = !pairs.remainder().is_empty() || !remainder.is_empty();
    let mut want: Vec<Result<(u8, Vec<u8>), Bad>> = pairs
        .map(|pair| match pair[0] {
            b"max" => {
                let text = std::str::from_utf8(pair[1]).ok();
                let digits =
                    text.filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()));
                digits
                    .and_then(|t| t.parse::<u64>().ok())
                    .map(|n| (0, n.to_string().into_bytes()))
                    .ok_or(Bad::Number)
            }
            b"dir" | b"cores" if pair[1].first() != Some(&b'/') => Err(Bad::Dir),
            b"dir" => Ok((1, pair[1].to_vec())),
            b"cores" => Ok((2, pair[1].to_vec())),
            _ => Err(Bad::Key),
        })
        .collect();
    if cut {
        want.push(Err(Bad::Truncated));
    }
    let got: Vec<_> = request::split(file)
        .map(|r| {
            r.map(|r| match r {
                Record::MaxBytes(n) => (0, n.to_string().into_bytes()),
                Record::Dir(d) => (1, d.to_bytes().to_vec()),
                Record::Cores(d) => (2, d.to_bytes().to_vec()),
            })
        })
        .collect();
    assert_eq!(got, want);
}

/// An entry and an end read back as written; any bytes decode without a
/// panic, and what decodes encodes back to the same bytes.
pub fn records(data: &[u8]) {
    if let Ok(entry) = Entry::decode(data) {
        let mut out = vec![0u8; data.len()];
        assert_eq!(entry.encode(&mut out), Some(data.len()));
        assert_eq!(out, data);
    }
    if let Ok(end) = End::decode(data) {
        assert_eq!(&end.encode()[..], data);
    }
    check_path_model(data);
}

/// `check_path` against its rules, stated apart.
fn check_path_model(path: &[u8]) {
    let want = if path.is_empty() {
        Err(BadPath::Empty)
    } else if path.len() > MAX_PATH {
        Err(BadPath::TooLong)
    } else if path[0] == b'/' {
        Err(BadPath::Absolute)
    } else if path.contains(&0) {
        Err(BadPath::Nul)
    } else if path
        .split(|&b| b == b'/')
        .any(|c| matches!(c, b"" | b"." | b".."))
    {
        Err(BadPath::Component)
    } else {
        Ok(())
    };
    assert_eq!(check_path(path), want, "{path:?}");
}

/// One forged frame: which tag, and its payload.
fn frames(data: &[u8]) -> Vec<(Tag, Vec<u8>)> {
    let mut out = Vec::new();
    let mut rest = data;
    while let [selector, len, tail @ ..] = rest {
        let len = usize::from(*len).min(tail.len());
        let (payload, after) = tail.split_at(len);
        let tag = match selector % 4 {
            0 => Tag::CENT,
            1 => Tag::CDAT,
            2 => Tag::CEND,
            _ => Tag::SOUT,
        };
        out.push((tag, payload.to_vec()));
        rest = after;
    }
    out
}

/// A fresh place for one run of the receiver: `base/out` is HOST_DIR,
/// `base/outside` holds a file no frame may touch.
fn fixture() -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let base =
        std::env::temp_dir().join(format!("guestinit-collect-prop-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(base.join("outside")).unwrap();
    std::fs::write(base.join("outside/victim"), b"host").unwrap();
    base
}

/// Makes every directory under `dir` (links not followed) removable.
fn open_up(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                open_up(&e.path());
            }
        }
    }
}

/// Any frames into the receiver: no panic, and nothing is written but
/// under HOST_DIR (the sibling and its file untouched, nothing else made).
pub fn receiver_frames(data: &[u8]) {
    let base = fixture();
    let out = base.join("out");
    let roots = vec![
        receiver::Root::new("/g".into(), out.clone()),
        receiver::Root::new("/h".into(), out.join("second")),
    ];
    let mut rx = receiver::Receiver::new(roots, 1 << 16);
    for (tag, payload) in frames(data) {
        rx.on_frame(tag, &payload);
    }
    rx.finish();
    assert!(rx.take_warnings().iter().all(|w| !w.contains('\n')));
    let mut top: Vec<_> = std::fs::read_dir(&base)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    top.sort();
    assert!(top == ["outside"] || top == ["out", "outside"], "{top:?}");
    let outside: Vec<_> = std::fs::read_dir(base.join("outside")).unwrap().collect();
    assert_eq!(outside.len(), 1);
    assert_eq!(std::fs::read(base.join("outside/victim")).unwrap(), b"host");
    open_up(&base);
    std::fs::remove_dir_all(&base).unwrap();
}

/// The bytes of a frame stream that tries the escapes the receiver must
/// refuse, for the seeds and the property tests' strategies.
pub fn forged_stream(path: &[u8], kind: Kind, data: &[u8]) -> Vec<u8> {
    let mut entry = vec![0u8; 64 + path.len()];
    let n = Entry {
        root: 0,
        kind,
        mode: 0o755,
        mtime_s: 0,
        mtime_ns: 0,
        size: data.len() as u64,
        path,
    }
    .encode(&mut entry)
    .unwrap_or(0);
    let mut out = Vec::new();
    let mut push = |selector: u8, payload: &[u8]| {
        let len = payload.len().min(255);
        out.push(selector);
        out.push(len as u8);
        out.extend_from_slice(&payload[..len]);
    };
    push(0, &entry[..n]);
    push(1, data);
    push(
        2,
        &End {
            complete: true,
            crc: guestinit::wire::slice16::hash(data),
        }
        .encode(),
    );
    out
}
