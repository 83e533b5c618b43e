//! The QMP monitor: how the host stops the VM. Ctrl-Alt-Del reaches the
//! guest's PID 1 as SIGINT (the init turns the keyboard's reboot into a
//! signal), `quit` ends QEMU when the guest cannot power off.

use std::io::{self, Write};

use mio::net::UnixStream;

use super::flow::{read_ready, Flow};

/// Leaves capability negotiation; QEMU reads it after its greeting.
const CAPABILITIES: &str = r#"{"execute":"qmp_capabilities"}"#;
const CTRL_ALT_DELETE: &str = r#"{"execute":"send-key","arguments":{"keys":[{"type":"qcode","data":"ctrl"},{"type":"qcode","data":"alt"},{"type":"qcode","data":"delete"}]}}"#;
const QUIT: &str = r#"{"execute":"quit"}"#;

/// What the host asks of the VM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// An orderly stop: SIGINT to the guest's PID 1.
    CtrlAltDelete,
    /// End QEMU (the guest is done but did not power off).
    Quit,
}

pub struct Qmp {
    pub stream: UnixStream,
    /// Every reply, kept for `-v`.
    replies: Vec<u8>,
}

impl Qmp {
    pub fn new(stream: UnixStream) -> io::Result<Qmp> {
        let mut qmp = Qmp {
            stream,
            replies: Vec::new(),
        };
        qmp.send(CAPABILITIES)?;
        Ok(qmp)
    }

    fn send(&mut self, line: &str) -> io::Result<()> {
        // One short line into the socket's buffer, which QEMU keeps empty.
        self.stream.write_all(format!("{line}\n").as_bytes())
    }

    pub fn command(&mut self, command: Command) -> io::Result<()> {
        match command {
            Command::CtrlAltDelete => self.send(CTRL_ALT_DELETE),
            Command::Quit => self.send(QUIT),
        }
    }

    /// Reads QEMU's replies and events, so its writes never block.
    pub fn on_readable(&mut self) -> Flow {
        let mut chunk = [0u8; 4096];
        read_ready(&self.stream, &mut chunk, |bytes| {
            self.replies.extend_from_slice(bytes);
            None
        })
        .unwrap_or(Flow::Closed)
    }

    pub fn replies(&self) -> String {
        String::from_utf8_lossy(&self.replies).into_owned()
    }
}
