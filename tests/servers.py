"""Real servers as child processes for the end-to-end tests: free ports, a clean environment, start and wait.

A helper module, not a test file: tests/phoenix_server.py (Phoenix) and tests/test_mlflow.py
(``mlflow server``) start their backends with it, tests/processes.py ends them, and
tests/test_examples.py takes its clean environment for the chatbot example::

    (port,) = free_ports(1)
    with server_process([sys.executable, "-m", "my.server", str(port)], env=clean_env("OTEL_"),
                        log=tmp_path / "server.log", ready_url=f"http://127.0.0.1:{port}/health", name="my server"):
        ...
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

from processes import stop

# The first start of a backend creates and migrates its database; 8 agents share 2 cores here.
READY_TIMEOUT_S = 180


def free_ports(count: int) -> list[int]:
    """``count`` different free TCP ports on 127.0.0.1, for a server to bind.

    Example::

        http_port, grpc_port = free_ports(2)
    """
    # Held open together, so the ports differ; released just before the server binds them.
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def clean_env(*prefixes: str) -> dict[str, str]:
    """This process's environment without the variables whose names start with one of ``prefixes``.

    Example::

        env = clean_env("OTEL_", "OPENAI_") | {"OTEL_EXPORTER_OTLP_ENDPOINT": url}
    """
    return {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}


def wait_until_ready(ready_url: str, process: subprocess.Popen[bytes], log: Path, name: str) -> None:
    """Return once GET ``ready_url`` answers 200; fail the test, with the log's tail, if ``process``
    exits first or time runs out.

    Example::

        wait_until_ready(f"{url}/readyz", process, tmp_path / "phoenix.log", "Phoenix")
    """
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{name} exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(ready_url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    pytest.fail(f"{name} was not ready in time:\n{log.read_text()[-3000:]}")


@contextmanager
def server_process(
    command: Sequence[str],
    *,
    env: dict[str, str],
    log: Path,
    ready_url: str,
    name: str,
    cwd: Path | None = None,
    start_new_session: bool = False,
    stop_with: Callable[[subprocess.Popen[bytes]], None] = stop,
) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``command`` with its output in ``log``, wait until it is ready, and stop it (``stop_with``) on exit.

    Example::

        with server_process(command, env=env, log=log, ready_url=f"{url}/health", name="mlflow server"):
            ...
    """
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=start_new_session
        )
        try:
            wait_until_ready(ready_url, process, log, name)
            yield process
        finally:
            stop_with(process)
