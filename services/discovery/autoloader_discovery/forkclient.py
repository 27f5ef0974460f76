"""A flow run's command: have the worker's fork server run the engine, else run it here.

Imports only the standard library, so that it starts in milliseconds; see
`autoloader_discovery.forkserver`. It stands for the flow run's process: SIGTERM and SIGINT
are relayed to the engine, and it exits with the engine's exit code.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sys

# The protocol's one definition. The module imports only the standard library; Prefect and
# the flow are imported by its `main`, which the client never calls.
from autoloader_discovery.forkserver import EXIT, PID, SIZE, SOCKET_ENV, receive


def main() -> None:
    path = os.environ.get(SOCKET_ENV)
    connection = _connect(path) if path else None
    if connection is None:
        engine = [sys.executable, "-m", "prefect.engine", *sys.argv[1:]]
        os.execv(engine[0], engine)
    assert connection is not None
    with connection:
        sys.exit(_run(connection))


def _connect(path: str) -> socket.socket | None:
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        connection.connect(path)
    except OSError:
        connection.close()
        return None
    return connection


def _run(connection: socket.socket) -> int:
    environment = {name: value for name, value in os.environ.items() if name != SOCKET_ENV}
    request = json.dumps({"env": environment, "cwd": os.getcwd()}).encode()
    socket.send_fds(connection, [SIZE.pack(len(request))], [0, 1, 2])
    connection.sendall(request)
    started = receive(connection, PID.size)
    if started is None:
        print("the flow-run fork server did not start the engine", file=sys.stderr)
        return 1
    pid = int(PID.unpack(started)[0])
    relayed: list[int] = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda received, frame: _relay(pid, received, relayed))
    answer = receive(connection, EXIT.size)
    if answer is not None:
        return int(EXIT.unpack(answer)[0])
    # No code: the engine was killed before it could send one, by the signal relayed if any.
    return 128 + (relayed[-1] if relayed else signal.SIGKILL)


def _relay(pid: int, signum: int, relayed: list[int]) -> None:
    relayed.append(signum)
    with contextlib.suppress(ProcessLookupError):  # it ended meanwhile
        os.kill(pid, signum)


if __name__ == "__main__":
    main()
