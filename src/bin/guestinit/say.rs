//! The host's own lines on stderr and stdout, written without std's
//! `eprintln!`/`println!`: those panic when the reader has gone
//! (`guestinit run -v 2>&1 | grep -m1 ...` closes the pipe), and a panic
//! aborts the tool. A line nobody reads is dropped; the run goes on and its
//! status still tells the outcome.

/// Like `eprint!`, but a closed or failing stderr is not an error.
macro_rules! say_err {
    ($($arg:tt)*) => {{
        use ::std::io::Write as _;
        let _ = ::std::write!(::std::io::stderr().lock(), $($arg)*);
    }};
}

/// Like `eprintln!`, but a closed or failing stderr is not an error.
macro_rules! say_errln {
    () => { $crate::say::say_err!("\n") };
    ($($arg:tt)*) => {{
        use ::std::io::Write as _;
        let _ = ::std::writeln!(::std::io::stderr().lock(), $($arg)*);
    }};
}

/// Like `print!`, but a closed stdout is not a panic.
macro_rules! say_out {
    ($($arg:tt)*) => {{
        use ::std::io::Write as _;
        let mut out = ::std::io::stdout().lock();
        let _ = ::std::write!(out, $($arg)*).and_then(|()| out.flush());
    }};
}

/// Like `println!`, but a closed stdout is not a panic.
macro_rules! say_outln {
    ($($arg:tt)*) => {{
        use ::std::io::Write as _;
        let mut out = ::std::io::stdout().lock();
        let _ = ::std::writeln!(out, $($arg)*).and_then(|()| out.flush());
    }};
}

pub(crate) use {say_err, say_errln, say_out, say_outln};

#[cfg(test)]
mod tests {
    use std::process::Command;

    /// A closed stderr and stdout neither panic nor abort. The child (this
    /// test binary, re-run) points its own fds 1 and 2 at a pipe whose
    /// reader is gone, after libtest has written its header, then writes.
    #[test]
    fn a_closed_reader_is_no_panic() {
        if std::env::var_os("GUESTINIT_SAY_CHILD").is_some() {
            let (reader, writer) = rustix::pipe::pipe().unwrap();
            drop(reader);
            rustix::stdio::dup2_stdout(&writer).unwrap();
            rustix::stdio::dup2_stderr(&writer).unwrap();
            for _ in 0..1000 {
                super::say_errln!("a line for nobody: {}", 1);
                super::say_outln!("a line for nobody: {}", 2);
            }
            std::process::exit(0);
        }
        let me = std::env::current_exe().unwrap();
        let status = Command::new(me)
            .args([
                "--exact",
                "say::tests::a_closed_reader_is_no_panic",
                "--nocapture",
            ])
            .env("GUESTINIT_SAY_CHILD", "1")
            .status()
            .unwrap();
        assert_eq!(status.code(), Some(0), "{status:?}");
    }
}
