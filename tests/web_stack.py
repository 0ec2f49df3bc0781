"""The web stack for tests: a real FastAPI chat app on uvicorn, and concurrent clients for it.

A helper module, not a test file. The app's chat endpoint enters a spanstamp scope and a
turn's span around the real (async) ``openai`` client and answers with the turn's task id;
its ``/feedback`` and ``/end`` endpoints rate a turn by that id and end a session, as a
chat front end calls them later. opentelemetry-instrumentation-fastapi traces the requests.
uvicorn runs in a thread on a free 127.0.0.1 port::

    with serve(chat_app(provider, stub_url)) as base_url:
        sent = send_all(base_url, turns(30, sessions=10))
        rate(base_url, Rating(task_id=sent[0].task_id, label="thumbs_up", score=1))
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
from opentelemetry import trace
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from pydantic import BaseModel

import spanstamp
from llm_stack import STUB_MODEL
from support import reset_trace_globals


class Turn(BaseModel):
    """One question of one session, as the client posts it."""

    session_id: str
    user_id: str
    #: The app's own id for the turn; ``None``: spanstamp generates one (the chat endpoint returns it).
    task_id: str | None = None
    question: str


class Rating(BaseModel):
    """Feedback on one turn, given later with only its task id (the thumbs under an answer)."""

    task_id: str
    name: str = "user_feedback"
    score: float | None = None
    label: str | None = None
    explanation: str | None = None
    kind: str = "HUMAN"
    session_id: str | None = None
    user_id: str | None = None


class Ending(BaseModel):
    """The end of a session (the user closed the chat)."""

    session_id: str
    reason: str | None = None


def chat_app(provider: TracerProvider, stub_url: str) -> FastAPI:
    """The app under test: one chat endpoint, as a chatbot would write it."""
    app = FastAPI()
    client = AsyncOpenAI(base_url=stub_url, api_key="offline", max_retries=0)

    async def ask(question: str) -> str:
        completion = await client.chat.completions.create(
            model=STUB_MODEL, messages=[{"role": "user", "content": question}]
        )
        return completion.choices[0].message.content or ""

    @app.post("/chat")
    async def chat(turn: Turn) -> dict[str, str]:
        async with spanstamp.task(
            input=turn.question, name="turn", session_id=turn.session_id, user_id=turn.user_id, task_id=turn.task_id
        ) as run:
            answer = await ask(turn.question)
            run.set_output(answer)
        return {"answer": answer, "task_id": run.id}

    @app.post("/feedback", status_code=204)
    async def rate_turn(rating: Rating) -> None:
        # Only the ids travel: the turn's span is found again from the task id.
        spanstamp.feedback(
            rating.task_id,
            name=rating.name,
            score=rating.score,
            label=rating.label,
            explanation=rating.explanation,
            kind=rating.kind,
            session_id=rating.session_id,
            user_id=rating.user_id,
        )

    @app.post("/end", status_code=204)
    async def close_session(ending: Ending) -> None:
        spanstamp.end_session(ending.session_id, reason=ending.reason)

    FastAPIInstrumentor.instrument_app(app, tracer_provider=provider)
    return app


@contextmanager
def as_global(provider: TracerProvider) -> Iterator[None]:
    """``provider`` as the global one while the block runs: task() traces with the global provider."""
    reset_trace_globals()
    trace.set_tracer_provider(provider)
    try:
        yield
    finally:
        reset_trace_globals()


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
    """A turn that was posted, the answer it got and its task id (the app's reply)."""

    turn: Turn
    answer: str
    task_id: str


def _post(base_url: str, path: str, body: BaseModel) -> bytes:
    request = urllib.request.Request(
        base_url + path, data=body.model_dump_json().encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        reply: bytes = response.read()
        return reply


def post(base_url: str, turn: Turn) -> Sent:
    """POST one turn to the app's chat endpoint; returns it with its answer and task id."""
    reply = json.loads(_post(base_url, "/chat", turn))
    return Sent(turn, reply["answer"], reply["task_id"])


def rate(base_url: str, rating: Rating) -> None:
    """POST feedback on a turn to the app's ``/feedback`` endpoint."""
    _post(base_url, "/feedback", rating)


def end(base_url: str, ending: Ending) -> None:
    """POST the end of a session to the app's ``/end`` endpoint."""
    _post(base_url, "/end", ending)


def send_all(base_url: str, turns: list[Turn]) -> list[Sent]:
    """POST every turn at once, each from its own thread; returns them with their answers."""
    start = threading.Barrier(len(turns))

    def send(turn: Turn) -> Sent:
        start.wait()
        return post(base_url, turn)

    with ThreadPoolExecutor(max_workers=len(turns)) as pool:
        return list(pool.map(send, turns))


def turns(count: int, sessions: int) -> list[Turn]:
    """``count`` turns spread over ``sessions`` sessions, each with a unique task id and question."""
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
