"""A tiny OpenAI-compatible server on loopback, so the examples run offline.

It answers ``POST /v1/chat/completions`` (plain and ``stream=true``) by echoing the
last user message; no API key, no network::

    with serve_stub() as base_url:
        client = OpenAI(base_url=base_url, api_key="offline", max_retries=0)
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def _reply_text(request: dict[str, Any]) -> str:
    messages = request.get("messages") or [{}]
    last = next((m for m in reversed(messages) if m.get("role") == "user"), messages[-1])
    return f"You said: {last.get('content', '')}"


class _Handler(BaseHTTPRequestHandler):
    # A reply in several small writes (status and headers, then the body) can wait about
    # 40 ms for the client's delayed ACK under Nagle's algorithm. A buffered writer sends a
    # plain reply in one write (flushed after do_POST); stream chunks are flushed one by one,
    # and go out at once without Nagle.
    wbufsize = -1
    disable_nagle_algorithm = True

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        received = getattr(self.server, "received", None)  # any server class may serve this handler
        if received is not None:
            received.append((self.path, dict(self.headers.items()), raw))
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self.send_error(404)
            return
        request = json.loads(raw or b"{}")
        text = _reply_text(request)
        base = {"id": "chatcmpl-stub", "created": int(time.time()), "model": request.get("model", "stub")}
        if request.get("stream"):
            self._stream(base, text)
            return
        body = json.dumps(
            {
                **base,
                "object": "chat.completion",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 5, "completion_tokens": len(text.split()), "total_tokens": 5},
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _stream(self, base: dict[str, Any], text: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        words = text.split(" ")
        for i, word in enumerate(words):
            delta = {"role": "assistant", "content": word if i == 0 else " " + word}
            chunk = {**base, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta}]}
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.flush()
        last = {
            **base,
            "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
        }
        self.wfile.write(f"data: {json.dumps(last)}\n\ndata: [DONE]\n\n".encode())

    def log_message(self, format: str, *args: Any) -> None:  # keep example output clean
        pass


class _Server(ThreadingHTTPServer):
    # The standard library listens with a backlog of 5: a burst of concurrent clients
    # (the web-app tests send 30 to 50 at once) would see connections reset.
    request_queue_size = 256
    received: list[tuple[str, dict[str, str], bytes]] | None = None


@contextmanager
def serve_stub(received: list[tuple[str, dict[str, str], bytes]] | None = None) -> Iterator[str]:
    """Serve the stub on a free loopback port; yields the ``base_url`` for the OpenAI client.

    ``received`` (optional) gets each request as it arrived: (path, headers, body).
    """
    server = _Server(("127.0.0.1", 0), _Handler)
    server.received = received
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
