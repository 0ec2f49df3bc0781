"""The web stack for tests: a real FastAPI chat app on uvicorn, and concurrent clients for it.

A helper module, not a test file. The app's endpoint enters a spanstamp scope and a
turn's span around the real (async) ``openai`` client; opentelemetry-instrumentation-fastapi
traces the requests. uvicorn runs in a thread on a free 127.0.0.1 port::

    with serve(chat_app(provider, stub_url)) as base_url:
        sent = send_all(base_url, turns(30, sessions=10))
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
from opentelemetry.test.globals_test import reset_trace_globals
from pydantic import BaseModel

import spanstamp
from llm_stack import STUB_MODEL


class Turn(BaseModel):
    """One question of one session, as the client posts it."""

    session_id: str
    user_id: str
    task_id: str
    question: str


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
        return {"answer": answer}

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
    """A turn that was posted, and the answer it got."""

    turn: Turn
    answer: str


def post(base_url: str, turn: Turn) -> Sent:
    """POST one turn to the app's chat endpoint; returns it with its answer."""
    request = urllib.request.Request(
        base_url + "/chat", data=turn.model_dump_json().encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return Sent(turn, json.loads(response.read())["answer"])


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
