"""The flow-run fork server and its client, with a stand-in engine module: what the client is
given back (output, exit code), signals relayed, and an engine that dies with its client."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from autoloader_discovery.forkserver import PRELOAD, SIZE, SOCKET_ENV

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
SERVER = """
import os, socket, sys
sys.path[0] = os.getcwd()  # the checkout, wherever the engine's working directory is
from autoloader_discovery.forkserver import serve
listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
listener.bind(sys.argv[1])
listener.listen(8)
print("listening", flush=True)
serve(listener, "tests.unit.forkserver_engine")
"""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    path = str(tmp_path / "socket")
    process = subprocess.Popen(
        [sys.executable, "-c", SERVER, path], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None and process.stdout.readline() == "listening\n"
        yield path
    finally:
        process.kill()
        process.wait(timeout=10)


def _client(env: dict[str, str], cwd: Path, **popen: object) -> subprocess.Popen[str]:
    return subprocess.Popen(  # type: ignore[call-overload, no-any-return]
        [sys.executable, "-m", "autoloader_discovery.forkclient"],
        cwd=cwd,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:  # a zombie is gone too: it only waits for the server to reap it
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")
    except (FileNotFoundError, ProcessLookupError):  # reaped since, before or after the open
        return True


def _wait_for(predicate: object, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"{what} within {within} s"
        time.sleep(0.05)


def _run_client(env: dict[str, str], cwd: Path, timeout: float = 30) -> tuple[int, str, str]:
    """Run a client to its end: its exit code, stdout and stderr."""
    client = _client(env, cwd)
    out, err = client.communicate(timeout=timeout)
    return client.returncode, out, err


def _waiting_engine(server: str, tmp_path: Path) -> tuple[subprocess.Popen[str], int]:
    """A client whose engine waits for a signal, once the engine is up: the client, the
    engine's pid."""
    pid_file = tmp_path / "engine.pid"
    env = {SOCKET_ENV: server, "ENGINE_MODE": "wait", "ENGINE_PID_FILE": str(pid_file)}
    client = _client(env, tmp_path)
    _wait_for(lambda: pid_file.exists() and pid_file.read_text(), 30, "the engine started")
    return client, int(pid_file.read_text())


def test_the_engine_runs_with_the_clients_environment_output_and_exit_code(
    server: str, tmp_path: Path
) -> None:
    env = {SOCKET_ENV: server, "PREFECT__FLOW_RUN_ID": "run-1", "ENGINE_EXIT": "7"}
    code, out, err = _run_client(env, tmp_path)

    assert code == 7, err
    assert out == f"run run-1 in {tmp_path}\n"
    assert err == "to stderr\n"


def test_the_engine_ends_as_an_interpreter_does_threads_joined_and_atexit_run(
    server: str, tmp_path: Path
) -> None:
    env = {SOCKET_ENV: server, "PREFECT__FLOW_RUN_ID": "run-3", "ENGINE_MODE": "exit-work"}
    code, out, err = _run_client(env, tmp_path)

    assert code == 0, err
    assert out == f"run run-3 in {tmp_path}\nfrom a thread at exit\nfrom atexit\n"


def test_a_sigterm_to_the_client_reaches_the_engine(server: str, tmp_path: Path) -> None:
    client, _ = _waiting_engine(server, tmp_path)

    client.send_signal(signal.SIGTERM)

    assert client.wait(timeout=30) == 70  # the engine's own SIGTERM handler's code


def test_the_engine_dies_with_its_client_even_by_sigkill(server: str, tmp_path: Path) -> None:
    client, engine = _waiting_engine(server, tmp_path)
    assert not _gone(engine)

    client.kill()
    client.wait(timeout=10)

    _wait_for(lambda: _gone(engine), 5, "the engine was killed with its client")


def test_without_a_server_the_client_runs_prefects_engine_itself(tmp_path: Path) -> None:
    env = {SOCKET_ENV: str(tmp_path / "no-such-socket"), "PREFECT__FLOW_RUN_ID": "not-a-uuid"}
    code, out, err = _run_client(env, tmp_path, timeout=120)  # a whole interpreter's start

    assert code == 1
    assert "Invalid flow run id" in out + err


def test_a_broken_request_leaves_the_server_serving_the_next_client(
    server: str, tmp_path: Path
) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as broken:
        broken.connect(server)
        socket.send_fds(broken, [SIZE.pack(10)], [0, 1, 2])
        broken.sendall(b"not json")  # and hangs up two bytes short
    code, out, err = _run_client({SOCKET_ENV: server, "PREFECT__FLOW_RUN_ID": "run-2"}, tmp_path)

    assert (code, out) == (0, f"run run-2 in {tmp_path}\n"), err


def test_the_server_preloads_and_freezes_what_its_children_share() -> None:
    probe = (
        "import gc, sys; from autoloader_discovery.forkserver import preload; preload(); "
        "print(gc.get_freeze_count(), ' '.join(sorted(sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    frozen, modules = result.stdout.splitlines()[-1].split(" ", 1)
    assert int(frozen) > 10_000  # Prefect alone brings far more objects than that
    assert set(PRELOAD) <= set(modules.split())
