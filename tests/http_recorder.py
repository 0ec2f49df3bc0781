"""A real HTTP server on loopback that records the JSON requests it gets (a helper module).

It stands in for Phoenix's REST API where the test is about spanstamp's client: what it
sends, and what it does when the server fails or never answers (a real Phoenix cannot be
made to hang). The real Phoenix runs in tests/test_phoenix.py::

    with HttpRecorder() as server:
        configure_phoenix(server.url)
        ...
        (request,) = server.wait_for(1)
"""

from __future__ import annotations

import http.server
import json
import threading
import time
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RecordedRequest:
    path: str
    headers: dict[str, str]
    body: Any


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"null")
        headers = {name.lower(): value for name, value in self.headers.items()}
        recorder = self.server.recorder
        with recorder.changed:
            recorder.requests.append(RecordedRequest(self.path, headers, body))
            recorder.changed.notify_all()
        if recorder.hang.is_set():
            recorder.release.wait(30)  # answers only once the test lets it (or stops)
        reply = b'{"data": []}'
        try:
            self.send_response(recorder.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up waiting: what a hang tests
            pass

    def log_message(self, format: str, *args: Any) -> None:  # quiet test output
        pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, recorder: HttpRecorder) -> None:
        self.recorder = recorder
        super().__init__(("127.0.0.1", 0), _Handler)


class HttpRecorder:
    """Answers every POST with ``status`` (200), or holds it while ``hang`` is set."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.requests: list[RecordedRequest] = []
        self.changed = threading.Condition()
        self.hang = threading.Event()
        self.release = threading.Event()
        self._server = _Server(self)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def wait_for(self, count: int, timeout: float = 10.0) -> list[RecordedRequest]:
        deadline = time.monotonic() + timeout
        with self.changed:
            while len(self.requests) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"expected {count} request(s), got {len(self.requests)}")
                self.changed.wait(left)
            return list(self.requests)

    def __enter__(self) -> HttpRecorder:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
