//! `--trace FILE`: the trace lines of COM1, where the init relays
//! trace_pipe beside the kernel's console. A trace line names its task and
//! pid, then its CPU in brackets (`  sleep-74  [001] d..1.  2.5: ...`), a
//! console line begins with its time (`[    2.5] ...`).

/// Whether `line` has the shape of a trace_pipe line.
fn is_trace_line(line: &str) -> bool {
    let mut words = line.split_whitespace();
    let task_pid = words.next().unwrap_or("");
    let pid = task_pid.rsplit_once('-').map_or("", |(_, pid)| pid);
    let cpu = words
        .find(|w| w.starts_with('['))
        .and_then(|w| w.strip_prefix('[')?.strip_suffix(']'));
    !pid.is_empty()
        && pid.bytes().all(|b| b.is_ascii_digit())
        && cpu.is_some_and(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_digit()))
}

/// The trace lines of `com1`, in order, each ending in a newline.
pub fn lines(com1: &str) -> String {
    com1.lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| is_trace_line(l))
        .flat_map(|l| [l, "\n"])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_trace_lines_and_drops_the_console() {
        let com1 = "[    2.500000] Run /init as init process\r\n\
                    \x20          <...>-74      [001] ..... 2.612: tracing_mark_write: hello\r\n\
                    \x20  kworker/0:1-12   (     12) [000] d..1. 3.1: sched_ext_dump: x\r\n\
                    [    3.000000] reboot: Power down\r\n";
        assert_eq!(
            lines(com1),
            "           <...>-74      [001] ..... 2.612: tracing_mark_write: hello\n\
             \x20  kworker/0:1-12   (     12) [000] d..1. 3.1: sched_ext_dump: x\n"
        );
    }
}
