//! The host's event loop while the VM runs: one `poll` over the links the
//! link table says to poll (the bulk port, COM1, COM2, QMP, QEMU's stderr,
//! hvc0 in shell mode), the host's stop signals and the user's terminal,
//! with a tick for the stop timers and for QEMU's exit.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Registry, Token as MioToken};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1, SIGWINCH};
use signal_hook_mio::v1_0::Signals;

use crate::error::{Error, Result};

use super::capture::Capture;
use super::console::{self, Console};
use super::diag::Diagnostics;
use super::flow::Flow;
use super::links::{self, Link, Links};
use super::qmp::Qmp;
use super::stop::{self, Action, Stopper};
use super::stream::Bulk;
use super::verdict;
use super::vm::Vm;
use super::warm::Session;

/// What the loop waits on: a link (its token is its table index), the
/// stop signals, or shell mode's terminal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Token {
    Link(Link),
    Signals,
    Input,
    /// QEMU's exit (its pidfd).
    Exited,
}

const SIGNALS_TOKEN: usize = links::COUNT;
const INPUT_TOKEN: usize = links::COUNT + 1;
const EXITED_TOKEN: usize = links::COUNT + 2;
const TOKENS: usize = links::COUNT + 3;

impl Token {
    fn index(self) -> usize {
        match self {
            Token::Link(link) => link as usize,
            Token::Signals => SIGNALS_TOKEN,
            Token::Input => INPUT_TOKEN,
            Token::Exited => EXITED_TOKEN,
        }
    }

    fn of(id: MioToken) -> Option<Token> {
        match id.0 {
            SIGNALS_TOKEN => Some(Token::Signals),
            INPUT_TOKEN => Some(Token::Input),
            EXITED_TOKEN => Some(Token::Exited),
            index => Link::from_index(index).map(Token::Link),
        }
    }
}

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
    /// Shell mode: the user's terminal relayed to hvc0.
    pub console: Option<Console>,
    pub signals: Signals,
    /// The host's ends no handler took: kept open for the run (hvc0 in
    /// exec mode), or written to (the wake bytes and window size).
    pub links: Links,
    /// The links to poll, from the link table (taken before the handlers
    /// took their ends; the descriptors stay theirs).
    pub polled: Vec<(Link, RawFd, Interest)>,
    pub diag: Diagnostics,
    /// Where wake bytes go: hvc0 in test mode, the control port in shell
    /// and exec modes (hvc0 is the shell's there).
    pub wakes: Link,
    /// A machine that may be snapshotted or was restored.
    pub warm: Option<Session>,
}

impl Sources<'_> {
    fn register(&mut self, registry: &Registry) -> io::Result<()> {
        for &(link, fd, interest) in &self.polled {
            let id = MioToken(Token::Link(link).index());
            registry.register(&mut SourceFd(&fd), id, interest)?;
        }
        let id = MioToken(SIGNALS_TOKEN);
        registry.register(&mut self.signals, id, Interest::READABLE)?;
        if let Some(console) = &self.console {
            let input = console.input.as_raw_fd();
            let id = MioToken(INPUT_TOKEN);
            registry.register(&mut SourceFd(&input), id, Interest::READABLE)?;
        }
        Ok(())
    }

    /// Where wake bytes go.
    fn control(&self) -> Option<&std::os::unix::net::UnixStream> {
        self.links.host(self.wakes)
    }

    /// Sends the terminal's size to the guest's shell.
    pub fn resize(&mut self) {
        use std::io::Write;
        let (Some(console), Some(control)) = (&self.console, self.links.host(Link::Control)) else {
            return;
        };
        if let Some((rows, cols)) = console::window_size(&console.input) {
            if let Err(e) = (&*control).write_all(&console::resize_message(rows, cols)) {
                self.diag
                    .warn(&format!("the window size for the guest was lost: {e}"));
            }
        }
    }

    /// Reads what `token`'s source holds; signals go to `stopper`.
    fn on_ready(&mut self, token: Token, stopper: &mut Stopper, actions: &mut Vec<Action>) -> Flow {
        match token {
            Token::Link(link) => self.on_link(link, stopper),
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
            // Reaped below, by the loop's `try_wait`.
            Token::Exited => Flow::Closed,
        }
    }

    /// Reads what a polled link holds (the table says which are polled).
    fn on_link(&mut self, link: Link, stopper: &mut Stopper) -> Flow {
        match link {
            Link::Bulk => {
                let flow = self.bulk.on_readable();
                if self.bulk.relay.collected.exit_code.is_some() {
                    stopper.on_exit(Instant::now());
                }
                if let Some(warm) = &mut self.warm {
                    warm.on_bulk(self.bulk.relay.collected.handover_ready, &mut self.qmp);
                }
                flow
            }
            Link::Com1 => {
                let flow = self.com1.on_readable();
                if self.com1.take_watched(stop::DUMP_LINE) {
                    stopper.on_dump_output(Instant::now());
                }
                // Before the first frame only the kernel writes COM1 (no
                // payload runs yet), so its panic line is its death.
                let panicked = self.com1.take_watched(verdict::PANIC_LINE.as_bytes());
                if panicked && self.bulk.relay.collected.frames == 0 {
                    stopper.on_early_panic(Instant::now());
                }
                flow
            }
            Link::Com2 => self.com2.on_readable(),
            Link::QemuStderr => self.qemu_stderr.on_readable(),
            Link::Qmp => {
                let flow = self.qmp.on_readable();
                if let Some(warm) = &mut self.warm {
                    let recorded = self.bulk.recorded.as_deref().unwrap_or_default();
                    warm.on_qmp(&mut self.qmp, recorded);
                }
                for note in self.qmp.take_notes() {
                    self.diag.warn(&note);
                }
                if self.qmp.halt().is_some() {
                    stopper.on_halt(Instant::now());
                }
                flow
            }
            Link::Hvc0 => match &mut self.console {
                Some(console) => console.on_hvc0(),
                None => Flow::Closed,
            },
            // Threads read these, or the host only writes them.
            Link::Stats | Link::Stdin | Link::Control | Link::Handover => Flow::Closed,
        }
    }
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
    let exited = vm.exit_fd();
    if let Some(fd) = &exited {
        let fd = rustix::fd::AsRawFd::as_raw_fd(fd);
        let id = MioToken(EXITED_TOKEN);
        poll.registry()
            .register(&mut SourceFd(&fd), id, Interest::READABLE)
            .map_err(setup)?;
    }
    let mut events = Events::with_capacity(16);
    let mut open = [true; TOKENS];
    let mut again: Vec<Token> = Vec::new();
    // Sources whose spools were full: asked again each pass, which a tick
    // bounds, so a pause neither spins nor outlives the run's timers.
    let mut paused: Vec<Token> = Vec::new();
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
        let ready = events.iter().filter_map(|e| Token::of(e.token()));
        let mut due: Vec<Token> = Vec::new();
        for token in ready.chain(again.drain(..)).chain(paused.drain(..)) {
            if open[token.index()] && !due.contains(&token) {
                due.push(token);
            }
        }
        for token in due {
            match sources.on_ready(token, stopper, &mut actions) {
                Flow::Open => {}
                Flow::Again => again.push(token),
                Flow::Paused => paused.push(token),
                Flow::Closed => open[token.index()] = false,
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
                sources.diag.warn(&format!("QMP {command:?} failed: {e}"));
            }
            Ok(())
        }
        Action::Wake(message) => {
            use std::io::Write;
            // In shell and exec modes hvc0 is the shell's: wakes go on the
            // control port. A full link means bytes are waiting already:
            // the guest will read them; one more is not needed.
            let Some(mut link) = sources.control() else {
                return Ok(());
            };
            if let Err(e) = link.write(&message.encode()) {
                if e.kind() != io::ErrorKind::WouldBlock {
                    sources
                        .diag
                        .warn(&format!("a wake byte for the guest failed: {e}"));
                }
            }
            Ok(())
        }
    }
}

/// QEMU has exited: what it wrote before is still in the sockets, no more
/// than their buffers hold, so it is read whatever the spools hold.
fn drain(sources: &mut Sources<'_>, open: &[bool; TOKENS], stopper: &mut Stopper) {
    let console = sources.console.as_mut().map(|c| &mut c.gate);
    let gates = [
        Some(&mut sources.bulk.gate),
        Some(&mut sources.com1.gate),
        Some(&mut sources.com2.gate),
        console,
    ];
    for gate in gates.into_iter().flatten() {
        gate.lift();
    }
    let polled: Vec<Link> = sources.polled.iter().map(|p| p.0).collect();
    for link in polled {
        if open[Token::Link(link).index()] {
            while sources.on_link(link, stopper) == Flow::Again {}
        }
    }
}
