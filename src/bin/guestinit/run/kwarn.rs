//! The kernel's warnings (KWRN frames): each is said on stderr as one
//! summary line and its splat as it arrives, and written to
//! `--kernel-log` when asked. Only counts and the first summary are kept
//! in memory: a kernel that warns without end costs the host nothing
//! but the stderr and the log it writes.

use guestinit::proto::splat::Splat;

use super::diag::Diagnostics;
use super::spool::Spool;
use crate::render::summary;

/// What the run keeps of the kernel's warnings.
#[derive(Debug, Default)]
pub struct KernelWarnings {
    /// Splats received.
    pub count: u64,
    /// The first one's summary line, for the verdict.
    pub first: Option<String>,
    /// KWRN frames whose payload was not a splat.
    pub malformed: u64,
    log: Option<Spool>,
}

impl KernelWarnings {
    /// The warnings of a run that writes them to `log` (`--kernel-log`).
    pub fn new(log: Option<Spool>) -> KernelWarnings {
        KernelWarnings {
            log,
            ..KernelWarnings::default()
        }
    }

    /// The `--kernel-log` file's spool, if the run writes one.
    pub fn log_file(&self) -> Option<&Spool> {
        self.log.as_ref()
    }

    pub fn on_frame(&mut self, payload: &[u8], diag: &Diagnostics) {
        let Some(splat) = Splat::decode(payload) else {
            self.malformed += 1;
            diag.warn(&format!("malformed KWRN frame of {} bytes", payload.len()));
            return;
        };
        self.count += 1;
        let line = summary(&splat);
        let text = String::from_utf8_lossy(splat.text);
        let mut said = format!("guestinit: {line}\n");
        for l in text.lines() {
            said.push_str("  ");
            said.push_str(l);
            said.push('\n');
        }
        diag.text(&said);
        if let Some(log) = &self.log {
            log.push(format!("{line}\n{text}\n").as_bytes());
        }
        self.first.get_or_insert(line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::events::Events;
    use crate::run::spool::Captured;
    use guestinit::proto::splat::Kind;

    #[test]
    fn each_splat_is_a_summary_and_its_lines_on_stderr_and_in_the_log() {
        let (stderr, log) = (Captured::default(), Captured::default());
        let diag = Diagnostics::new(stderr.spool(), Events::new(None));
        let log_spool = log.spool();
        let mut k = KernelWarnings::new(Some(log_spool.clone()));
        let splat = Splat {
            kind: Kind::Warning,
            cut: false,
            seq: 3,
            ts_usec: 12_000_345,
            text: b"WARNING: CPU: 0 PID: 1 at m.c:6 f\nCall Trace:\n",
        };
        let mut buf = [0u8; 200];
        let n = splat.encode(&mut buf).unwrap();
        k.on_frame(&buf[..n], &diag);
        k.on_frame(b"junk", &diag);
        diag.finish(None, || false);
        log_spool.finish(None, || false);
        let line = "kernel warning at 12.000345s: WARNING: CPU: 0 PID: 1 at m.c:6 f";
        assert_eq!((k.count, k.malformed), (1, 1));
        assert_eq!(k.first.as_deref(), Some(line));
        let said = String::from_utf8(stderr.take()).unwrap();
        assert!(
            said.starts_with(&format!(
                "guestinit: {line}\n  WARNING: CPU: 0 PID: 1 at m.c:6 f\n  Call Trace:\n"
            )),
            "{said}"
        );
        assert!(said.contains("malformed KWRN frame of 4 bytes"));
        let logged = String::from_utf8(log.take()).unwrap();
        assert_eq!(
            logged,
            format!("{line}\nWARNING: CPU: 0 PID: 1 at m.c:6 f\nCall Trace:\n\n")
        );
    }
}
