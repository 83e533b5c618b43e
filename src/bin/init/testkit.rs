//! What the init's host tests share: a link over a pipe, the frames that
//! come out of it, and a fake sched_ext sysfs.

use crate::link::{FramePool, Link};
use guestinit::pool::Pool;
use guestinit::wire::{Decoder, Event, Tag};
use rustix::fd::OwnedFd;
use rustix::fs::OFlags;
use std::vec::Vec as StdVec;

/// A link over a pipe, and the pipe's read end.
pub fn link() -> (Link, OwnedFd) {
    let (r, w) = crate::test_pipe::pipe();
    rustix::fs::fcntl_setfl(&w, OFlags::NONBLOCK).unwrap();
    let pool: &'static mut FramePool = Box::leak(Box::new(Pool::new()));
    (Link::over(w, pool), r)
}

/// Every frame in `bytes`, in order; bytes that are no frame (the filler
/// that held the port full) are passed over.
pub fn frames(bytes: &[u8]) -> StdVec<(Tag, StdVec<u8>)> {
    let mut storage = std::vec![0u8; 64 * 1024];
    let mut decoder = Decoder::new(&mut storage);
    let mut out = StdVec::new();
    let mut rest = bytes;
    loop {
        let (n, event) = decoder.push(rest);
        rest = &rest[n..];
        match event {
            Some(Event::Frame { tag, payload }) => out.push((tag, payload.to_vec())),
            Some(Event::Skipped { .. }) => {}
            Some(other) => panic!("{other:?}"),
            None if rest.is_empty() => return out,
            None => {}
        }
    }
}

/// Flushes `link` while a thread reads its pipe; the frames read.
pub fn collect(mut link: Link, r: OwnedFd) -> StdVec<(Tag, StdVec<u8>)> {
    let reader = std::thread::spawn(move || {
        let mut all = StdVec::new();
        let mut buf = [0u8; 65536];
        while let Ok(n @ 1..) = rustix::io::read(&r, &mut buf) {
            all.extend_from_slice(&buf[..n]);
        }
        all
    });
    link.flush_within(None).unwrap();
    drop(link);
    frames(&reader.join().unwrap())
}

pub fn output(frames: &[(Tag, StdVec<u8>)], tag: Tag) -> StdVec<u8> {
    frames
        .iter()
        .filter(|(t, _)| *t == tag)
        .flat_map(|(_, p)| p.clone())
        .collect()
}

/// `sh -c script` with stdout and stderr piped: its pid and the init's ends.
pub fn sh(script: &str) -> (i32, OwnedFd, OwnedFd) {
    use crate::spawn::{spawn, Command, Stdio};
    let script = std::ffi::CString::new(script).unwrap();
    let child = spawn(&Command {
        path: c"/bin/sh",
        argv: &[c"sh", c"-c", &script],
        env: &[c"PATH=/usr/bin:/bin"],
        cwd: None,
        stdin: Stdio::Null,
        stdout: Stdio::Pipe,
        stderr: Stdio::Pipe,
    })
    .unwrap();
    let [_, Some(out), Some(err)] = child.streams else {
        unreachable!("stdout and stderr are piped")
    };
    (child.pid, out, err)
}

/// A fake /sys/kernel/sched_ext whose state reads `state` and whose root
/// has ops: a fresh directory, leaked for the test's `&'static` paths.
pub fn sched_ext_sysfs(state: &str) -> &'static str {
    let name = format!("guestinit-sched-{}-{state}-{:?}", std::process::id(), std::time::Instant::now());
    let dir = std::env::temp_dir().join(name);
    std::fs::create_dir_all(dir.join("root")).unwrap();
    std::fs::write(dir.join("state"), format!("{state}\n")).unwrap();
    std::fs::write(dir.join("root/ops"), "fake_ops\n").unwrap();
    std::boxed::Box::leak(dir.into_os_string().into_string().unwrap().into_boxed_str())
}
