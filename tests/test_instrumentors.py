"""Every span of a real OpenAI call carries the ids of the scope around it, whoever starts it.

The real ``openai`` client (sync and async, plain and streamed) talks to the examples' stub
on loopback. The real OpenInference and OpenTelemetry (openai-v2) OpenAI instrumentors and
the httpx instrumentation trace it, alone and together. Spans go through spanstamp's OTLP
pipeline to the ``http_receiver`` and are checked there, in each way an application opens a
scope: a ``with`` block, a decorated handler, a fan-out to a thread pool or with
``asyncio.gather``, and streams consumed chunk by chunk.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from openai import AsyncOpenAI, OpenAI
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

import spanstamp
from llm_stack import (
    HTTPX,
    OPENAI_V2,
    OPENINFERENCE,
    STUB_MODEL,
    Instrumentation,
    descendants,
    expected_spans,
    instrumented,
    serve_stub,
)
from otlp_receiver import OtlpHttpReceiver
from spanstamp import from_arg

SESSION, USER = "session.id", "user.id"

# Each alone, all three together, and the two LLM instrumentors in the other order
# (which one wraps the other changes which span is the parent).
STACKS: dict[str, tuple[Instrumentation, ...]] = {
    "openinference": (OPENINFERENCE,),
    "openai-v2": (OPENAI_V2,),
    "httpx": (HTTPX,),
    "openinference+openai-v2+httpx": (OPENINFERENCE, OPENAI_V2, HTTPX),
    "openai-v2+openinference": (OPENAI_V2, OPENINFERENCE),
}


@pytest.fixture(scope="module")
def stub_url() -> Iterator[str]:
    with serve_stub() as base_url:
        yield base_url


class Stack:
    """One test's pipeline: spanstamp's OTLP provider, the instrumentors, the stub's URL."""

    def __init__(
        self, receiver: OtlpHttpReceiver, provider: TracerProvider, used: tuple[Instrumentation, ...], url: str
    ) -> None:
        self.receiver = receiver
        self.used = used
        self.url = url
        self.tracer = provider.get_tracer("app")

    def client(self) -> OpenAI:
        return OpenAI(base_url=self.url, api_key="offline", max_retries=0)

    def async_client(self) -> AsyncOpenAI:
        return AsyncOpenAI(base_url=self.url, api_key="offline", max_retries=0)

    def ask(self, client: OpenAI, question: str, *, stream: bool = False) -> str:
        """One chat call in the app's own span ``ask <question>``; a stream is read chunk by chunk."""
        with self.tracer.start_as_current_span(f"ask {question}"):
            if not stream:
                completion = client.chat.completions.create(model=STUB_MODEL, messages=_messages(question))
                return completion.choices[0].message.content or ""
            chunks = client.chat.completions.create(model=STUB_MODEL, messages=_messages(question), stream=True)
            return "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)

    async def ask_async(self, client: AsyncOpenAI, question: str, *, stream: bool = False) -> str:
        with self.tracer.start_as_current_span(f"ask {question}"):
            if not stream:
                completion = await client.chat.completions.create(model=STUB_MODEL, messages=_messages(question))
                return completion.choices[0].message.content or ""
            chunks = await client.chat.completions.create(model=STUB_MODEL, messages=_messages(question), stream=True)
            return "".join([chunk.choices[0].delta.content or "" async for chunk in chunks if chunk.choices])

    def check(self, question: str, *, session: str | None, user: str | None, parent: str | None = None) -> None:
        """The span ``ask <question>`` and every instrumentor span below it carry exactly these ids."""
        spans = self.receiver.spans
        ask = self.receiver.by_name(f"ask {question}")
        below = descendants(spans, ask)
        assert sorted((span.scope_name, span.name) for span in below) == expected_spans(self.used)
        for span in [ask, *below]:
            where = f"{span.name!r} from {span.scope_name}"
            assert span.attributes.get(SESSION) == session, where
            assert span.attributes.get(USER) == user, where
        if parent is not None:
            handler = self.receiver.by_name(parent)
            assert ask.parent_span_id == handler.span_id
            assert (handler.attributes.get(SESSION), handler.attributes.get(USER)) == (session, user)


def _messages(question: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": question}]


@pytest.fixture(params=list(STACKS))
def stack(request: pytest.FixtureRequest, http_receiver: OtlpHttpReceiver, stub_url: str) -> Iterator[Stack]:
    used = STACKS[request.param]
    # A provider per test, exporting synchronously: a span is at the receiver once it ended.
    provider = spanstamp.configure(
        service_name="instrumentor-matrix", endpoint=http_receiver.traces_url, batch=False, set_global=False
    )
    try:
        with instrumented(used, provider):
            yield Stack(http_receiver, provider, used, stub_url)
    finally:
        provider.shutdown()


# --- A with block ---------------------------------------------------------------------


def _with_block(stack: Stack, question: str, stream: bool) -> str:
    with spanstamp.using_session(f"conv-{question}"), spanstamp.using_user(f"user-{question}"):
        with stack.client() as client:
            return stack.ask(client, question, stream=stream)


async def _async_with_block(stack: Stack, question: str, stream: bool) -> str:
    async with spanstamp.using_session(f"conv-{question}"), spanstamp.using_user(f"user-{question}"):
        async with stack.async_client() as client:
            return await stack.ask_async(client, question, stream=stream)


@pytest.mark.parametrize("client_kind", ["sync", "async"])
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_every_span_of_a_call_in_a_with_block_carries_its_ids(stack: Stack, client_kind: str, stream: bool) -> None:
    question = f"{client_kind}-{'stream' if stream else 'plain'}"
    if client_kind == "sync":
        reply = _with_block(stack, question, stream)
    else:
        reply = asyncio.run(_async_with_block(stack, question, stream))
    assert reply == f"You said: {question}"
    stack.check(question, session=f"conv-{question}", user=f"user-{question}")


# --- A decorated handler --------------------------------------------------------------


@spanstamp.using_session(from_arg("conversation_id"))
@spanstamp.using_user(from_arg("user_id"))
def handle(stack: Stack, conversation_id: str, user_id: str, question: str) -> str:
    with stack.tracer.start_as_current_span(f"handle {question}"), stack.client() as client:
        return stack.ask(client, question)


@spanstamp.using_attributes(session_id=from_arg("conversation_id"), user_id=from_arg("user_id"))
async def handle_async(stack: Stack, conversation_id: str, user_id: str, question: str) -> str:
    with stack.tracer.start_as_current_span(f"handle {question}"):
        async with stack.async_client() as client:
            return await stack.ask_async(client, question, stream=True)


def test_a_decorated_handler_stamps_the_ids_of_each_call(stack: Stack) -> None:
    assert handle(stack, "conv-d1", "user-d1", "d1") == "You said: d1"
    assert handle(stack, conversation_id="conv-d2", user_id="user-d2", question="d2") == "You said: d2"
    assert asyncio.run(handle_async(stack, "conv-d3", "user-d3", "d3")) == "You said: d3"
    for n in (1, 2, 3):
        stack.check(f"d{n}", session=f"conv-d{n}", user=f"user-d{n}", parent=f"handle d{n}")


# --- Fan-out: a thread pool, asyncio.gather -------------------------------------------


@spanstamp.using_session(from_arg("conversation_id"))
@spanstamp.using_user(from_arg("user_id"))
def fan_out_to_threads(
    stack: Stack, conversation_id: str, user_id: str, questions: list[str], meet: Callable[[], object] | None = None
) -> list[str]:
    with stack.tracer.start_as_current_span(f"handle {conversation_id}"), stack.client() as client:
        if meet is not None:
            meet()
        ask = spanstamp.carry_context(stack.ask)
        with ThreadPoolExecutor(max_workers=len(questions)) as pool:
            return [future.result() for future in [pool.submit(ask, client, q) for q in questions]]


@spanstamp.using_attributes(session_id=from_arg("conversation_id"), user_id=from_arg("user_id"))
async def fan_out_with_gather(
    stack: Stack,
    conversation_id: str,
    user_id: str,
    questions: list[str],
    meet: Callable[[], Awaitable[object]] | None = None,
) -> list[str]:
    with stack.tracer.start_as_current_span(f"handle {conversation_id}"):
        async with stack.async_client() as client:
            if meet is not None:
                await meet()
            return list(await asyncio.gather(*(stack.ask_async(client, q) for q in questions)))


def test_a_handler_fanning_out_to_a_thread_pool(stack: Stack) -> None:
    questions = ["t1", "t2", "t3"]
    assert fan_out_to_threads(stack, "conv-t", "user-t", questions) == [f"You said: {q}" for q in questions]
    for question in questions:
        stack.check(question, session="conv-t", user="user-t", parent="handle conv-t")


def test_a_handler_fanning_out_with_gather(stack: Stack) -> None:
    questions = ["g1", "g2", "g3"]
    replies = asyncio.run(fan_out_with_gather(stack, "conv-g", "user-g", questions))
    assert replies == [f"You said: {q}" for q in questions]
    for question in questions:
        stack.check(question, session="conv-g", user="user-g", parent="handle conv-g")


def test_two_sessions_handled_at_once_in_threads_do_not_cross(stack: Stack) -> None:
    # Both handlers wait inside their scopes until the other is inside its own too.
    both_inside = threading.Barrier(2, timeout=10)

    def serve(name: str) -> list[str]:
        return fan_out_to_threads(stack, f"conv-{name}", f"user-{name}", [f"{name}1", f"{name}2"], both_inside.wait)

    # Plain pool threads carry no context: each handler brings its own scope.
    with ThreadPoolExecutor(max_workers=2) as pool:
        replies = list(pool.map(serve, ["x", "y"]))
    assert replies == [["You said: x1", "You said: x2"], ["You said: y1", "You said: y2"]]
    for name in ("x", "y"):
        for question in (f"{name}1", f"{name}2"):
            stack.check(question, session=f"conv-{name}", user=f"user-{name}", parent=f"handle conv-{name}")


def test_two_sessions_handled_at_once_with_gather_do_not_cross(stack: Stack) -> None:
    async def main() -> list[list[str]]:
        arrived: list[str] = []
        both_inside = asyncio.Event()

        async def meet() -> None:
            arrived.append(spanstamp.current_session_id() or "")
            if len(arrived) == 2:
                both_inside.set()
            await both_inside.wait()

        replies = await asyncio.gather(
            fan_out_with_gather(stack, "conv-p", "user-p", ["p1", "p2"], meet),
            fan_out_with_gather(stack, "conv-q", "user-q", ["q1", "q2"], meet),
        )
        assert sorted(arrived) == ["conv-p", "conv-q"]
        return replies

    assert asyncio.run(main()) == [["You said: p1", "You said: p2"], ["You said: q1", "You said: q2"]]
    for name in ("p", "q"):
        for question in (f"{name}1", f"{name}2"):
            stack.check(question, session=f"conv-{name}", user=f"user-{name}", parent=f"handle conv-{name}")


# --- Streams read chunk by chunk ------------------------------------------------------


def _stream_chunks(stack: Stack, client: OpenAI, question: str) -> Iterator[str]:
    with stack.tracer.start_as_current_span(f"ask {question}"):
        for chunk in client.chat.completions.create(model=STUB_MODEL, messages=_messages(question), stream=True):
            if chunk.choices and chunk.choices[0].delta.content:
                yield chunk.choices[0].delta.content


async def _stream_chunks_async(stack: Stack, client: AsyncOpenAI, question: str) -> AsyncIterator[str]:
    with stack.tracer.start_as_current_span(f"ask {question}"):
        chunks = await client.chat.completions.create(model=STUB_MODEL, messages=_messages(question), stream=True)
        async for chunk in chunks:
            if chunk.choices and chunk.choices[0].delta.content:
                yield chunk.choices[0].delta.content


# The same streaming handler decorated in the two ways the README shows. Stacked
# decorators on a generator once lost the outer scope: its session.id was on no span.
@spanstamp.using_attributes(session_id=from_arg("conversation_id"), user_id=from_arg("user_id"))
def stream_reply(stack: Stack, client: OpenAI, conversation_id: str, user_id: str, question: str) -> Iterator[str]:
    yield from _stream_chunks(stack, client, question)


@spanstamp.using_session(from_arg("conversation_id"))
@spanstamp.using_user(from_arg("user_id"))
def stream_reply_stacked(
    stack: Stack, client: OpenAI, conversation_id: str, user_id: str, question: str
) -> Iterator[str]:
    yield from _stream_chunks(stack, client, question)


@spanstamp.using_attributes(session_id=from_arg("conversation_id"), user_id=from_arg("user_id"))
async def stream_reply_async(
    stack: Stack, client: AsyncOpenAI, conversation_id: str, user_id: str, question: str
) -> AsyncIterator[str]:
    async for chunk in _stream_chunks_async(stack, client, question):
        yield chunk


@spanstamp.using_session(from_arg("conversation_id"))
@spanstamp.using_user(from_arg("user_id"))
async def stream_reply_async_stacked(
    stack: Stack, client: AsyncOpenAI, conversation_id: str, user_id: str, question: str
) -> AsyncIterator[str]:
    async for chunk in _stream_chunks_async(stack, client, question):
        yield chunk


@pytest.mark.parametrize(
    "make_stream",
    [
        pytest.param(stream_reply, id="using_attributes"),
        pytest.param(stream_reply_stacked, id="stacked"),
    ],
)
def test_two_sessions_streams_read_in_turn_chunk_by_chunk(
    stack: Stack, make_stream: Callable[..., Iterator[str]]
) -> None:
    with stack.client() as client:
        streams = [
            make_stream(stack, client, "conv-s1", "user-s1", "one two three"),
            make_stream(stack, client, "conv-s2", "user-s2", "four five six seven"),
        ]
        read: list[list[str]] = [[], []]
        # The consumer (a web framework, say) takes a chunk from each in turn, outside both scopes.
        for pair in itertools.zip_longest(*streams):
            assert spanstamp.current_session_id() is None
            for text, chunk in zip(read, pair, strict=True):
                if chunk is not None:
                    text.append(chunk)
    assert ["".join(text) for text in read] == ["You said: one two three", "You said: four five six seven"]
    assert all(len(text) > 3 for text in read)  # really chunk by chunk
    stack.check("one two three", session="conv-s1", user="user-s1")
    stack.check("four five six seven", session="conv-s2", user="user-s2")


@pytest.mark.parametrize(
    "make_stream",
    [
        pytest.param(stream_reply_async, id="using_attributes"),
        pytest.param(stream_reply_async_stacked, id="stacked"),
    ],
)
def test_two_sessions_async_streams_read_in_turn_chunk_by_chunk(
    stack: Stack, make_stream: Callable[..., AsyncIterator[str]]
) -> None:
    async def main() -> list[str]:
        async with stack.async_client() as client:
            streams = [
                make_stream(stack, client, "conv-a1", "user-a1", "red green blue"),
                make_stream(stack, client, "conv-a2", "user-a2", "cyan magenta yellow black"),
            ]
            read: list[list[str]] = [[], []]
            live = [0, 1]
            while live:
                for index in list(live):
                    try:
                        read[index].append(await anext(streams[index]))
                    except StopAsyncIteration:
                        live.remove(index)
                    assert spanstamp.current_session_id() is None
            return ["".join(text) for text in read]

    assert asyncio.run(main()) == ["You said: red green blue", "You said: cyan magenta yellow black"]
    stack.check("red green blue", session="conv-a1", user="user-a1")
    stack.check("cyan magenta yellow black", session="conv-a2", user="user-a2")


# --- Outside any scope ----------------------------------------------------------------


def test_calls_outside_any_scope_get_no_ids(stack: Stack) -> None:
    async def after_async() -> str:
        async with stack.async_client() as client:
            return await stack.ask_async(client, "after-async")

    with stack.client() as client:
        with spanstamp.using_session("conv-inside"), spanstamp.using_user("user-inside"):
            stack.ask(client, "inside")
        stack.ask(client, "after")
        stack.ask(client, "after-stream", stream=True)
    asyncio.run(after_async())

    stack.check("inside", session="conv-inside", user="user-inside")
    for question in ("after", "after-stream", "after-async"):
        stack.check(question, session=None, user=None)
    inside = stack.receiver.by_name("ask inside")
    stamped = {span.span_id for span in stack.receiver.spans if SESSION in span.attributes or USER in span.attributes}
    assert stamped == {inside.span_id} | {span.span_id for span in descendants(stack.receiver.spans, inside)}


def test_without_the_processor_only_openinference_spans_get_the_ids(
    http_receiver: OtlpHttpReceiver, stub_url: str
) -> None:
    # The control: the same stack with no SessionSpanProcessor. OpenInference's tracer reads
    # the scope itself; the others do not, so the checks above really test the processor.
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=http_receiver.traces_url)))
    used = (OPENINFERENCE, OPENAI_V2, HTTPX)
    try:
        with instrumented(used, provider):
            stack = Stack(http_receiver, provider, used, stub_url)
            with spanstamp.using_session("conv-control"), spanstamp.using_user("user-control"):
                with stack.client() as client:
                    stack.ask(client, "control")
    finally:
        provider.shutdown()
    stamped = {
        (span.scope_name, span.attributes.get(SESSION), span.attributes.get(USER)) for span in http_receiver.spans
    }
    assert stamped == {
        ("app", None, None),
        (OPENINFERENCE.scope_name, "conv-control", "user-control"),
        (OPENAI_V2.scope_name, None, None),
        (HTTPX.scope_name, None, None),
    }
