"""Quickstart, offline: a real OpenAI client, a local stub LLM, spans on the console.

Run it from a fresh clone (see the README):  python examples/quickstart.py

Every span of the conversation, including the one OpenInference's OpenAI instrumentor
creates for the chat call, carries the session and user said once around it.
"""

from __future__ import annotations

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import ConsoleSpanExporter

import spanstamp


def one_line(span: ReadableSpan) -> str:
    attrs = span.attributes or {}
    return f"span {span.name!r:32} session.id={attrs.get('session.id')}  user.id={attrs.get('user.id')}\n"


def main() -> None:
    from openai import OpenAI
    from openinference.instrumentation.openai import OpenAIInstrumentor

    from stub_llm import serve_stub

    # In production: spanstamp.configure(service_name="chatbot") exports over OTLP.
    provider = spanstamp.configure(exporter=ConsoleSpanExporter(formatter=one_line), batch=False)
    OpenAIInstrumentor().instrument(tracer_provider=provider)
    tracer = provider.get_tracer("quickstart")

    with serve_stub() as base_url:
        client = OpenAI(base_url=base_url, api_key="offline", max_retries=0)
        conversation_id = spanstamp.new_session_id()
        for question in ("Hi, I'm Ada.", "What is my name?"):
            with spanstamp.using_session(conversation_id), spanstamp.using_user("user-42"):
                with tracer.start_as_current_span("turn"):
                    reply = client.chat.completions.create(
                        model="stub", messages=[{"role": "user", "content": question}]
                    )
            print(f"assistant: {reply.choices[0].message.content}")
    OpenAIInstrumentor().uninstrument()
    provider.shutdown()


if __name__ == "__main__":
    main()
