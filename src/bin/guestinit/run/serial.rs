//! Reading the serial captures after a run: the init's `PANIC:` and `FATAL:`
//! lines on COM2, and the tail of the kernel console on COM1.

use std::fs;
use std::path::Path;

/// The capture at `path` as text; empty if QEMU never wrote it.
pub fn read_log(path: &Path) -> String {
    fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// The first line that starts with `prefix` (serial lines may end in `\r`).
pub fn first_line_starting<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    text.lines()
        .map(|l| l.trim_end_matches('\r'))
        .find(|l| l.starts_with(prefix))
}

/// The last `n` lines of `text`.
pub fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<_> = text.lines().map(|l| l.trim_end_matches('\r')).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_first_prefixed_line() {
        let com2 = "boot\r\nwarn: x\r\nPANIC: init: oops at main.rs:3\r\nPANIC: second\r\n";
        assert_eq!(
            first_line_starting(com2, "PANIC:"),
            Some("PANIC: init: oops at main.rs:3")
        );
        assert_eq!(first_line_starting(com2, "FATAL:"), None);
        assert_eq!(first_line_starting(" PANIC: indented", "PANIC:"), None);
    }

    #[test]
    fn keeps_the_tail() {
        let text: String = (1..=30).map(|i| format!("line {i}\r\n")).collect();
        let tail = last_lines(&text, 20);
        assert!(tail.starts_with("line 11\nline 12"));
        assert!(tail.ends_with("line 30"));
        assert_eq!(last_lines("a\nb", 20), "a\nb");
        assert_eq!(last_lines("", 20), "");
    }
}
