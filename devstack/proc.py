"""Starting, finding and stopping the stack's background processes by pid file."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from devstack.layout import Layout

JSONLOG = Path(__file__).with_name("jsonlog.py")


class StackError(RuntimeError):
    """A component could not be installed or started; the message says what to do."""


def pid_file(layout: Layout, name: str) -> Path:
    return layout.run / f"{name}.pid"


def read_pid(layout: Layout, name: str) -> int | None:
    path = pid_file(layout, name)
    try:
        pid = int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if alive(pid) else None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is dead for our purposes
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def spawn(
    layout: Layout,
    name: str,
    argv: Sequence[str],
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> int:
    """Start ``argv`` in its own session, its output going to .local/logs/NAME.log as JSON
    lines (devstack/jsonlog.py copies it there); return its pid."""
    read, write = os.pipe()
    try:
        process = subprocess.Popen(
            list(argv),
            stdout=write,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            cwd=cwd or layout.root,
            start_new_session=True,
        )
        # In a session of its own too: it ends when the last holder of the pipe does.
        subprocess.Popen(
            [sys.executable, str(JSONLOG), name, str(layout.log(name))],
            stdin=read,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    finally:
        os.close(read)
        os.close(write)
    pid_file(layout, name).write_text(str(process.pid))
    return process.pid


def stop(
    layout: Layout, name: str, grace: float = 20.0, sig: signal.Signals = signal.SIGTERM
) -> bool:
    """Signal the process group of NAME, SIGKILL it after ``grace`` seconds. True if it ran."""
    pid = read_pid(layout, name)
    pid_file(layout, name).unlink(missing_ok=True)
    if pid is None:
        return False
    _signal_group(pid, sig)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and _group_alive(pid):
        time.sleep(0.2)
    if _group_alive(pid):
        _signal_group(pid, signal.SIGKILL)
        time.sleep(0.5)
    return True


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)


def _group_alive(pgid: int) -> bool:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until(
    check: Callable[[], bool],
    what: str,
    timeout: float,
    log: Path | None = None,
    pid: int | None = None,
) -> None:
    """Poll ``check`` until it holds; fail naming ``what`` and the log to read."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if pid is not None and not alive(pid):
            time.sleep(0.5)  # the log's relay writes the process's last lines
            raise StackError(f"{what}: the process exited during start-up. {_tail_hint(log)}")
        time.sleep(0.5)
    raise StackError(f"{what}: not healthy after {timeout:.0f}s. {_tail_hint(log)}")


def _tail_hint(log: Path | None) -> str:
    if log is None or not log.exists():
        return ""
    lines = log.read_text(errors="replace").splitlines()[-15:]
    return f"Last lines of {log}:\n" + "\n".join("    " + _message(line) for line in lines)


def _message(line: str) -> str:
    """A log line's message: the logs are JSON lines (devstack/jsonlog.py)."""
    try:
        return str(json.loads(line)["message"])
    except (ValueError, KeyError, TypeError):
        return line


def run(argv: Sequence[str], what: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Run a short command to completion, failing with its output if it fails."""
    result = subprocess.run(list(argv), capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]
    if result.returncode != 0:
        raise StackError(
            f"{what} failed (exit {result.returncode}): {' '.join(argv)}\n"
            f"{result.stdout[-2000:]}{result.stderr[-2000:]}"
        )
    return result  # type: ignore[no-any-return]
