"""A real FastAPI app on uvicorn: every span of every request's trace carries its ids.

The app is instrumented by opentelemetry-instrumentation-fastapi (the server span and
ASGI's ``http receive`` / ``http send`` spans); its chat endpoint enters a spanstamp scope
and a turn's span around the real ``openai`` client, traced by OpenInference's and
OpenTelemetry's openai-v2 instrumentors, against the examples' stub LLM. Spans go out
through ``spanstamp.configure()`` over OTLP/HTTP to the test's receiver. uvicorn runs in
a thread on a free loopback port and is stopped by the test.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

import uvicorn
from fastapi import FastAPI
from openai import AsyncOpenAI
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from pydantic import BaseModel

import spanstamp
from llm_stack import OPENAI_V2, OPENINFERENCE, STUB_MODEL, instrumented, serve_stub
from otlp_receiver import OtlpHttpReceiver, ReceivedSpan
from spanstamp.attributes import (
    INPUT_MIME_TYPE,
    INPUT_VALUE,
    OUTPUT_MIME_TYPE,
    OUTPUT_VALUE,
    SESSION_ID,
    SPAN_KIND,
    TASK_ID,
    USER_ID,
)

REQUESTS = 30
SESSIONS = 10
# One request's trace: the server span and ASGI's (outside the handler's scope), the
# turn, OpenInference's and openai-v2's spans of the chat call.
SERVER_SPANS = ["POST /chat", "POST /chat http receive", "POST /chat http send", "POST /chat http send"]
REQUEST_SPANS = sorted([*SERVER_SPANS, "turn", OPENINFERENCE.span_name, OPENAI_V2.span_name])


class Turn(BaseModel):
    session_id: str
    user_id: str
    task_id: str
    question: str


def chat_app(provider: TracerProvider, stub_url: str) -> FastAPI:
    """The app under test: one chat endpoint, as a chatbot would write it."""
    app = FastAPI()
    tracer = provider.get_tracer("chatbot")
    client = AsyncOpenAI(base_url=stub_url, api_key="offline", max_retries=0)

    async def ask(question: str) -> str:
        completion = await client.chat.completions.create(
            model=STUB_MODEL, messages=[{"role": "user", "content": question}]
        )
        return completion.choices[0].message.content or ""

    @app.post("/chat")
    async def chat(turn: Turn) -> dict[str, str]:
        async with spanstamp.using_attributes(session_id=turn.session_id, user_id=turn.user_id):
            # The turn, by hand until task() lands; then: `with task(input=..., task_id=...) as t:`.
            with tracer.start_as_current_span("turn", attributes=_task_attributes(turn)) as span:
                answer = await ask(turn.question)
                span.set_attributes({OUTPUT_VALUE: answer, OUTPUT_MIME_TYPE: "text/plain"})
        return {"answer": answer}

    FastAPIInstrumentor.instrument_app(app, tracer_provider=provider)
    return app


def _task_attributes(turn: Turn) -> dict[str, str]:
    """What task() writes on its span at the start."""
    return {SPAN_KIND: "CHAIN", TASK_ID: turn.task_id, INPUT_VALUE: turn.question, INPUT_MIME_TYPE: "text/plain"}


@contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    """uvicorn on a free 127.0.0.1 port in a thread; yields the base URL, stops on exit."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="uvicorn", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            assert thread.is_alive(), "uvicorn stopped while starting"
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        sock.close()
        FastAPIInstrumentor.uninstrument_app(app)


@dataclass(frozen=True)
class Sent:
    turn: Turn
    answer: str


def send_all(base_url: str, turns: list[Turn]) -> list[Sent]:
    """POST every turn at once, each from its own thread; returns them with their answers."""
    start = threading.Barrier(len(turns))

    def post(turn: Turn) -> Sent:
        request = urllib.request.Request(
            base_url + "/chat", data=turn.model_dump_json().encode(), headers={"Content-Type": "application/json"}
        )
        start.wait()
        with urllib.request.urlopen(request, timeout=30) as response:
            return Sent(turn, json.loads(response.read())["answer"])

    with ThreadPoolExecutor(max_workers=len(turns)) as pool:
        return list(pool.map(post, turns))


def turns(count: int, sessions: int) -> list[Turn]:
    # Users are shared across sessions, so "its user" means the user of that request.
    return [
        Turn(
            session_id=f"session-{number % sessions}",
            user_id=f"user-{number % sessions % 4}",
            task_id=f"task-{number}",
            question=f"question {number}",
        )
        for number in range(count)
    ]


def run(
    receiver: OtlpHttpReceiver, count: int, *, fill_traces: bool | None = None
) -> tuple[list[Sent], dict[str, list[ReceivedSpan]]]:
    """Send ``count`` concurrent turns through the app; the received spans by trace id."""
    options = {} if fill_traces is None else {"fill_traces": fill_traces}
    provider = spanstamp.configure(
        service_name="fastapi-chatbot",
        endpoint=receiver.traces_url,
        set_global=False,
        **options,  # type: ignore[arg-type]
    )
    try:
        with serve_stub() as stub_url, instrumented([OPENINFERENCE, OPENAI_V2], provider):
            with serve(chat_app(provider, stub_url)) as base_url:
                sent = send_all(base_url, turns(count, SESSIONS))
        assert provider.force_flush(timeout_millis=20_000)
    finally:
        provider.shutdown()
    traces: dict[str, list[ReceivedSpan]] = {}
    for span in receiver.spans:
        traces.setdefault(span.trace_id, []).append(span)
    return sent, traces


def _turn_of(spans: list[ReceivedSpan]) -> ReceivedSpan:
    (found,) = [span for span in spans if TASK_ID in span.attributes]
    return found


def test_every_span_of_every_request_carries_its_session_and_user(http_receiver: OtlpHttpReceiver) -> None:
    sent, traces = run(http_receiver, REQUESTS)
    assert all(item.answer == f"You said: {item.turn.question}" for item in sent)
    by_task = {item.turn.task_id: item for item in sent}
    assert len(traces) == REQUESTS  # one trace per request, nothing else
    for spans in traces.values():
        item = by_task[_turn_of(spans).attributes[TASK_ID]]
        scopes = {span.scope_name for span in spans}
        assert {"opentelemetry.instrumentation.fastapi", OPENINFERENCE.scope_name, OPENAI_V2.scope_name} <= scopes
        assert sorted(span.name for span in spans) == REQUEST_SPANS
        for span in spans:
            where = f"{span.name!r} from {span.scope_name} in the trace of {item.turn.task_id}"
            assert span.attributes.get(SESSION_ID) == item.turn.session_id, where
            assert span.attributes.get(USER_ID) == item.turn.user_id, where
        # Phoenix reads a turn's input and output from the root: the server span.
        (root,) = [span for span in spans if span.parent_span_id is None]
        assert root.name == "POST /chat"
        assert (root.attributes[INPUT_VALUE], root.attributes[INPUT_MIME_TYPE]) == (item.turn.question, "text/plain")
        assert (root.attributes[OUTPUT_VALUE], root.attributes[OUTPUT_MIME_TYPE]) == (item.answer, "text/plain")


def test_without_filling_the_server_spans_have_no_ids(http_receiver: OtlpHttpReceiver) -> None:
    # The gap the filling closes, measured on the same app: only spans inside the scope have ids.
    _, traces = run(http_receiver, 3, fill_traces=False)
    spans = [span for trace in traces.values() for span in trace]
    bare = [span for span in spans if SESSION_ID not in span.attributes]
    assert {span.scope_name for span in bare} == {"opentelemetry.instrumentation.fastapi"}
    # 4 of the 7 spans of each request: the server span, http receive, both http sends.
    assert sorted(span.name for span in bare) == sorted(3 * SERVER_SPANS)
    assert all(INPUT_VALUE not in span.attributes for span in bare)
