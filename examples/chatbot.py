"""A small chatbot whose conversations show up as sessions in Phoenix.

Two users take turns chatting with it, several turns each. Each turn is one ``task()``, one
trace: a root span (OpenInference kind CHAIN, the user's message as input, the reply as
output: Phoenix's session view shows these as a chat) around the real OpenAI client, which
OpenInference's OpenAI instrumentor traces. ``session()`` puts the session and the user on
every span. At the end each user gives feedback on the last answer (``feedback()``, with
only the turn's id) and leaves (``end_session()``).

    phoenix serve                  # another terminal; then open http://127.0.0.1:6006
    python examples/chatbot.py     # project "spanstamp-chatbot" -> Sessions

Offline by default: the LLM is the local stub (examples/stub_llm.py). Set OPENAI_BASE_URL
(with OPENAI_API_KEY and CHATBOT_MODEL) for a real OpenAI-compatible server. Traces go to
OTEL_EXPORTER_OTLP_ENDPOINT (default: Phoenix on http://127.0.0.1:6006), into the Phoenix
project PHOENIX_PROJECT_NAME (default: spanstamp-chatbot). With no server at all, write them
to a file and read it with ``spanstamp insights``:

    OTEL_TRACES_EXPORTER=otlp_json_file SPANSTAMP_JSON_FILE=spans.jsonl python examples/chatbot.py
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from openai import OpenAI
from openinference.instrumentation.openai import OpenAIInstrumentor

import spanstamp
from spanstamp import Session, end_session, feedback, session, task
from stub_llm import serve_stub

PHOENIX_URL = "http://127.0.0.1:6006"
PROJECT = os.environ.get("PHOENIX_PROJECT_NAME") or "spanstamp-chatbot"
MODEL = os.environ.get("CHATBOT_MODEL") or "gpt-4o-mini"
SYSTEM_PROMPT = "You are a friendly assistant. Answer in one or two sentences."

# Each user's messages, in order. The two conversations take turns, as two people
# chatting with the same service at the same time would.
CONVERSATIONS = {
    "ada": [
        "Hi, I'm Ada. Can you help me plan a weekend trip?",
        "I would like to see mountains.",
        "What should I pack?",
    ],
    "grace": [
        "Hello! I need a name for my new compiler.",
        "Something short, please.",
        "Maybe with a bird in it?",
        "Thanks, that's all for today.",
    ],
}
PROJECT_NAME = "openinference.project.name"


class Chatbot:
    """Keeps each conversation's history; one ``reply`` call is one turn, one trace."""

    def __init__(self, client: OpenAI) -> None:
        self._client = client
        self._histories: dict[str, list[dict[str, str]]] = {}

    def reply(self, conversation: Session, text: str) -> tuple[str, str]:
        """Answer ``text`` in ``conversation``; returns the answer and the turn's task id."""
        assert conversation.id is not None
        # The session scope puts the session and the user on every span of the turn: the
        # task span (kind CHAIN, the message as input, the reply as output: Phoenix's
        # session view shows these as a chat) and the instrumentor's ChatCompletion span.
        with conversation, task(input=text, name="chat turn", metadata={"system_prompt": SYSTEM_PROMPT}) as turn:
            history = self._histories.setdefault(conversation.id, [{"role": "system", "content": SYSTEM_PROMPT}])
            history.append({"role": "user", "content": text})
            completion = self._client.chat.completions.create(model=MODEL, messages=history)
            answer: str = completion.choices[0].message.content or ""
            history.append({"role": "assistant", "content": answer})
            turn.set_output(answer, raw_output=completion.model_dump(mode="json"))
        return answer, turn.id


@contextmanager
def openai_client() -> Iterator[OpenAI]:
    """A real OpenAI client: to OPENAI_BASE_URL if set, else to the local stub."""
    if os.environ.get("OPENAI_BASE_URL"):
        with OpenAI() as client:
            yield client
        return
    with serve_stub() as base_url, OpenAI(base_url=base_url, api_key="offline", max_retries=0) as client:
        yield client


def traces_endpoint() -> str | None:
    """Phoenix's default unless the standard OTLP endpoint variables say otherwise."""
    if os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return None  # spanstamp.configure() reads them as the OTLP exporter does
    return f"{PHOENIX_URL}/v1/traces"


def exports_over_otlp() -> bool:
    """Whether OTEL_TRACES_EXPORTER (the standard variable; default ``otlp``) sends to a server."""
    names = os.environ.get("OTEL_TRACES_EXPORTER") or "otlp"
    return "otlp" in {name.strip() for name in names.split(",")}


def main() -> None:
    endpoint = traces_endpoint()
    provider = spanstamp.configure(
        service_name="chatbot", resource_attributes={PROJECT_NAME: PROJECT}, endpoint=endpoint
    )
    to_phoenix = endpoint is not None and exports_over_otlp()
    if to_phoenix:
        spanstamp.configure_phoenix(PHOENIX_URL)  # feedback also becomes Phoenix annotations
    OpenAIInstrumentor().instrument(tracer_provider=provider)
    # A new session per user (a fresh id; session.start is recorded on first entry).
    sessions = {user: session(user_id=user) for user in CONVERSATIONS}
    last_turn: dict[str, str] = {}
    try:
        with openai_client() as client:
            bot = Chatbot(client)
            for turn in range(max(len(messages) for messages in CONVERSATIONS.values())):
                for user, messages in CONVERSATIONS.items():
                    if turn < len(messages):
                        print(f"{user}: {messages[turn]}")
                        answer, last_turn[user] = bot.reply(sessions[user], messages[turn])
                        print(f"assistant: {answer}")
        # Later, with nothing but the ids kept: each user rates the last answer, and leaves.
        for user, task_id in last_turn.items():
            feedback(task_id, score=1, label="thumbs_up", session_id=sessions[user].id, user_id=user)
            print(f"feedback {user}: thumbs_up on turn {task_id}")
            end_session(sessions[user].id or "", reason="user_left")
    finally:
        OpenAIInstrumentor().uninstrument()
        provider.shutdown()  # sends what is still queued
        spanstamp.flush_feedback()
    for user, conversation in sessions.items():
        print(f"session {conversation.id} user {user}: {len(CONVERSATIONS[user])} turns")
    if to_phoenix:
        print(f"Phoenix project {PROJECT!r}: open its Sessions tab.")


if __name__ == "__main__":
    main()
