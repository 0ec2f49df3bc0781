"""A small chatbot whose conversations show up as sessions in Phoenix.

Two users take turns chatting with it, several turns each. Each turn is one trace: a root span
(OpenInference kind CHAIN, the user's message as input, the reply as output: Phoenix's
session view shows these as a chat) around the real OpenAI client, which OpenInference's
OpenAI instrumentor traces. spanstamp puts the session and the user on every span.

    phoenix serve                  # another terminal; then open http://127.0.0.1:6006
    python examples/chatbot.py     # project "spanstamp-chatbot" -> Sessions

Offline by default: the LLM is the local stub (examples/stub_llm.py). Set OPENAI_BASE_URL
(with OPENAI_API_KEY and CHATBOT_MODEL) for a real OpenAI-compatible server. Traces go to
OTEL_EXPORTER_OTLP_ENDPOINT (default: Phoenix on http://127.0.0.1:6006), into the Phoenix
project PHOENIX_PROJECT_NAME (default: spanstamp-chatbot).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from openai import OpenAI
from openinference.instrumentation.openai import OpenAIInstrumentor
from opentelemetry.trace import Tracer

import spanstamp
from spanstamp import from_arg, using_session, using_user
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

# OpenInference attribute names (openinference-semantic-conventions spells them too).
SPAN_KIND, INPUT_VALUE, INPUT_MIME_TYPE, OUTPUT_VALUE, OUTPUT_MIME_TYPE = (
    "openinference.span.kind",
    "input.value",
    "input.mime_type",
    "output.value",
    "output.mime_type",
)
PROJECT_NAME = "openinference.project.name"


class Chatbot:
    """Keeps each conversation's history; one ``reply`` call is one turn, one trace."""

    def __init__(self, client: OpenAI, tracer: Tracer) -> None:
        self._client = client
        self._tracer = tracer
        self._histories: dict[str, list[dict[str, str]]] = {}

    # The ids come from each call: every span of the turn (the root span below and the
    # instrumentor's ChatCompletion span) carries them.
    @using_session(from_arg("session_id"))
    @using_user(from_arg("user_id"))
    def reply(self, session_id: str, user_id: str, text: str) -> str:
        attributes = {SPAN_KIND: "CHAIN", INPUT_VALUE: text, INPUT_MIME_TYPE: "text/plain"}
        with self._tracer.start_as_current_span("chat turn", attributes=attributes) as span:
            history = self._histories.setdefault(session_id, [{"role": "system", "content": SYSTEM_PROMPT}])
            history.append({"role": "user", "content": text})
            completion = self._client.chat.completions.create(model=MODEL, messages=history)
            answer: str = completion.choices[0].message.content or ""
            history.append({"role": "assistant", "content": answer})
            span.set_attributes({OUTPUT_VALUE: answer, OUTPUT_MIME_TYPE: "text/plain"})
            return answer


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


def main() -> None:
    provider = spanstamp.configure(
        service_name="chatbot", resource_attributes={PROJECT_NAME: PROJECT}, endpoint=traces_endpoint()
    )
    OpenAIInstrumentor().instrument(tracer_provider=provider)
    sessions = {user: spanstamp.new_session_id() for user in CONVERSATIONS}
    try:
        with openai_client() as client:
            bot = Chatbot(client, provider.get_tracer("chatbot"))
            for turn in range(max(len(messages) for messages in CONVERSATIONS.values())):
                for user, messages in CONVERSATIONS.items():
                    if turn < len(messages):
                        print(f"{user}: {messages[turn]}")
                        print(f"assistant: {bot.reply(sessions[user], user, messages[turn])}")
    finally:
        OpenAIInstrumentor().uninstrument()
        provider.shutdown()  # sends what is still queued
    for user, session_id in sessions.items():
        print(f"session {session_id} user {user}: {len(CONVERSATIONS[user])} turns")
    print(f"Phoenix project {PROJECT!r}: open its Sessions tab.")


if __name__ == "__main__":
    main()
