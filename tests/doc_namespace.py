"""The namespace the documentation's snippets run in, and the reset after each document.

A helper module, not a test file: conftest.py at the root hands ``setup`` and ``teardown``
to Sybil, which calls them once per Markdown document (README.md, docs/*.md). All the
snippets of one document share its namespace, top to bottom, as a reader's session would.

Every document gets a real stub LLM and a real OTLP receiver on loopback, and the
environment a reader would have set: ``OPENAI_BASE_URL`` / ``OPENAI_API_KEY`` point the
real ``openai`` client at the stub, ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` points any
exporter at the receiver. The docs (not the README, whose quickstart sets up its own)
also get the names their snippets take as given::

    client            # openai.OpenAI against the stub, traced by OpenInference's instrumentor
                      # (unless the page names OpenAIInstrumentor: then it sets that up itself)
    conversation_id   # "conv-42"
    user_id           # "user-7"
    question, messages, model
    provider          # a fresh SDK TracerProvider, not global, exporting to `exporter`
    exporter          # an InMemorySpanExporter: exporter.get_finished_spans()
    receiver          # the OTLP receiver: receiver.wait_for(n), receiver.spans

Afterwards everything global a snippet may have changed is put back: the global tracer
provider (OpenTelemetry sets it once per process, so it is reset here), every
instrumentor left instrumented, openai's wrapped ``create`` methods, the propagator, the
environment, and spanstamp's process-wide settings.
"""

from __future__ import annotations

import importlib
import os
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sybil import Document

from llm_stack import serve_stub
from otlp_receiver import OtlpHttpReceiver
from support import reset_trace_globals

_STATE = "_doc_state"
# Variables that would change what a snippet does: the reader's shell is not the test's.
_CLEARED_PREFIXES = ("OTEL_", "SPANSTAMP_", "OPENAI_", "PHOENIX_")


def setup_readme(namespace: dict[str, Any]) -> None:
    """Stub, receiver and environment only: the README's quickstart builds the rest itself."""
    _start(namespace)


def setup_docs(namespace: dict[str, Any]) -> None:
    """As for the README, plus the instrumented client and the names the pages take as given."""
    from openai import OpenAI
    from openinference.instrumentation.openai import OpenAIInstrumentor

    state = _start(namespace)
    # A page that sets up this instrumentor itself (with a provider of its own, say) gets
    # it as it asks: instrument() on an instrumented singleton would be a silent no-op.
    if "OpenAIInstrumentor" not in Path(namespace["__file__"]).read_text():
        # No tracer provider given: the instrumentor's tracer follows the global provider,
        # so a page that calls spanstamp.configure() sees its client's spans there.
        OpenAIInstrumentor().instrument()
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    question = "What is a span?"
    namespace.update(
        client=OpenAI(max_retries=0),
        conversation_id="conv-42",
        user_id="user-7",
        question=question,
        messages=[{"role": "user", "content": question}],
        model="gpt-4o-mini",
        provider=provider,
        exporter=exporter,
        receiver=state["receiver"],
    )


class Page(Document):
    """A Markdown page whose namespace knows its file (``__file__``), as a module's does."""

    def __init__(self, text: str, path: str) -> None:
        super().__init__(text, path)
        self.namespace["__file__"] = path


def teardown(namespace: dict[str, Any]) -> None:
    """Put back everything global the document's snippets may have changed."""
    state = namespace.pop(_STATE)
    try:
        for value in list(namespace.values()):
            if isinstance(value, TracerProvider):
                value.shutdown()
        global_provider = trace.get_tracer_provider()
        if isinstance(global_provider, TracerProvider):
            global_provider.shutdown()
        _uninstrument_all()
        for owner, create in state["creates"]:
            owner.create = create
        propagate.set_global_textmap(state["propagator"])
        _reset_global_tracer_provider()
        # Feedback a page gave is sent in the background to PHOENIX_COLLECTOR_ENDPOINT (the
        # receiver here): let it go out while the receiver still listens.
        from spanstamp import phoenix_annotations

        phoenix_annotations.flush_feedback(timeout=10)
        phoenix_annotations.reset_phoenix()
    finally:
        os.environ.clear()
        os.environ.update(state["environ"])
        _reload_spanstamp_settings()
        state["stack"].close()
        namespace.clear()


def _start(namespace: dict[str, Any]) -> dict[str, Any]:
    from spanstamp.integrations import openai as openai_integration

    stack = ExitStack()
    state: dict[str, Any] = {
        "stack": stack,
        "environ": dict(os.environ),
        "propagator": propagate.get_global_textmap(),
        # openai_user_ids=True wraps these process-wide; an uninstrument may unwrap ours.
        "creates": [
            (owner, owner.__dict__["create"])
            for owner in (getattr(importlib.import_module(m), c) for m, c, _ in openai_integration._TARGETS)
        ],
    }
    namespace[_STATE] = state
    try:
        base_url = stack.enter_context(serve_stub())
        receiver = stack.enter_context(OtlpHttpReceiver())
    except BaseException:
        stack.close()
        raise
    state["receiver"] = receiver
    for name in [n for n in os.environ if n.startswith(_CLEARED_PREFIXES)]:
        del os.environ[name]
    os.environ.update(
        OPENAI_BASE_URL=base_url,
        OPENAI_API_KEY="offline",
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=receiver.traces_url,
        # Phoenix's register() reads its own variable; it appends /v1/traces itself.
        PHOENIX_COLLECTOR_ENDPOINT=receiver.url,
    )
    _reload_spanstamp_settings()
    _reset_global_tracer_provider()
    return state


def _reset_global_tracer_provider() -> None:
    # Snippets that call configure() each need a fresh global provider.
    reset_trace_globals()


def _uninstrument_all() -> None:
    # Instrumentors are per-class singletons that patch libraries process-wide: one a
    # snippet left on would trace the rest of the suite into a shut-down provider.
    pending: list[type[BaseInstrumentor]] = list(BaseInstrumentor.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        instance = cls.__dict__.get("_instance")
        if instance is not None and instance.is_instrumented_by_opentelemetry:
            instance.uninstrument()


def _reload_spanstamp_settings() -> None:
    from spanstamp import privacy, propagation, rules

    # load_environment() keeps a setting whose variable is unset: start from the defaults.
    rules.configure_rules(strict=False, max_id_length=rules.DEFAULT_MAX_ID_LENGTH)
    rules.load_environment()
    propagation.load_environment()
    privacy.load_environment()  # user-id hashing is process-wide
    rules.forget_warnings()
