//! The stats socket against a fake guest end (a socket pair standing for
//! the stats port): each defect of issue 19, item 6 as a test.

use super::*;
use crate::error::USAGE;
use crate::scratch::ScratchDir;
use std::fs;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::mpsc;

/// How long a test waits for a reply before it calls the client stuck.
const WAIT: Duration = Duration::from_secs(5);

struct Fixture {
    _dir: ScratchDir,
    path: PathBuf,
}

fn fixture() -> Fixture {
    let dir = ScratchDir::new("stats-test").unwrap();
    let path = dir.path().join("stats.sock");
    Fixture { _dir: dir, path }
}

/// The guest's end answering as a scheduler would, one `re:LINE` per
/// request line; the lines it got go to the receiver.
fn echo_guest(guest: UnixStream) -> mpsc::Receiver<String> {
    let (seen, lines) = mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(guest.try_clone().unwrap());
        let mut writer = guest;
        let mut line = String::new();
        while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
            let _ = seen.send(line.clone());
            if writer.write_all(format!("re:{line}").as_bytes()).is_err() {
                return;
            }
            line.clear();
        }
    });
    lines
}

/// Bound and served at once, as `run` does either side of the boot.
fn serve(path: &Path, link: UnixStream) -> Result<StatsSocket> {
    let mut socket = bind(path)?;
    socket.serve(link)?;
    Ok(socket)
}

/// A relay at `path` over an echoing guest.
fn echo_relay(path: &Path) -> (StatsSocket, mpsc::Receiver<String>) {
    let (host, guest) = UnixStream::pair().unwrap();
    let seen = echo_guest(guest);
    (serve(path, host).unwrap(), seen)
}

fn client(path: &Path) -> UnixStream {
    let stream = UnixStream::connect(path).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream
}

/// One line, byte by byte (nothing past it is consumed); an error when
/// none comes within [`WAIT`].
fn read_line(stream: &UnixStream) -> io::Result<String> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while line.last() != Some(&b'\n') {
        match (&*stream).read(&mut byte)? {
            0 => break,
            _ => line.push(byte[0]),
        }
    }
    Ok(String::from_utf8_lossy(&line).into_owned())
}

#[test]
fn a_reply_for_a_client_that_left_is_not_given_to_the_next() {
    let f = fixture();
    let (host, guest) = UnixStream::pair().unwrap();
    let _socket = serve(&f.path, host).unwrap();
    guest.set_read_timeout(Some(WAIT)).unwrap();
    let mut from_host = BufReader::new(guest.try_clone().unwrap());
    let mut to_host = guest;
    let mut line = String::new();

    let mut first = client(&f.path);
    first.write_all(b"{\"req\":\"first\"}\n").unwrap();
    from_host.read_line(&mut line).unwrap();
    assert_eq!(line, "{\"req\":\"first\"}\n");
    drop(first); // gone before its reply
    let mut second = client(&f.path);
    second.write_all(b"{\"req\":\"second\"}\n").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    to_host.write_all(b"reply to first\n").unwrap();
    line.clear();
    from_host.read_line(&mut line).unwrap();
    assert_eq!(line, "{\"req\":\"second\"}\n");
    to_host.write_all(b"reply to second\n").unwrap();
    assert_eq!(read_line(&second).unwrap(), "reply to second\n");
}

#[test]
fn a_client_is_served_while_another_is_connected_and_idle() {
    let f = fixture();
    let (_socket, _seen) = echo_relay(&f.path);
    let idle = client(&f.path);
    let mut busy = client(&f.path);
    busy.write_all(b"{\"req\":\"stats\"}\n").unwrap();
    let reply = read_line(&busy).expect("a reply while the idle client holds on");
    assert_eq!(reply, "re:{\"req\":\"stats\"}\n");
    drop(idle);
}

#[test]
fn a_half_sent_request_of_a_client_that_left_reaches_nobody() {
    let f = fixture();
    let (_socket, seen) = echo_relay(&f.path);
    let mut half = client(&f.path);
    half.write_all(b"{\"req\":\"sta").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    drop(half);
    let mut whole = client(&f.path);
    whole.write_all(b"{\"req\":\"stats\"}\n").unwrap();
    assert_eq!(
        read_line(&whole).unwrap(),
        "re:{\"req\":\"stats\"}\n",
        "the guest's reply"
    );
    assert_eq!(
        seen.recv_timeout(WAIT).unwrap(),
        "{\"req\":\"stats\"}\n",
        "what reached the guest"
    );
}

#[test]
fn a_live_socket_is_refused_and_stays_served() {
    let f = fixture();
    let (first, _seen) = echo_relay(&f.path);
    let (host, _guest) = UnixStream::pair().unwrap();
    let err = serve(&f.path, host)
        .err()
        .expect("a second relay on a live socket is refused");
    assert_eq!(err.exit_code(), USAGE);
    let message = err.to_string();
    assert!(message.contains(&f.path.display().to_string()), "{message}");
    assert!(message.contains("live"), "{message}");
    let mut c = client(&f.path);
    c.write_all(b"{\"req\":\"stats\"}\n").unwrap();
    assert_eq!(read_line(&c).unwrap(), "re:{\"req\":\"stats\"}\n");
    drop(first);
    assert!(!f.path.exists(), "the first run removes its own socket");
}

#[test]
fn the_socket_file_is_removed_at_the_end_only_while_it_is_ours() {
    let f = fixture();
    let (socket, _seen) = echo_relay(&f.path);
    fs::remove_file(&f.path).unwrap();
    fs::write(&f.path, b"someone else's").unwrap();
    drop(socket);
    assert_eq!(fs::read(&f.path).unwrap(), b"someone else's");
}

#[test]
fn a_stale_socket_is_replaced_and_any_other_file_refused() {
    let f = fixture();
    drop(std::os::unix::net::UnixListener::bind(&f.path).unwrap());
    assert!(
        f.path.exists(),
        "a stale socket: its file, nobody listening"
    );
    let (socket, _seen) = echo_relay(&f.path);
    let mut c = client(&f.path);
    c.write_all(b"x\n").unwrap();
    assert_eq!(read_line(&c).unwrap(), "re:x\n");
    drop(socket);

    fs::write(&f.path, b"data").unwrap();
    let (host, _guest) = UnixStream::pair().unwrap();
    let err = serve(&f.path, host)
        .err()
        .expect("a regular file is refused");
    assert_eq!(err.exit_code(), USAGE);
    assert_eq!(fs::read(&f.path).unwrap(), b"data", "and left alone");
}

#[test]
fn the_socket_is_made_mode_0600() {
    let f = fixture();
    let (_socket, _seen) = echo_relay(&f.path);
    let mode = fs::symlink_metadata(&f.path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
}

#[test]
fn clients_at_once_each_get_their_own_replies_in_order() {
    let f = fixture();
    let (_socket, _seen) = echo_relay(&f.path);
    let clients: Vec<_> = (0..8)
        .map(|c| {
            let path = f.path.clone();
            std::thread::spawn(move || {
                let mut stream = client(&path);
                for r in 0..25 {
                    let request = format!("{{\"req\":\"stats\",\"args\":{{\"c{c}\":\"{r}\"}}}}\n");
                    stream.write_all(request.as_bytes()).unwrap();
                    assert_eq!(read_line(&stream).unwrap(), format!("re:{request}"));
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
}

#[test]
fn a_request_over_the_bound_is_refused_and_reaches_nobody() {
    let f = fixture();
    let (_socket, seen) = echo_relay(&f.path);
    let mut long = client(&f.path);
    long.write_all(&vec![b'x'; client::REQUEST_MAX + 1])
        .unwrap();
    let reply = read_line(&long).unwrap();
    assert!(reply.starts_with("{\"args\":{\"resp\":\"guestinit: a stats request is longer than 4096 bytes\"},\"errno\":90}"), "{reply}");
    // Closed, with the rest unread: an end or a reset.
    match read_line(&long) {
        Ok(rest) => assert_eq!(rest, "", "then closed"),
        Err(e) => assert_eq!(e.kind(), io::ErrorKind::ConnectionReset),
    }
    let mut next = client(&f.path);
    next.write_all(b"{}\n").unwrap();
    assert_eq!(read_line(&next).unwrap(), "re:{}\n");
    assert_eq!(
        seen.recv_timeout(WAIT).unwrap(),
        "{}\n",
        "the only line sent"
    );
}

#[test]
fn clients_past_the_bound_get_an_error_line() {
    let f = fixture();
    let (_socket, _seen) = echo_relay(&f.path);
    let held: Vec<_> = (0..CLIENTS_MAX).map(|_| client(&f.path)).collect();
    let extra = client(&f.path);
    let reply = read_line(&extra).unwrap();
    assert!(reply.contains("\"errno\":16"), "{reply}");
    drop(held);
    // Their threads end as they see the hang-ups; then a client is served.
    let start = std::time::Instant::now();
    loop {
        let mut c = client(&f.path);
        c.write_all(b"{}\n").unwrap();
        match read_line(&c) {
            Ok(line) if line == "re:{}\n" => break,
            other => assert!(start.elapsed() < WAIT, "{other:?}"),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_closed_port_answers_with_an_error_line() {
    let f = fixture();
    let (host, guest) = UnixStream::pair().unwrap();
    let _socket = serve(&f.path, host).unwrap();
    drop(guest);
    let mut c = client(&f.path);
    c.write_all(b"{}\n").unwrap();
    let reply = read_line(&c).unwrap();
    assert!(reply.contains("\"errno\":104"), "{reply}");
}
