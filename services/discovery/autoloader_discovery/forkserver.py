"""Start flow runs by forking a process that has already imported Prefect and the flow.

A new interpreter that imports Prefect and the discovery flow costs about 2 s of CPU on every
flow run (docs/performance.md, "Trigger to flow running"). The Prefect worker's image starts
with `python -m autoloader_discovery.forkserver prefect worker start …`: this process imports
them once, forks a server that keeps them, and becomes the worker. Each flow run's command is
then `python -m autoloader_discovery.forkclient`, a small client that hands the server its
stdin, stdout, stderr, environment and working directory; the server forks a child that runs
`prefect.engine` with them, and the client relays signals to it and exits with its code.

The per-run process that the worker, the watchdog's heartbeat and cancellation rely on is still
there: the client stands for it, the engine child dies with it, and every process here is a
descendant of the worker, so killing the worker's tree kills them all. Without a server (its
variable unset or its socket gone) the client runs `python -m prefect.engine` itself.
"""

from __future__ import annotations

import atexit
import gc
import importlib
import json
import os
import runpy
import select
import shutil
import signal
import socket
import struct
import sys
import tempfile
import threading
import traceback
from pathlib import Path

SOCKET_ENV = "AUTOLOADER_FLOW_FORKSERVER"
ENGINE = "prefect.engine"
# Prefect's engine and the flow, and what the flow's later steps import (the S3 listing, the
# Kafka producer): in a fork they cost nothing.
PRELOAD = (
    "prefect.engine",
    "prefect.flow_engine",
    "autoloader_discovery.flows",
    "autoloader_discovery.listing",
    "aiokafka",
)
# A request is the length of its JSON (environment, working directory) with the client's
# stdin, stdout and stderr attached, then the JSON. The answer is the engine's pid, then, as
# the engine ends, its exit code.
SIZE = struct.Struct("!I")
PID = struct.Struct("!i")
EXIT = struct.Struct("!i")
MAX_REQUEST = 1 << 24


def main(argv: list[str] | None = None) -> None:
    """Import the flow's modules, fork the server, and exec the worker command given."""
    command = sys.argv[1:] if argv is None else argv
    if not command:
        sys.exit("usage: python -m autoloader_discovery.forkserver COMMAND [ARG...]")
    preload()
    path = Path(tempfile.mkdtemp(prefix="autoloader-forkserver-")) / "socket"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(64)
    sys.stdout.flush()
    sys.stderr.flush()
    if os.fork() == 0:
        try:
            serve(listener, ENGINE)
        finally:
            shutil.rmtree(path.parent, ignore_errors=True)
            os._exit(0)
    listener.close()
    os.environ[SOCKET_ENV] = str(path)
    os.execvp(command[0], command)


def preload() -> None:
    """Import `PRELOAD`, then move every object to the collector's permanent generation: a
    child's garbage collections then leave them, and the memory pages they sit on, alone.
    Otherwise each flow run's first collections wrote to every page it shares with the
    server, and copied it (about 0.1 s of CPU a run, docs/performance.md)."""
    for module in PRELOAD:
        importlib.import_module(module)
    gc.freeze()


def serve(listener: socket.socket, module: str) -> None:
    """Fork a child per client until the process that started this server is gone."""
    parent = os.getppid()
    signal.signal(signal.SIGCHLD, _reap)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a ^C to the worker's group is the worker's
    listener.settimeout(1.0)
    while os.getppid() == parent:
        try:
            connection, _ = listener.accept()
        except TimeoutError:
            continue
        with connection:
            connection.settimeout(None)
            try:
                _fork_child(connection, listener, module)
            except (OSError, ValueError) as error:  # that client runs nothing; the next may
                print(f"flow-run fork server: a request failed: {error!r}", file=sys.stderr)


def _reap(signum: int, frame: object) -> None:
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass


def _fork_child(connection: socket.socket, listener: socket.socket, module: str) -> None:
    header, fds, _, _ = socket.recv_fds(connection, SIZE.size, 3)
    try:
        if len(fds) != 3 or len(header) != SIZE.size:
            raise ValueError("a request without its length or its three descriptors")
        request = json.loads(_request(connection, SIZE.unpack(header)[0]))
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    client_pid = struct.unpack(
        "3i", connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    )[0]
    child = os.fork()
    if child == 0:
        listener.close()
        _run_child(connection, fds, request, client_pid, module)
    for fd in fds:
        os.close(fd)
    connection.sendall(PID.pack(child))


def receive(connection: socket.socket, size: int) -> bytes | None:
    """Exactly ``size`` bytes, or None if the other side hung up first."""
    data = b""
    while len(data) < size:
        chunk = connection.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def _request(connection: socket.socket, size: int) -> bytes:
    if size > MAX_REQUEST:
        raise ValueError(f"a request of {size} bytes")
    data = receive(connection, size)
    if data is None:
        raise ValueError("the client hung up mid-request")
    return data


def _run_child(
    connection: socket.socket, fds: list[int], request: dict[str, object], client: int, module: str
) -> None:
    """In the forked child: become the client's process and run the engine; never returns."""
    code = 1
    try:
        for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, signal.SIG_DFL)
        for target, fd in enumerate(fds):  # received above 2: the server's stdio is open
            if fd != target:
                os.dup2(fd, target)
                os.close(fd)
        _die_with(client)
        os.chdir(str(request["cwd"]))
        os.environ.clear()
        os.environ.update(dict(request["env"]))  # type: ignore[call-overload]
        _refresh_prefect_settings()
        sys.argv = [module]
        code = _run_module(module)
        _finish()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            connection.sendall(EXIT.pack(code))
        finally:
            os._exit(code)


def _finish() -> None:
    """What an interpreter does as it exits, and `os._exit` would skip: wait for the threads
    that must end (Prefect's log worker sends the run's last lines to its API from one, as
    a thread exit hook), as multiprocessing's forked children do, then run the atexit
    handlers, as `python -m prefect.engine` would."""
    try:
        threading._shutdown()  # type: ignore[attr-defined]
        atexit._run_exitfuncs()
    except BaseException:
        traceback.print_exc()


def _refresh_prefect_settings() -> None:
    """Prefect read its settings from the server's environment when it was imported: read
    them again from the flow run's (the deployment's job variables may set some)."""
    context = sys.modules.get("prefect.context")
    if context is not None:
        context.refresh_global_settings_context()


def _run_module(module: str) -> int:
    # Run as `python -m` runs it: as __main__, from a fresh execution of its code. The copy the
    # preload imported stays with the modules that imported it.
    sys.modules.pop(module, None)
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    except BaseException:
        traceback.print_exc()
        return 1
    return 0


def _die_with(client: int) -> None:
    """Kill this process when the client does (a SIGKILL to it cannot be relayed)."""
    watched = os.pidfd_open(client)

    def watch() -> None:
        select.select([watched], [], [])
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="forkserver-client-watch", daemon=True).start()


if __name__ == "__main__":
    main()
