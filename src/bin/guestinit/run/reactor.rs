//! The host's event loop while the VM runs: one `poll` over every link QEMU
//! has (the bulk port, COM1, COM2, QMP, QEMU's stderr) and the host's stop
//! signals, a tick for the stop timers and for QEMU's exit. Adding a link
//! (hvc0, a stats port, a disk) is adding a [`Token`], a field and an arm.

use std::io;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use std::os::fd::AsRawFd;

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Registry, Token as MioToken};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1, SIGWINCH};
use signal_hook_mio::v1_0::Signals;

use crate::error::{Error, Result};

use super::capture::Capture;
use super::console::{self, Console};
use super::qmp::Qmp;
use super::stop::{Action, Stopper};
use super::stream::Bulk;
use super::vm::Vm;

/// What a source's read handler tells the loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// Read to `WouldBlock`: wait for readiness again.
    Open,
    /// More may be there (a throttled read): call again without waiting.
    Again,
    /// The link ended.
    Closed,
}

/// The sources, one token each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Token {
    Bulk,
    Com1,
    Com2,
    QemuStderr,
    Qmp,
    Signals,
    /// Shell mode: the user's keys, and hvc0 both ways.
    Input,
    Hvc0,
}

const TOKENS: [Token; 8] = [
    Token::Bulk,
    Token::Com1,
    Token::Com2,
    Token::QemuStderr,
    Token::Qmp,
    Token::Signals,
    Token::Input,
    Token::Hvc0,
];

/// How often QEMU's exit and the stop timers are checked.
const TICK: Duration = Duration::from_millis(100);

/// The signals the host handles: the stop signals, SIGUSR1 for a debug
/// dump, SIGWINCH for the shell's window size; any other keeps its default
/// action.
pub const SIGNALS: [i32; 5] = [SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGWINCH];

pub struct Sources<'b> {
    pub bulk: Bulk<'b>,
    pub com1: Capture,
    pub com2: Capture,
    pub qemu_stderr: Capture,
    pub qmp: Qmp,
    /// hvc0's host end, for wake bytes in test mode; the console's in
    /// shell mode.
    pub hvc0: std::os::unix::net::UnixStream,
    /// Shell and exec modes: where wake bytes and the window size go.
    pub control: Option<std::os::unix::net::UnixStream>,
    /// Shell mode: the user's terminal relayed to hvc0.
    pub console: Option<Console>,
    pub signals: Signals,
}

impl Sources<'_> {
    fn register(&mut self, registry: &Registry) -> io::Result<()> {
        for token in TOKENS {
            let id = MioToken(token as usize);
            let source: &mut dyn mio::event::Source = match token {
                Token::Bulk => &mut self.bulk.stream,
                Token::Com1 => &mut self.com1.stream,
                Token::Com2 => &mut self.com2.stream,
                Token::QemuStderr => &mut self.qemu_stderr.stream,
                Token::Qmp => &mut self.qmp.stream,
                Token::Signals => &mut self.signals,
                Token::Input | Token::Hvc0 => continue,
            };
            registry.register(source, id, Interest::READABLE)?;
        }
        if let Some(console) = &self.console {
            let input = console.input.as_raw_fd();
            let id = MioToken(Token::Input as usize);
            registry.register(&mut SourceFd(&input), id, Interest::READABLE)?;
            // Writable too: keys that found hvc0 full go when it has room.
            let hvc0 = console.hvc0.as_raw_fd();
            let id = MioToken(Token::Hvc0 as usize);
            registry.register(
                &mut SourceFd(&hvc0),
                id,
                Interest::READABLE | Interest::WRITABLE,
            )?;
        }
        Ok(())
    }

    /// Sends the terminal's size to the guest's shell.
    pub fn resize(&mut self) {
        use std::io::Write;
        let (Some(console), Some(control)) = (&self.console, &self.control) else {
            return;
        };
        if let Some((rows, cols)) = console::window_size(&console.input) {
            if let Err(e) = (&*control).write_all(&console::resize_message(rows, cols)) {
                self.bulk.relay.note(&format!(
                    "guestinit: warning: the window size for the guest was lost: {e}"
                ));
            }
        }
    }

    /// Reads what `token`'s source holds; signals go to `stopper`.
    fn on_ready(&mut self, token: Token, stopper: &mut Stopper, actions: &mut Vec<Action>) -> Flow {
        match token {
            Token::Bulk => {
                let flow = self.bulk.on_readable();
                if self.bulk.relay.collected.exit_code.is_some() {
                    stopper.on_exit(Instant::now());
                }
                flow
            }
            Token::Com1 => {
                let flow = self.com1.on_readable();
                if self.com1.take_watched() {
                    stopper.on_dump_output(Instant::now());
                }
                flow
            }
            Token::Com2 => self.com2.on_readable(),
            Token::QemuStderr => self.qemu_stderr.on_readable(),
            Token::Qmp => self.qmp.on_readable(),
            Token::Signals => {
                let pending: Vec<i32> = self.signals.pending().collect();
                for signal in pending {
                    match signal {
                        SIGWINCH => self.resize(),
                        _ => actions.extend(stopper.on_signal(signal, Instant::now())),
                    }
                }
                Flow::Open
            }
            Token::Input => {
                let Some(console) = &mut self.console else {
                    return Flow::Closed;
                };
                let flow = console.on_input();
                if console.quit {
                    actions.extend(stopper.on_quit());
                }
                // The user's terminal is gone: as its SIGHUP would.
                if flow == Flow::Closed {
                    actions.extend(stopper.on_signal(SIGHUP, Instant::now()));
                }
                flow
            }
            Token::Hvc0 => match &mut self.console {
                Some(console) => console.on_hvc0(),
                None => Flow::Closed,
            },
        }
    }
}

fn token_of(id: MioToken) -> Option<Token> {
    TOKENS.get(id.0).copied()
}

/// Runs until QEMU has exited and every link is read to its end. Returns
/// QEMU's status.
pub fn run(sources: &mut Sources<'_>, vm: &mut Vm, stopper: &mut Stopper) -> Result<ExitStatus> {
    let setup = |source| Error::VmSetup {
        what: "polling QEMU's links".into(),
        source,
    };
    let mut poll = Poll::new().map_err(setup)?;
    sources.register(poll.registry()).map_err(setup)?;
    let mut events = Events::with_capacity(16);
    let mut open = TOKENS.map(|_| true);
    let mut again: Vec<Token> = Vec::new();
    let mut actions = Vec::new();
    loop {
        let timeout = if again.is_empty() {
            TICK
        } else {
            Duration::ZERO
        };
        match poll.poll(&mut events, Some(timeout)) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => other.map_err(setup)?,
        }
        let ready = events.iter().filter_map(|e| token_of(e.token()));
        let due: Vec<Token> = ready.chain(again.drain(..)).collect();
        for token in due {
            if !open[token as usize] {
                continue;
            }
            match sources.on_ready(token, stopper, &mut actions) {
                Flow::Open => {}
                Flow::Again => again.push(token),
                Flow::Closed => open[token as usize] = false,
            }
        }
        actions.extend(stopper.on_tick(Instant::now()));
        for action in actions.drain(..) {
            apply(action, sources, vm)?;
        }
        if let Some(status) = vm.try_wait()? {
            drain(sources, &open, stopper);
            return Ok(status);
        }
    }
}

/// Carries out what the stopper decided.
fn apply(action: Action, sources: &mut Sources<'_>, vm: &mut Vm) -> Result<()> {
    match action {
        Action::Kill => vm.kill().map(drop),
        Action::Qmp(command) => {
            // QEMU gone or its monitor closed: the next tick kills it.
            if let Err(e) = sources.qmp.command(command) {
                sources
                    .bulk
                    .relay
                    .note(&format!("guestinit: warning: QMP {command:?} failed: {e}"));
            }
            Ok(())
        }
        Action::Wake(message) => {
            use std::io::Write;
            // In shell and exec modes hvc0 is the shell's: wakes go on the
            // control port. A full link means bytes are waiting already:
            // the guest will read them; one more is not needed.
            let link = sources.control.as_ref().unwrap_or(&sources.hvc0);
            if let Err(e) = (&*link).write(&message.encode()) {
                if e.kind() != io::ErrorKind::WouldBlock {
                    let warning =
                        format!("guestinit: warning: a wake byte for the guest failed: {e}");
                    sources.bulk.relay.note(&warning);
                }
            }
            Ok(())
        }
    }
}

/// QEMU has exited: what it wrote before is still in the sockets.
fn drain(sources: &mut Sources<'_>, open: &[bool; TOKENS.len()], stopper: &mut Stopper) {
    let mut ignored = Vec::new();
    let links = TOKENS
        .into_iter()
        .filter(|&t| t != Token::Signals && t != Token::Input);
    for token in links.filter(|&t| open[t as usize]) {
        while sources.on_ready(token, stopper, &mut ignored) == Flow::Again {}
    }
}
