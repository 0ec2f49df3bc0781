"""Feedback as Phoenix annotations, sent through Phoenix's REST API off the request path.

When ``PHOENIX_COLLECTOR_ENDPOINT`` (Phoenix's own variable) or :func:`configure_phoenix`
names a Phoenix server, :func:`~spanstamp.feedback` and :func:`~spanstamp.end_session`
also write a span or session annotation there. Requests go out from one background
thread with a timeout and a few retries; a failure is a warning, never an exception, and
nothing waits for them but :func:`flush_feedback` (also run at exit)::

    configure_phoenix("http://127.0.0.1:6006")
    flush_feedback(timeout=5.0)
"""

from __future__ import annotations

import atexit
import json
import os
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from typing import Any, Final

from spanstamp import rules

ENDPOINT_ENV: Final = "PHOENIX_COLLECTOR_ENDPOINT"
API_KEY_ENV: Final = "PHOENIX_API_KEY"
SPAN_ANNOTATIONS: Final = "/v1/span_annotations"
SESSION_ANNOTATIONS: Final = "/v1/session_annotations"
# Requests waiting beyond this many are dropped with a warning: memory stays bounded
# when Phoenix is down for long.
MAX_PENDING: Final = 1000
_RETRY_STATUS: Final = frozenset({408, 425, 429, 500, 502, 503, 504})
_WARN_INTERVAL_S: Final = 60.0


class _Settings:
    __slots__ = ("api_key", "enabled", "endpoint", "retries", "timeout")

    def __init__(self) -> None:
        self.endpoint: str | None = None  # None: PHOENIX_COLLECTOR_ENDPOINT
        self.api_key: str | None = None  # None: PHOENIX_API_KEY
        self.enabled = True
        self.timeout = 5.0
        self.retries = 3


_settings: Final = _Settings()


def configure_phoenix(
    endpoint: str | None = None,
    *,
    api_key: str | None = None,
    enabled: bool | None = None,
    timeout: float | None = None,
    retries: int | None = None,
) -> None:
    """Name the Phoenix server that gets feedback as annotations; ``None`` keeps a setting.

    ``endpoint`` is Phoenix's base URL (a ``/v1/traces`` suffix is dropped); unset, it is
    ``PHOENIX_COLLECTOR_ENDPOINT``. ``enabled=False`` sends nothing, whatever the variables
    say. ``timeout`` (seconds per request) and ``retries`` (attempts) bound each request::

        configure_phoenix("http://127.0.0.1:6006", api_key=os.environ.get("PHOENIX_API_KEY"))
    """
    if endpoint is not None:
        if not isinstance(endpoint, str) or not endpoint.strip().startswith(("http://", "https://")):
            raise ValueError("configure_phoenix(endpoint) must be an http:// or https:// URL")
        _settings.endpoint = endpoint.strip()
    if api_key is not None:
        _settings.api_key = api_key
    if enabled is not None:
        _settings.enabled = bool(enabled)
    if timeout is not None:
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
            raise ValueError("configure_phoenix(timeout) must be a positive number of seconds")
        _settings.timeout = float(timeout)
    if retries is not None:
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 1:
            raise ValueError("configure_phoenix(retries) must be a positive int")
        _settings.retries = retries


def reset_phoenix() -> None:
    """Forget :func:`configure_phoenix` settings: back to the environment (for tests).

    reset_phoenix()
    """
    _settings.__init__()  # type: ignore[misc]


def base_url() -> str | None:
    """The Phoenix server annotations go to, or ``None`` when none is named (or disabled).

    base_url()  # -> "http://127.0.0.1:6006" with PHOENIX_COLLECTOR_ENDPOINT set to it
    """
    if not _settings.enabled:
        return None
    url = _settings.endpoint or os.environ.get(ENDPOINT_ENV, "").strip()
    if not url:
        return None
    url = url.rstrip("/")
    return url[: -len("/v1/traces")] if url.endswith("/v1/traces") else url


def send(path: str, data: dict[str, Any]) -> bool:
    """Queue one annotation (``data``, one item of the request's ``data`` list) for Phoenix.

    Returns at once; ``False`` when no Phoenix is named or the queue is full::

        send(SPAN_ANNOTATIONS, {"span_id": "00f067aa0ba902b7", "name": "thumbs", ...})
    """
    url = base_url()
    if url is None:
        return False
    headers = {"Content-Type": "application/json"}
    key = _settings.api_key if _settings.api_key is not None else os.environ.get(API_KEY_ENV)
    if key:
        headers["Authorization"] = f"Bearer {key}"
    body = json.dumps({"data": [data]}, ensure_ascii=False, allow_nan=False).encode("utf-8", "surrogatepass")
    return _sender.submit(url + path, body, headers)


def flush_feedback(timeout: float = 5.0) -> bool:
    """Wait (at most ``timeout`` seconds) until every queued annotation was sent or given up.

    assert flush_feedback(timeout=5.0)
    """
    return _sender.flush(timeout)


def pending() -> int:
    """How many annotations are queued or in flight.

    pending()  # -> 0 once flushed
    """
    return _sender.pending


class _Sender:
    """One daemon thread posting queued requests in order; started on first use."""

    def __init__(self) -> None:
        self._queue: deque[tuple[str, bytes, dict[str, str]]] = deque()
        self._changed = threading.Condition()
        self.pending = 0
        self._thread: threading.Thread | None = None
        self._warned: dict[str, float] = {}

    def submit(self, url: str, body: bytes, headers: dict[str, str]) -> bool:
        with self._changed:
            if self.pending >= MAX_PENDING:
                self._warn("queue", f"{MAX_PENDING} Phoenix annotations are already waiting; this one is dropped")
                return False
            self._queue.append((url, body, headers))
            self.pending += 1
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="spanstamp-phoenix", daemon=True)
                self._thread.start()
            self._changed.notify_all()
        return True

    def flush(self, timeout: float) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: self.pending == 0, timeout)

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._queue:
                    self._changed.wait()
                url, body, headers = self._queue.popleft()
            try:
                self._deliver(url, body, headers)
            except Exception:  # never let the thread die: later feedback still goes out
                rules.logger.debug("sending a Phoenix annotation failed", exc_info=True)
            finally:
                with self._changed:
                    self.pending -= 1
                    self._changed.notify_all()

    def _deliver(self, url: str, body: bytes, headers: dict[str, str]) -> None:
        problem = ""
        for attempt in range(_settings.retries):
            if attempt:
                time.sleep(min(0.5 * 2 ** (attempt - 1), 4.0))
            request = urllib.request.Request(url, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=_settings.timeout) as response:
                    response.read()
                return
            except urllib.error.HTTPError as exc:
                problem = f"HTTP {exc.code}"
                if exc.code not in _RETRY_STATUS:
                    break  # a request Phoenix refuses stays refused
            except (urllib.error.URLError, OSError) as exc:  # refused, unreachable, timed out
                problem = type(getattr(exc, "reason", exc)).__name__
        self._warn(
            problem,
            f"a Phoenix annotation could not be sent ({problem}, {_settings.retries} attempt(s)); "
            "the feedback span was still exported",
        )

    def _warn(self, kind: str, message: str) -> None:
        # At most one warning per kind of failure a minute: Phoenix down must not flood logs.
        now = time.monotonic()
        last = self._warned.get(kind)
        if last is not None and now - last < _WARN_INTERVAL_S:
            return
        self._warned[kind] = now
        rules.logger.warning(message)

    def forget_warnings(self) -> None:
        self._warned.clear()


_sender: Final = _Sender()


@atexit.register
def _flush_at_exit() -> None:
    if _sender.pending:
        _sender.flush(_settings.timeout)
