//! The host's event loop while the VM runs: one `poll` over every link QEMU
//! has (the bulk port, COM1, COM2, QMP, QEMU's stderr) and the host's stop
//! signals, a tick for the stop timers and for QEMU's exit. Adding a link
//! (hvc0, a stats port, a disk) is adding a [`Token`], a field and an arm.

use std::io;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Registry, Token as MioToken};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};
use signal_hook_mio::v1_0::Signals;

use crate::error::{Error, Result};

use super::capture::Capture;
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
}

const TOKENS: [Token; 6] = [
    Token::Bulk,
    Token::Com1,
    Token::Com2,
    Token::QemuStderr,
    Token::Qmp,
    Token::Signals,
];

/// How often QEMU's exit and the stop timers are checked.
const TICK: Duration = Duration::from_millis(100);

/// The signals the host handles: the stop signals, and SIGUSR1 for a debug
/// dump; any other keeps its default action.
pub const SIGNALS: [i32; 4] = [SIGTERM, SIGINT, SIGHUP, SIGUSR1];

pub struct Sources<'b> {
    pub bulk: Bulk<'b>,
    pub com1: Capture,
    pub com2: Capture,
    pub qemu_stderr: Capture,
    pub qmp: Qmp,
    /// hvc0's host end, for wake bytes; nothing is read from it.
    pub hvc0: std::os::unix::net::UnixStream,
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
            };
            registry.register(source, id, Interest::READABLE)?;
        }
        Ok(())
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
                for signal in self.signals.pending() {
                    actions.extend(stopper.on_signal(signal, Instant::now()));
                }
                Flow::Open
            }
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
        Action::Wake(byte) => {
            use std::io::Write;
            // A full link means bytes are waiting already: the guest will
            // read them; one more is not needed.
            if let Err(e) = (&sources.hvc0).write(&[byte]) {
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
fn drain(sources: &mut Sources<'_>, open: &[bool; 6], stopper: &mut Stopper) {
    let mut ignored = Vec::new();
    let links = TOKENS.into_iter().filter(|&t| t != Token::Signals);
    for token in links.filter(|&t| open[t as usize]) {
        while sources.on_ready(token, stopper, &mut ignored) == Flow::Again {}
    }
}
