//! The guest's network: `lo` is up in every run, so a local server
//! answers over 127.0.0.1; the guest has a host name; with `--net user`
//! it reaches a server on the host's 127.0.0.1 at 10.0.2.2, and
//! `--net-forward` brings the host to a server in the guest. Boots the
//! real kernel under QEMU (never skipped; see tests/common). Each run
//! carries a marker on its kernel command line, and no QEMU with it may
//! outlive the test.

mod common;

use common::{code, guestinit, require_vm_prerequisites, run, sh, stderr, stdout};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// A kernel parameter only this test's QEMU has on its command line.
fn marker(test: &str) -> String {
    format!("guestinit.test-marker={test}-{}", std::process::id())
}

/// Whether a process whose command line holds `marker` still runs
/// (QEMU's `-append` carries it), waiting up to 5 s for it to go.
fn qemu_left(marker: &str) -> bool {
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let found = std::fs::read_dir("/proc").unwrap().flatten().any(|entry| {
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            cmdline
                .windows(marker.len())
                .any(|w| w == marker.as_bytes())
        });
        if !found || Instant::now() > until {
            return found;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `sh` with the test's marker appended; asserts that no QEMU is left.
fn sh_marked(test: &str, vm_args: &[&str], script: &str) -> std::process::Output {
    sh_appended(test, vm_args, "", script)
}

/// [`sh_marked`] with more kernel parameters (`--append` is one option).
fn sh_appended(test: &str, vm_args: &[&str], append: &str, script: &str) -> std::process::Output {
    let marker = marker(test);
    let append = format!("{append} {marker}");
    let mut args = vm_args.to_vec();
    args.extend(["--append", &append]);
    let out = sh(&args, script);
    assert!(!qemu_left(&marker), "a QEMU of {test} outlived its run");
    out
}

/// A child killed when the test ends early (a failed assertion).
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_local_tcp_server_answers_over_127_0_0_1() {
    // Before: "nc: can't connect to remote host (127.0.0.1): Network is unreachable".
    let out = sh_marked(
        "loopback",
        &[],
        // The client connects once the server listens, however long it took.
        "nc -l -p 5000 -e /bin/busybox echo hi-over-lo & \
         until netstat -ltn | grep -q ':5000 '; do sleep 0.05; done; nc 127.0.0.1 5000; wait",
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out), "hi-over-lo\n", "{}", stderr(&out));
}

#[test]
fn the_guest_is_named_guestinit_or_what_hostname_says() {
    // Before: "(none)".
    let out = sh_marked("hostname", &[], "hostname; cat /proc/sys/kernel/hostname");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out), "guestinit\nguestinit\n");
    let out = sh_marked("hostname-named", &["--hostname", "vm-1.test"], "hostname");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out), "vm-1.test\n");
}

#[test]
fn a_hostname_the_guest_cannot_take_is_refused_before_the_boot() {
    let long = "a".repeat(65);
    for (name, why) in [
        ("a_b", "'_' is not allowed"),
        ("a b", "' ' is not allowed"),
        (long.as_str(), "65 bytes: a host name has at most 64"),
        ("", "a host name cannot be empty"),
    ] {
        let started = Instant::now();
        let out = run(&["--hostname", name], &["/bin/true"]);
        assert_eq!(code(&out), 249, "{name:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains(&format!("--hostname {name:?}: {why}")),
            "{err}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "refused before the boot"
        );
    }
}

#[test]
fn without_net_the_guest_has_only_lo_and_with_it_eth0_and_a_resolver() {
    let out = sh_marked(
        "only-lo",
        &[],
        "ls /sys/class/net; ls /etc/resolv.conf 2>&1",
    );
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(stdout(&out).starts_with("lo\n"), "{}", stdout(&out));
    let out = sh_marked(
        "eth0",
        &["--net", "user"],
        "ls /sys/class/net; cat /etc/resolv.conf; ip -4 addr show eth0; ip route",
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let said = stdout(&out);
    assert!(
        said.starts_with("eth0\nlo\nnameserver 10.0.2.3\n"),
        "{said}"
    );
    assert!(said.contains("inet 10.0.2.15/24"), "{said}");
    assert!(said.contains("default via 10.0.2.2 dev eth0"), "{said}");
}

/// A one-request HTTP server on the host's 127.0.0.1: its port, and the
/// request line it got.
fn http_server(body: &'static str) -> (u16, thread::JoinHandle<String>) {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut reader = BufReader::new(&stream);
        let mut request = String::new();
        reader.read_line(&mut request).unwrap();
        // The headers, up to the empty line.
        let mut line = String::new();
        while reader.read_line(&mut line).unwrap() > 2 {
            line.clear();
        }
        let reply = format!(
            "HTTP/1.0 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        (&stream).write_all(reply.as_bytes()).unwrap();
        request
    });
    (port, server)
}

#[test]
fn the_guest_reaches_a_server_on_the_hosts_loopback_at_10_0_2_2() {
    let (port, server) = http_server("hello-from-the-host\n");
    let url = format!("http://10.0.2.2:{port}/from-the-guest");
    let out = sh_marked("wget", &["--net", "user"], &format!("wget -q -O - {url}"));
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out), "hello-from-the-host\n");
    assert!(server
        .join()
        .unwrap()
        .starts_with("GET /from-the-guest HTTP/1."));
}

/// A port on the host's 127.0.0.1 that was free a moment ago, below the
/// kernel's ephemeral range: a parallel test's `bind(0)` or `connect`
/// cannot take it before QEMU binds it.
fn free_port() -> u16 {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap();
    let low: u16 = range.split_whitespace().next().unwrap().parse().unwrap();
    let start = low.saturating_sub(16000).max(1024);
    let offset = std::process::id() as u16 % 4000;
    (0..4000u16)
        .map(|i| start + (offset + i) % 4000)
        .find(|&port| TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok())
        .expect("a free port below the ephemeral range")
}

/// Connects to the host's `port` until an answer comes (slirp accepts at
/// once and drops the connection while nothing in the guest listens), for
/// at most `limit`.
fn answer_from(port: u16, limit: Duration) -> Option<String> {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if let Ok(mut stream) = TcpStream::connect((Ipv4Addr::LOCALHOST, port)) {
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let mut answer = String::new();
            if stream.read_to_string(&mut answer).is_ok() && !answer.is_empty() {
                return Some(answer);
            }
        }
        thread::sleep(Duration::from_millis(200));
    }
    None
}

#[test]
fn a_server_in_the_guest_is_reached_through_net_forward() {
    require_vm_prerequisites();
    let marker = marker("forward");
    let port = free_port();
    let forward = format!("{port}:80");
    let child = Command::new(guestinit())
        .args(["run", "--timeout", common::VM_TIMEOUT_SECS, "--net", "user"])
        .args(["--net-forward", &forward, "--append", &marker, "--"])
        .args(["/bin/busybox", "sh", "-c"])
        .arg("nc -l -p 80 -e /bin/busybox echo from-the-guest & sleep 0.3; echo listening; wait")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start guestinit");
    let mut child = Running(child);
    let mut stdout = BufReader::new(child.0.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line, "listening\n");
    let answer = answer_from(port, Duration::from_secs(60));
    let status = child.0.wait().unwrap();
    let mut err = String::new();
    child
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(answer.as_deref(), Some("from-the-guest\n"), "{err}");
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(!qemu_left(&marker), "a QEMU outlived its run");
}

#[test]
fn a_forwarded_port_that_is_taken_is_refused_before_the_boot() {
    let taken = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = taken.local_addr().unwrap().port();
    let marker = marker("taken");
    let started = Instant::now();
    let forward = format!("{port}:80");
    let out = run(
        &[
            "--net",
            "user",
            "--net-forward",
            &forward,
            "--append",
            &marker,
        ],
        &["/bin/true"],
    );
    assert_eq!(code(&out), 249, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("host port 127.0.0.1:{port} is taken")),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "refused before the boot"
    );
    assert!(!qemu_left(&marker));
    drop(taken);
}

#[test]
fn a_guest_told_of_a_network_it_lacks_says_so_and_runs_on() {
    // guestinit.net without the NIC (no --net): what a kernel without
    // virtio_net, or an --initramfs without its module, would give.
    let out = sh_appended("no-nic", &[], "guestinit.net", "echo ran");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out), "ran\n");
    assert!(
        stderr(&out).contains("guestinit: eth0: No such device"),
        "{}",
        stderr(&out)
    );
}
