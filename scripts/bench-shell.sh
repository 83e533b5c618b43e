#!/usr/bin/env bash
# Measures `guestinit shell` as a user feels it, through a real PTY (the
# way a terminal runs it): the time from starting `guestinit shell` to the
# shell's prompt (median of RUNS starts), and the keystroke round trip,
# a typed character to its echo on the terminal (median and p90 of KEYS
# keys, one at a time). Numbers, not assertions.
#   scripts/bench-shell.sh            (RUNS=5, KEYS=200 by default)
# GUESTINIT=path measures a copy; extra guestinit options in SHELL_ARGS.
set -euo pipefail
cd "$(dirname "$0")/.."
gi=${GUESTINIT:-target/release/guestinit}
RUNS=${RUNS:-5} KEYS=${KEYS:-200} GI="$gi" SHELL_ARGS="${SHELL_ARGS:-}" python3 - <<'PY'
import os, pty, select, shlex, statistics, sys, time

RUNS, KEYS = int(os.environ["RUNS"]), int(os.environ["KEYS"])
CMD = [os.environ["GI"], "shell", "--timeout", "600"] + shlex.split(os.environ["SHELL_ARGS"])
PROMPT = b"/ # "

def read_until(fd, pattern, seen, limit=600.0):
    """Reads the terminal until `pattern` is in what came since `seen` bytes."""
    end = time.monotonic() + limit
    buf = bytearray()
    while pattern not in buf[seen:]:
        left = end - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            sys.exit(f"timed out waiting for {pattern!r}: {bytes(buf[-300:])!r}")
        buf += os.read(fd, 4096)
    return buf

def start():
    t0 = time.monotonic()
    pid, fd = pty.fork()
    if pid == 0:
        os.environ["TERM"] = "xterm"
        os.execvp(CMD[0], CMD)
    read_until(fd, PROMPT, 0)
    return pid, fd, time.monotonic() - t0

def stop(pid, fd):
    os.write(fd, b"exit 0\r")
    try:
        while os.read(fd, 4096):
            pass
    except OSError:  # EIO: guestinit ended and closed the terminal
        pass
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status)

prompt_ms = []
for _ in range(RUNS):
    pid, fd, secs = start()
    prompt_ms.append(secs * 1000)
    code = stop(pid, fd)
    assert code == 0, f"guestinit shell exited {code}"

pid, fd, _ = start()
rtt_ms = []
for i in range(KEYS):
    key = b"abcdefghijklmnopqrstuvwxyz"[i % 26 : i % 26 + 1]
    t0 = time.monotonic()
    os.write(fd, key)
    read_until(fd, key, 0, 60)
    rtt_ms.append((time.monotonic() - t0) * 1000)
    if i % 26 == 25:
        os.write(fd, b"\x15")  # Ctrl-U: the line starts over
        time.sleep(0.05)
        while select.select([fd], [], [], 0.05)[0]:
            os.read(fd, 4096)
os.write(fd, b"\x15")
stop(pid, fd)

q = statistics.quantiles(rtt_ms, n=10)
print(f"== guestinit shell, {' '.join(CMD[2:])}")
print(f"start to prompt: median {statistics.median(prompt_ms):.0f} ms of {RUNS} "
      f"(min {min(prompt_ms):.0f}, max {max(prompt_ms):.0f})")
print(f"keystroke to echo: median {statistics.median(rtt_ms):.2f} ms, p90 {q[8]:.2f} ms, "
      f"max {max(rtt_ms):.2f} ms of {KEYS} keys")
PY
