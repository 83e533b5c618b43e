//! When and how the host ends the VM: the `--timeout` deadline (a debug
//! dump, an orderly stop, then a kill), a guest that sent EXIT but does not
//! power off, a guest QEMU paused or saw panic, stop signals sent to the
//! host, and SIGUSR1's dump. Pure state and time, so every path is
//! unit-tested.

use std::time::{Duration, Instant};

use guestinit::proto::control::Message;
use signal_hook::consts::SIGUSR1;

use super::qmp::Command;

/// After EXIT (and EACK), how long the guest has to power off by itself.
pub const POWER_OFF_WAIT: Duration = Duration::from_secs(5);
/// After QMP `quit`, how long QEMU has to exit before SIGKILL.
pub const QUIT_WAIT: Duration = Duration::from_secs(3);
/// After a stop signal, how long the guest has to send EXIT: its own
/// bounds fit in it, the payload's 5 s stop grace then the scheduler's 8 s.
pub const STOP_WAIT: Duration = Duration::from_secs(15);
/// At the timeout, how long the debug dump gets at most before the
/// orderly stop.
pub const DUMP_WAIT: Duration = Duration::from_secs(5);
/// The dump is over once its lines have stopped this long.
pub const DUMP_QUIET: Duration = Duration::from_millis(500);
/// No dump line this long after asking: there is no dump to wait for (no
/// scheduler, no sched_ext).
pub const DUMP_START_WAIT: Duration = Duration::from_secs(2);
/// After a kernel panic before the init, how long the kernel has to print
/// the rest of it and reboot itself (`panic=-1`). One that panicked before
/// reading `panic=` (an early setup failure) spins: QEMU is quit then.
pub const EARLY_PANIC_WAIT: Duration = Duration::from_secs(2);
/// What a line of sched_ext's debug dump in the trace holds.
pub const DUMP_LINE: &[u8] = b"sched_ext_dump:";

/// What the host does to the VM now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Qmp(Command),
    /// A wake to the init on hvc0 (or the control port): [`Message::Dump`]
    /// or [`Message::Stop`].
    Wake(Message),
    Kill,
}

/// Why the host ended the VM itself, if it did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostStop {
    /// `--timeout` passed.
    Timeout,
    /// A stop signal reached the host (the first one's number); `killed`
    /// when QEMU had to be killed (a second signal, or no EXIT in time).
    Signal { signal: i32, killed: bool },
    /// The user typed Ctrl-A X in shell mode.
    Quit,
    /// QEMU said the guest cannot go on (paused on a disk error, a STOP,
    /// a panic) before its EXIT: the host ended the run at once.
    Halted,
}

#[derive(Debug, Default)]
pub struct Stopper {
    deadline: Option<Instant>,
    exit_at: Option<Instant>,
    signal_at: Option<Instant>,
    quit_at: Option<Instant>,
    halted_at: Option<Instant>,
    early_panic_at: Option<Instant>,
    /// At the timeout: when the dump, then the stop, were asked for.
    dump_at: Option<Instant>,
    /// The last line of a debug dump the host has read.
    dump_output_at: Option<Instant>,
    wake_stop_at: Option<Instant>,
    killed: bool,
    pub host_stop: Option<HostStop>,
}

impl Stopper {
    pub fn new(deadline: Option<Instant>) -> Stopper {
        Stopper {
            deadline,
            ..Stopper::default()
        }
    }

    /// A line of a debug dump reached the host.
    pub fn on_dump_output(&mut self, now: Instant) {
        self.dump_output_at = Some(now);
    }

    /// EXIT was decoded (and acknowledged).
    pub fn on_exit(&mut self, now: Instant) {
        self.exit_at.get_or_insert(now);
    }

    /// QEMU said the guest cannot go on: nothing more will come from it,
    /// so QEMU is quit now. The verdict is the halt unless the run had
    /// ended already (EXIT came, or another stop was under way).
    pub fn on_halt(&mut self, now: Instant) {
        if self.halted_at.is_some() {
            return;
        }
        self.halted_at = Some(now);
        if self.exit_at.is_none() {
            self.host_stop.get_or_insert(HostStop::Halted);
        }
    }

    /// The kernel panicked before the init's first frame: it cannot go
    /// on, and may not reboot by itself. The verdict is the kernel's (the
    /// links say it), not the host's.
    pub fn on_early_panic(&mut self, now: Instant) {
        self.early_panic_at.get_or_insert(now);
    }

    /// A stop signal: the first asks the guest to stop, a second kills.
    /// SIGUSR1 asks for a debug dump and nothing else.
    pub fn on_signal(&mut self, signal: i32, now: Instant) -> Option<Action> {
        if signal == SIGUSR1 {
            return Some(Action::Wake(Message::Dump));
        }
        match self.host_stop {
            Some(HostStop::Signal { .. }) => self.kill(),
            _ => {
                self.host_stop = Some(HostStop::Signal {
                    signal,
                    killed: false,
                });
                self.signal_at = Some(now);
                // The guest already sent EXIT: it is stopping anyway.
                let stopping = self.exit_at.is_some() || self.killed;
                (!stopping).then_some(Action::Qmp(Command::CtrlAltDelete))
            }
        }
    }

    /// Ctrl-A X: QEMU ends now, as in QEMU's own console.
    pub fn on_quit(&mut self) -> Option<Action> {
        if self.killed {
            return None;
        }
        self.host_stop.get_or_insert(HostStop::Quit);
        self.kill()
    }

    /// What the time calls for: the deadline, a guest slow to power off
    /// or to answer a stop signal, a QEMU slow to quit.
    pub fn on_tick(&mut self, now: Instant) -> Option<Action> {
        if self.killed {
            return None;
        }
        let passed = |at: Option<Instant>, wait: Duration| at.is_some_and(|t| now >= t + wait);
        // A halted guest takes no wake and sends nothing: quit, then kill.
        if self.halted_at.is_some() || passed(self.early_panic_at, EARLY_PANIC_WAIT) {
            return match self.quit_at {
                None => {
                    self.quit_at = Some(now);
                    Some(Action::Qmp(Command::Quit))
                }
                Some(_) if passed(self.quit_at, QUIT_WAIT) => self.kill(),
                Some(_) => None,
            };
        }
        if self.deadline.is_some_and(|d| now >= d) {
            // After EXIT everything has arrived: the payload's code stands.
            if self.exit_at.is_some() {
                return self.kill();
            }
            self.host_stop.get_or_insert(HostStop::Timeout);
            return self.at_timeout(now);
        }
        if passed(self.quit_at, QUIT_WAIT)
            || (self.exit_at.is_none() && passed(self.signal_at, STOP_WAIT))
        {
            return self.kill();
        }
        if self.quit_at.is_none() && passed(self.exit_at, POWER_OFF_WAIT) {
            self.quit_at = Some(now);
            return Some(Action::Qmp(Command::Quit));
        }
        None
    }

    /// Past the deadline without EXIT: a dump first, then an orderly stop,
    /// then a kill, each after its wait.
    fn at_timeout(&mut self, now: Instant) -> Option<Action> {
        let Some(dump_at) = self.dump_at else {
            self.dump_at = Some(now);
            return Some(Action::Wake(Message::Dump));
        };
        let dump_over = match self.dump_output_at {
            Some(last) => now >= last + DUMP_QUIET,
            None => now >= dump_at + DUMP_START_WAIT,
        };
        match self.wake_stop_at {
            None if dump_over || now >= dump_at + DUMP_WAIT => {
                self.wake_stop_at = Some(now);
                Some(Action::Wake(Message::Stop))
            }
            Some(at) if now >= at + STOP_WAIT => self.kill(),
            _ => None,
        }
    }

    fn kill(&mut self) -> Option<Action> {
        self.killed = true;
        if let Some(HostStop::Signal { killed, .. }) = &mut self.host_stop {
            *killed = true;
        }
        Some(Action::Kill)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn a_guest_that_does_not_power_off_is_quit_then_killed() {
        let t0 = Instant::now();
        let mut s = Stopper::new(Some(t0 + secs(100)));
        s.on_exit(t0);
        assert_eq!(s.on_tick(t0 + secs(4)), None);
        assert_eq!(s.on_tick(t0 + secs(5)), Some(Action::Qmp(Command::Quit)));
        assert_eq!(s.on_tick(t0 + secs(6)), None);
        assert_eq!(s.on_tick(t0 + secs(8)), Some(Action::Kill));
        assert_eq!(s.on_tick(t0 + secs(9)), None);
        assert_eq!(s.host_stop, None, "the payload's code stands");
    }

    #[test]
    fn the_deadline_dumps_then_stops_then_kills_and_is_the_verdict() {
        let t0 = Instant::now();
        let mut s = Stopper::new(Some(t0 + secs(10)));
        assert_eq!(s.on_tick(t0 + secs(10)), Some(Action::Wake(Message::Dump)));
        assert_eq!(s.host_stop, Some(HostStop::Timeout));
        // The dump's lines keep coming until 13.6 s, then stop.
        for tenth in 105..=136 {
            s.on_dump_output(t0 + Duration::from_millis(tenth * 100));
            assert_eq!(s.on_tick(t0 + Duration::from_millis(tenth * 100)), None);
        }
        assert_eq!(
            s.on_tick(t0 + Duration::from_millis(14_000)),
            None,
            "quiet for 400 ms"
        );
        assert_eq!(
            s.on_tick(t0 + Duration::from_millis(14_100)),
            Some(Action::Wake(Message::Stop)),
            "quiet for 500 ms: the dump is over"
        );
        assert_eq!(s.on_tick(t0 + secs(29)), None, "the stop's wait");
        assert_eq!(
            s.on_tick(t0 + Duration::from_millis(29_100)),
            Some(Action::Kill)
        );
        assert_eq!(s.host_stop, Some(HostStop::Timeout));
    }

    #[test]
    fn without_a_dump_the_stop_comes_soon_and_a_long_dump_is_cut_at_its_bound() {
        let t0 = Instant::now();
        let mut s = Stopper::new(Some(t0 + secs(10)));
        s.on_tick(t0 + secs(10));
        assert_eq!(s.on_tick(t0 + secs(11)), None);
        assert_eq!(s.on_tick(t0 + secs(12)), Some(Action::Wake(Message::Stop)));
        let mut s = Stopper::new(Some(t0 + secs(10)));
        s.on_tick(t0 + secs(10));
        for tenth in 101..150 {
            s.on_dump_output(t0 + Duration::from_millis(tenth * 100));
            assert_eq!(s.on_tick(t0 + Duration::from_millis(tenth * 100)), None);
        }
        assert_eq!(s.on_tick(t0 + secs(15)), Some(Action::Wake(Message::Stop)));
    }

    #[test]
    fn a_guest_that_stops_after_the_timeout_is_ended_and_still_timed_out() {
        let t0 = Instant::now();
        let mut s = Stopper::new(Some(t0 + secs(10)));
        s.on_tick(t0 + secs(10));
        s.on_tick(t0 + secs(15));
        s.on_exit(t0 + secs(16));
        assert_eq!(s.on_tick(t0 + secs(16)), Some(Action::Kill));
        assert_eq!(s.host_stop, Some(HostStop::Timeout));
    }

    #[test]
    fn sigusr1_asks_for_a_dump_and_nothing_else() {
        let t0 = Instant::now();
        let mut s = Stopper::new(None);
        assert_eq!(s.on_signal(SIGUSR1, t0), Some(Action::Wake(Message::Dump)));
        assert_eq!(s.host_stop, None);
        assert_eq!(s.on_tick(t0 + secs(60)), None);
    }

    #[test]
    fn exit_before_the_deadline_keeps_the_payloads_code() {
        let t0 = Instant::now();
        let mut s = Stopper::new(Some(t0 + secs(10)));
        s.on_exit(t0 + secs(9));
        assert_eq!(s.on_tick(t0 + secs(11)), Some(Action::Kill));
        assert_eq!(s.host_stop, None);
    }

    #[test]
    fn a_signal_stops_in_order_and_a_second_kills() {
        let t0 = Instant::now();
        let mut s = Stopper::new(None);
        assert_eq!(
            s.on_signal(15, t0),
            Some(Action::Qmp(Command::CtrlAltDelete))
        );
        assert_eq!(s.on_tick(t0 + secs(9)), None);
        assert_eq!(s.on_signal(2, t0 + secs(9)), Some(Action::Kill));
        assert_eq!(
            s.host_stop,
            Some(HostStop::Signal {
                signal: 15,
                killed: true
            })
        );
    }

    #[test]
    fn ctrl_a_x_kills_once_and_is_the_verdict() {
        let t0 = Instant::now();
        let mut s = Stopper::new(Some(t0 + secs(10)));
        assert_eq!(s.on_quit(), Some(Action::Kill));
        assert_eq!(s.on_quit(), None);
        assert_eq!(s.on_tick(t0 + secs(11)), None);
        assert_eq!(s.host_stop, Some(HostStop::Quit));
    }

    #[test]
    fn a_halted_guest_is_quit_at_once_then_killed_and_is_the_verdict() {
        let t0 = Instant::now();
        let mut s = Stopper::new(Some(t0 + secs(90)));
        s.on_halt(t0 + secs(3));
        assert_eq!(s.on_tick(t0 + secs(3)), Some(Action::Qmp(Command::Quit)));
        assert_eq!(s.on_tick(t0 + secs(5)), None);
        assert_eq!(s.on_tick(t0 + secs(6)), Some(Action::Kill));
        assert_eq!(s.host_stop, Some(HostStop::Halted));
    }

    #[test]
    fn a_halt_after_exit_or_a_timeout_hurries_the_end_but_keeps_its_verdict() {
        let t0 = Instant::now();
        let mut s = Stopper::new(Some(t0 + secs(90)));
        s.on_exit(t0);
        s.on_halt(t0 + secs(1));
        assert_eq!(s.on_tick(t0 + secs(1)), Some(Action::Qmp(Command::Quit)));
        assert_eq!(s.host_stop, None, "the payload's code stands");
        let mut s = Stopper::new(Some(t0 + secs(10)));
        assert_eq!(s.on_tick(t0 + secs(10)), Some(Action::Wake(Message::Dump)));
        s.on_halt(t0 + secs(11));
        assert_eq!(s.on_tick(t0 + secs(11)), Some(Action::Qmp(Command::Quit)));
        assert_eq!(s.on_tick(t0 + secs(14)), Some(Action::Kill));
        assert_eq!(s.host_stop, Some(HostStop::Timeout));
    }

    #[test]
    fn a_kernel_that_panicked_before_the_init_gets_a_moment_then_is_quit() {
        let t0 = Instant::now();
        let mut s = Stopper::new(Some(t0 + secs(240)));
        s.on_early_panic(t0 + secs(4));
        assert_eq!(s.on_tick(t0 + Duration::from_millis(5_900)), None);
        assert_eq!(s.on_tick(t0 + secs(6)), Some(Action::Qmp(Command::Quit)));
        assert_eq!(s.on_tick(t0 + secs(9)), Some(Action::Kill));
        assert_eq!(s.host_stop, None, "the kernel's panic is the verdict");
    }

    #[test]
    fn a_guest_silent_after_a_signal_is_killed() {
        let t0 = Instant::now();
        let mut s = Stopper::new(None);
        s.on_signal(1, t0);
        assert_eq!(s.on_tick(t0 + secs(14)), None);
        assert_eq!(s.on_tick(t0 + secs(15)), Some(Action::Kill));
        let mut s = Stopper::new(None);
        s.on_signal(1, t0);
        s.on_exit(t0 + secs(2));
        assert_eq!(
            s.on_tick(t0 + secs(15)),
            Some(Action::Qmp(Command::Quit)),
            "EXIT came: quit, no kill"
        );
        assert_eq!(
            s.host_stop,
            Some(HostStop::Signal {
                signal: 1,
                killed: false
            })
        );
    }
}
