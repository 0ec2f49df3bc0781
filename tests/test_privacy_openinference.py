"""With user-id hashing on, the raw user id leaves the process nowhere (issue 10, finding 3).

The real stack: ``spanstamp.configure(hash_user_ids=KEY)`` exporting over OTLP/HTTP to
the loopback receiver, OpenInference's real OpenAI instrumentor, the real ``openai``
client against the stub, and OpenTelemetry's real httpx instrumentations, which inject
``traceparent`` and ``baggage`` into outgoing calls. For each way a user id enters
(a user scope, metadata's ``user_id``, ``using_attributes(user_id=..., propagate=True)``
around an instrumented httpx call, OpenAI's ``user=`` and ``safety_identifier=`` with
``openai_user_ids=True``) the raw id must be in none of:

- the exported OTLP request bytes, as the receiver got them;
- the log records (every logger, INFO and up; spanstamp's at DEBUG);
- the headers the stub received, and its bodies where the application did not put the
  id into the request itself (``user=`` asks OpenAI to get it).

OpenInference's tracer copies the Context's ``user.id`` and ``metadata`` onto its spans
after spanstamp stamped them, and records the request's parameters: on main the raw id
is in the exported bytes.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote, quote_plus

import httpx
import pytest
from openai import OpenAI
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.sdk.trace import TracerProvider

import spanstamp
from hostile import restore_settings, settings_snapshot
from llm_stack import HTTPX, OPENINFERENCE, STUB_MODEL, Instrumentation, instrumented, serve_stub
from otlp_receiver import OtlpHttpReceiver
from spanstamp.integrations import openai as integration

KEY = "privacy-openinference-key-0123456789abcdef"
RAW = "raw.user.4f7c@example.com"
# The id as it would look in a header or a URL-encoded body.
FORMS = {RAW, quote_plus(RAW), quote(RAW, safe="")}

PLAIN_HTTPX = Instrumentation("httpx (plain)", HTTPXClientInstrumentor, "POST", "opentelemetry.instrumentation.httpx")


@pytest.fixture(autouse=True)
def _restore_openai_and_propagation() -> Iterator[None]:
    # openai_user_ids wraps openai's create process-wide, and uninstrumenting removes the
    # outermost wrapper, which may be ours: put the methods back. The propagation key is
    # process-wide too.
    owners = [getattr(importlib.import_module(m), c) for m, c, _ in integration._TARGETS]
    saved = [(owner, owner.__dict__["create"]) for owner in owners]
    settings = settings_snapshot()
    yield
    for owner, create in saved:
        owner.create = create
    restore_settings(settings)


class Stack:
    """configure() with hashing over OTLP to the receiver, the stub, the instrumentors."""

    def __init__(self, receiver: OtlpHttpReceiver, base_url: str, **options: Any) -> None:
        self.receiver = receiver
        self.base_url = base_url
        self.provider: TracerProvider = spanstamp.configure(
            service_name="privacy",
            endpoint=receiver.traces_url,
            batch=False,
            set_global=False,
            hash_user_ids=KEY,
            **options,
        )
        self.client = OpenAI(base_url=base_url, api_key="offline", max_retries=0)

    def chat(self, **request: Any) -> None:
        self.client.chat.completions.create(
            model=STUB_MODEL, messages=[{"role": "user", "content": "hello"}], **request
        )

    def retrieval_call(self) -> None:
        """An outgoing call of the app's own, through plain httpx (instrumented)."""
        httpx.post(self.base_url + "/retrieve", json={"q": "hello"}, timeout=10)


def _ways() -> dict[str, tuple[dict[str, Any], Callable[[Stack], None], bool]]:
    # name -> (processor options, what the app does, whether the app itself puts the id
    # into the request body it sends to OpenAI)
    def user_scope(stack: Stack) -> None:
        with spanstamp.using_user(RAW):
            stack.chat()

    def metadata(stack: Stack) -> None:
        with spanstamp.using_metadata({"user_id": RAW, "tier": "pro"}):
            stack.chat()

    def propagating(stack: Stack) -> None:
        spanstamp.configure_propagation(user_id_key=KEY)
        with spanstamp.using_attributes(session_id="s-privacy", user_id=RAW, propagate=True):
            stack.retrieval_call()
            stack.chat()

    def openai_user(stack: Stack) -> None:
        stack.chat(user=RAW)

    def openai_safety_identifier(stack: Stack) -> None:
        stack.chat(safety_identifier=RAW)

    return {
        "using_user": ({}, user_scope, False),
        "metadata user_id": ({}, metadata, False),
        "using_attributes propagate=True": ({}, propagating, False),
        "openai user=": ({"openai_user_ids": True}, openai_user, True),
        "openai safety_identifier=": ({"openai_user_ids": True}, openai_safety_identifier, True),
    }


WAYS = _ways()


def _occurrences(data: bytes | str) -> list[str]:
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    return [form for form in FORMS if form in text]


@pytest.mark.parametrize("way", list(WAYS))
def test_the_raw_user_id_reaches_no_exported_byte_log_or_header(
    way: str, http_receiver: OtlpHttpReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    options, act, in_request = WAYS[way]
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger="spanstamp")
    received: list[tuple[str, dict[str, str], bytes]] = []
    with serve_stub(received=received) as base_url:
        stack = Stack(http_receiver, base_url, **options)
        try:
            with instrumented([OPENINFERENCE, HTTPX, PLAIN_HTTPX], stack.provider):
                act(stack)
            stack.provider.force_flush()
        finally:
            stack.provider.shutdown()

    spans = http_receiver.spans
    chat = [span for span in spans if span.name == "ChatCompletion"]
    assert chat, f"no OpenInference span exported: {[span.name for span in spans]}"
    leaks: list[str] = []
    for number, request in enumerate(http_receiver.requests):
        assert request.body, "the receiver keeps each request's body"
        leaks += [f"OTLP request {number}: {form!r}" for form in _occurrences(request.body)]
    if leaks:  # name the attributes that hold it, for the reader of the failure
        leaks += [
            f"span {span.name!r} attribute {key}"
            for span in spans
            for key, value in span.attributes.items()
            if _occurrences(str(value))
        ]
    for record in caplog.records:
        leaks += [f"log record {record.name}: {form!r}" for form in _occurrences(record.getMessage())]
    for path, headers, body in received:
        for name, value in headers.items():
            leaks += [f"stub header {name} ({path}): {form!r}" for form in _occurrences(value)]
        if not (in_request and path.endswith("/chat/completions")):
            leaks += [f"stub body ({path}): {form!r}" for form in _occurrences(body)]
    assert not leaks, f"the raw user id left the process ({way}): {leaks}"
    # The user is there, as its pseudonym, on the span OpenInference wrote.
    pseudonym = spanstamp.pseudonymize(RAW, key=KEY)
    if way != "metadata user_id":
        assert chat[0].attributes.get("user.id") == pseudonym
    if way == "using_attributes propagate=True":
        # The outgoing calls did carry the ids, as baggage: the session, the pseudonym.
        baggage = [headers.get("baggage", "") for _, headers, _ in received]
        assert all(f"user.id={pseudonym}" in value for value in baggage), baggage
        assert {path for path, _, _ in received} >= {"/v1/retrieve", "/v1/chat/completions"}
