//! `--events FILE|-`: the run as JSON lines for CI and harnesses, one
//! object per event, schema in docs/EVENTS.md. Every line has `v` (the
//! schema version), `event` and `t` (seconds since the run began).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use guestinit::wire::Tag;

use super::spool::Spool;
use crate::render;

/// The schema's version: bumped only when a field changes meaning or goes.
pub const VERSION: u32 = 1;

/// The event sink; a no-op without `--events`.
#[derive(Clone)]
pub struct Events {
    out: Option<Spool>,
    started: Instant,
    ended: Arc<AtomicBool>,
}

impl Events {
    pub fn new(out: Option<Spool>) -> Events {
        Events {
            out,
            started: Instant::now(),
            ended: Arc::default(),
        }
    }

    /// Where the lines go, if anywhere.
    pub fn spool(&self) -> Option<&Spool> {
        self.out.as_ref()
    }

    /// One line: `v`, `event`, `t`, then `fields`.
    fn emit(&self, event: &str, fields: Value) {
        let Some(out) = &self.out else { return };
        let mut line = Map::new();
        line.insert("v".into(), VERSION.into());
        line.insert("event".into(), event.into());
        let t = (self.started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0;
        line.insert("t".into(), t.into());
        if let Value::Object(fields) = fields {
            line.extend(fields);
        }
        out.push_line(format!("{}\n", Value::Object(line)).as_bytes());
    }

    /// A guest frame other than output: its event name, tag and fields
    /// as `decode --json` gives them.
    pub fn frame(&self, tag: Tag, payload: &[u8]) {
        let Some(event) = frame_event(tag) else {
            return;
        };
        let mut fields = render::frame_fields(tag, payload);
        if let Value::Object(map) = &mut fields {
            map.insert("tag".into(), tag.to_string().into());
        }
        self.emit(event, fields);
    }

    /// A warning of the host's about the stream (CRC mismatch, garbage).
    pub fn warning(&self, text: &str) {
        self.emit("warning", json!({ "text": text }));
    }

    /// The end, once: a crash or FATAL with its line, then `end`.
    pub fn end(&self, end: &End) {
        if self.ended.swap(true, Ordering::SeqCst) {
            return;
        }
        if let Some((event, text)) = &end.crash {
            self.emit(event, json!({ "text": text }));
        }
        let fields =
            json!({ "exit_code": end.exit_code, "verdict": end.verdict, "error": end.error });
        self.emit("end", fields);
    }

    /// Writes what is queued, for at most a few seconds.
    pub fn close(&self) {
        if let Some(out) = &self.out {
            out.finish(Some(Instant::now() + Duration::from_secs(5)), || false);
        }
    }
}

/// The `end` line's fields (see `Verdict::end`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct End {
    /// What `guestinit` exits with.
    pub exit_code: u8,
    /// The verdict's kind, or `error` for the tool's own failure.
    pub verdict: &'static str,
    /// Why the status is not the payload's code; None when it is.
    pub error: Option<String>,
    /// The init's crash or fatal line, as a `crash` or `fatal` event first.
    pub crash: Option<(&'static str, String)>,
}

/// The event a guest frame is; `None` for the payload's output and the
/// kernel log, which have their own channels.
fn frame_event(tag: Tag) -> Option<&'static str> {
    Some(match tag {
        Tag::SOUT | Tag::SERR | Tag::DMSG | Tag::SCLG => return None,
        // The handover's plumbing: a warm run's events are a cold run's.
        Tag::HRDY => return None,
        Tag::KADR => "kernel_addrs",
        Tag::KBID => "kernel_build_id",
        Tag::SRDY => "ready",
        Tag::LIFE => "life",
        Tag::SCST => "payload_started",
        Tag::SCPP => "payload_drained",
        Tag::TIME => "timeline",
        Tag::WAIT => "wait",
        Tag::EXIT => "exit",
        Tag::KWRN => "kernel_warning",
        _ => "frame",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::spool::Captured;
    use guestinit::wire::msg::{Exit, WaitStatus};

    fn lines(run: impl FnOnce(&Events)) -> Vec<Value> {
        let shared = Captured::default();
        let events = Events::new(Some(shared.spool()));
        run(&events);
        events.close();
        let text = String::from_utf8(shared.take()).unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn frames_become_named_events_and_output_is_left_out() {
        let wait = WaitStatus {
            exit: Exit::Exited(3),
            user_us: 5,
            system_us: 6,
            max_rss_kib: 7,
            init_hwm_kib: 8,
        };
        let got = lines(|e| {
            e.frame(Tag::SOUT, b"out");
            e.frame(Tag::LIFE, &[1]);
            e.frame(Tag::WAIT, &wait.to_bytes());
            e.frame(Tag::EXIT, &3i32.to_le_bytes());
        });
        let names: Vec<_> = got.iter().map(|l| l["event"].as_str().unwrap()).collect();
        assert_eq!(names, ["life", "wait", "exit"]);
        assert!(got.iter().all(|l| l["v"] == VERSION && l["t"].is_f64()));
        assert_eq!(got[0]["phase"], "InitStarted");
        assert_eq!(got[1]["exit_code"], 3);
        assert_eq!(got[1]["max_rss_kib"], 7);
        assert_eq!(got[2]["code"], 3);
    }

    #[test]
    fn a_kernel_splat_is_a_kernel_warning_event_with_its_kind_and_text() {
        use guestinit::proto::splat::{Kind, Splat};
        let splat = Splat {
            kind: Kind::RcuStall,
            cut: true,
            seq: 9,
            ts_usec: 2_500_000,
            text: b"rcu: INFO: rcu_sched detected stalls on CPUs/tasks:\n",
        };
        let mut buf = [0u8; 100];
        let n = splat.encode(&mut buf).unwrap();
        let got = lines(|e| e.frame(Tag::KWRN, &buf[..n]));
        assert_eq!(got[0]["event"], "kernel_warning");
        assert_eq!(
            (&got[0]["kind"], &got[0]["seq"], &got[0]["cut"]),
            (&"rcu_stall".into(), &9.into(), &true.into())
        );
        assert_eq!(
            got[0]["text"],
            "rcu: INFO: rcu_sched detected stalls on CPUs/tasks:\n"
        );
        assert_eq!(
            got[0]["summary"],
            "kernel rcu_stall at 2.500000s: rcu: INFO: rcu_sched detected stalls on CPUs/tasks: (cut: longer than the frame's bound)"
        );
    }

    #[test]
    fn the_end_is_said_once_with_a_crash_line_or_the_hosts_error() {
        let got = lines(|e| {
            e.end(&End {
                exit_code: 253,
                verdict: "init_panic",
                error: Some("init crashed: PANIC: boom".into()),
                crash: Some(("crash", "PANIC: boom".into())),
            });
            e.end(&End {
                exit_code: 0,
                verdict: "exited",
                error: None,
                crash: None,
            });
        });
        assert_eq!(got.len(), 2);
        assert_eq!(got[0]["event"], "crash");
        assert_eq!(got[0]["text"], "PANIC: boom");
        assert_eq!(got[1]["event"], "end");
        assert_eq!(got[1]["exit_code"], 253);
        assert_eq!(got[1]["verdict"], "init_panic");
        assert_eq!(got[1]["error"], "init crashed: PANIC: boom");
        let got = lines(|e| {
            e.end(&End {
                exit_code: 4,
                verdict: "exited",
                error: None,
                crash: None,
            })
        });
        assert_eq!(got[0]["exit_code"], 4);
        assert!(got[0]["error"].is_null());
    }
}
