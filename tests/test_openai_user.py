"""OpenAI's ``safety_identifier=`` / ``user=`` as the user id of the call's spans (opt-in).

Real openai client against the loopback stub, real instrumentors, both setup orders:
spanstamp wrapping ``create`` before the instrumentor and after it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from openai import AsyncOpenAI, OpenAI
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import spanstamp
from llm_stack import HTTPX, OPENAI_V2, OPENINFERENCE, STUB_MODEL, Instrumentation, instrumented, serve_stub
from spanstamp.integrations import openai as integration

MESSAGES = [{"role": "user", "content": "hello"}]
STACKS = {
    "openinference": [OPENINFERENCE, HTTPX],
    "openai-v2": [OPENAI_V2, HTTPX],
    "both": [OPENAI_V2, OPENINFERENCE, HTTPX],
}


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with serve_stub() as url:
        yield url


@pytest.fixture(autouse=True)
def _restore_create() -> Iterator[None]:
    # Wrappers stack on openai's classes process-wide. An instrumentor's uninstrument
    # removes the OUTERMOST wrapper, which may be ours: put the methods back as they were.
    import importlib

    owners = [getattr(importlib.import_module(m), c) for m, c, _ in integration._TARGETS]
    saved = [(owner, owner.__dict__["create"]) for owner in owners]
    yield
    for owner, create in saved:
        owner.create = create


class Setup:
    def __init__(self, stack: list[Instrumentation], order: str, **options: Any) -> None:
        self.stack = stack
        self.order = order
        self.options = {"openai_user_ids": True, **options}
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))

    def __enter__(self) -> Setup:
        self._instrumented = instrumented(self.stack, self.provider)
        if self.order == "spanstamp-first":
            spanstamp.install(self.provider, **self.options)
            self._instrumented.__enter__()
        else:
            self._instrumented.__enter__()
            spanstamp.install(self.provider, **self.options)
        return self

    def __exit__(self, *exc: object) -> None:
        self._instrumented.__exit__(*exc)
        self.provider.shutdown()

    def user_ids(self) -> dict[str, object]:
        spans = self.exporter.get_finished_spans()
        assert len(spans) == len(self.stack), [s.name for s in spans]
        return {s.name: (s.attributes or {}).get("user.id") for s in spans}


@pytest.mark.parametrize("order", ["spanstamp-first", "instrumentors-first"])
@pytest.mark.parametrize("stack", list(STACKS))
def test_request_user_stamps_every_span_of_the_call(base_url: str, stack: str, order: str) -> None:
    with Setup(STACKS[stack], order) as setup:
        client = OpenAI(base_url=base_url, api_key="offline", max_retries=0)
        client.chat.completions.create(model=STUB_MODEL, messages=MESSAGES, safety_identifier="u-42")
        assert set(setup.user_ids().values()) == {"u-42"}


@pytest.mark.parametrize("order", ["spanstamp-first", "instrumentors-first"])
def test_async_stream_with_legacy_user_argument(base_url: str, order: str) -> None:
    async def call() -> None:
        client = AsyncOpenAI(base_url=base_url, api_key="offline", max_retries=0)
        stream = await client.chat.completions.create(model=STUB_MODEL, messages=MESSAGES, user=" u-7 ", stream=True)
        async for _ in stream:
            pass

    with Setup(STACKS["both"], order) as setup:
        asyncio.run(call())
        assert set(setup.user_ids().values()) == {"u-7"}


@pytest.mark.parametrize("order", ["spanstamp-first", "instrumentors-first"])
def test_explicit_user_scope_wins_over_the_request(base_url: str, order: str) -> None:
    with Setup(STACKS["both"], order) as setup:
        client = OpenAI(base_url=base_url, api_key="offline", max_retries=0)
        with spanstamp.using_user("explicit"):
            client.chat.completions.create(model=STUB_MODEL, messages=MESSAGES, safety_identifier="u-42")
        assert set(setup.user_ids().values()) == {"explicit"}


def test_application_span_outside_the_call_is_not_stamped(base_url: str) -> None:
    with Setup(STACKS["both"], "spanstamp-first") as setup:
        client = OpenAI(base_url=base_url, api_key="offline", max_retries=0)
        tracer = setup.provider.get_tracer("app")
        with tracer.start_as_current_span("handler"):
            client.chat.completions.create(model=STUB_MODEL, messages=MESSAGES, safety_identifier="u-42")
        spans = {s.name: dict(s.attributes or {}) for s in setup.exporter.get_finished_spans()}
        assert "user.id" not in spans.pop("handler")
        assert {attrs.get("user.id") for attrs in spans.values()} == {"u-42"}


def test_without_the_option_the_request_user_is_not_taken(base_url: str) -> None:
    with Setup(STACKS["both"], "instrumentors-first", openai_user_ids=False) as setup:
        client = OpenAI(base_url=base_url, api_key="offline", max_retries=0)
        client.chat.completions.create(model=STUB_MODEL, messages=MESSAGES, safety_identifier="u-42")
        assert set(setup.user_ids().values()) == {None}


def test_a_bad_request_user_is_reported_and_the_call_goes_on(base_url: str, caplog: pytest.LogCaptureFixture) -> None:
    with Setup(STACKS["openinference"], "spanstamp-first") as setup:
        client = OpenAI(base_url=base_url, api_key="offline", max_retries=0)
        reply = client.chat.completions.create(model=STUB_MODEL, messages=MESSAGES, user="   ")
        assert reply.choices[0].message.content == "You said: hello"
        assert set(setup.user_ids().values()) == {None}
    assert "openai create(user)" in caplog.text
