//! The run handed to a booted machine on its handover port: the header
//! (`proto::handover`: the host's clock at the moment of sending, fresh
//! entropy, the lengths and the archive's CRC), the run's init keys, then
//! the payload's archive. A thread writes it, blocking: the guest reads
//! as fast as it unpacks, which is the backpressure.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::net::UnixStream;
use std::thread::{self, JoinHandle};
use std::time::SystemTime;

use guestinit::proto::handover::{Header, ENTROPY_LEN};

/// What the machine is handed.
pub struct Run {
    /// The run's keys, as the kernel command line would carry them.
    pub params: String,
    /// The payload's archive (uncompressed newc), read from its start.
    pub archive: File,
}

/// Writes `run` into `link` on a thread of its own. The link is kept
/// open after the last byte: a hang-up would let QEMU drop what the guest
/// has not read yet.
pub fn send(link: UnixStream, run: Run) -> JoinHandle<io::Result<()>> {
    thread::spawn(move || {
        let result = write(&link, run);
        std::mem::forget(link);
        result
    })
}

fn write(mut link: &UnixStream, mut run: Run) -> io::Result<()> {
    link.set_nonblocking(false)?;
    let (archive_len, archive_crc) = length_and_crc(&mut run.archive)?;
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let header = Header {
        realtime_s: now.as_secs(),
        realtime_ns: now.subsec_nanos(),
        entropy: entropy()?,
        params_len: run.params.len() as u32,
        archive_len,
        archive_crc,
    };
    link.write_all(&header.encode())?;
    link.write_all(run.params.as_bytes())?;
    run.archive.seek(SeekFrom::Start(0))?;
    let copied = io::copy(&mut run.archive, &mut link)?;
    if copied != archive_len {
        return Err(io::Error::other(
            "the payload's archive changed while it was sent",
        ));
    }
    Ok(())
}

fn length_and_crc(file: &mut File) -> io::Result<(u64, u32)> {
    file.seek(SeekFrom::Start(0))?;
    let mut hasher = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok((len, hasher.finalize()));
        }
        hasher.update(&buf[..n]);
        len += n as u64;
    }
}

/// Fresh bytes from the host's kernel, for the guest's to reseed with.
fn entropy() -> io::Result<[u8; ENTROPY_LEN]> {
    let mut bytes = [0u8; ENTROPY_LEN];
    File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes)
}
