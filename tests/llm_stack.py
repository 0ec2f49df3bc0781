"""The real LLM stack for tests: the openai client, its real instrumentors, the stub server.

A helper module, not a test file. Each instrumentation is described by the span it
starts for one chat call, so a test can say exactly which spans a call must produce::

    with instrumented([OPENINFERENCE, HTTPX], provider):
        client.chat.completions.create(...)   # -> "ChatCompletion" + "POST" spans
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from openinference.instrumentation.openai import OpenAIInstrumentor as OpenInferenceOpenAIInstrumentor
from opentelemetry.instrumentation.httpx import HTTPX2ClientInstrumentor
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor
from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor as OpenAIV2Instrumentor
from opentelemetry.sdk.trace import TracerProvider

from otlp_receiver import ReceivedSpan

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _load_example(name: str) -> ModuleType:
    # The examples are scripts, not a package: load one by path instead of editing sys.path.
    spec = importlib.util.spec_from_file_location(f"_example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


serve_stub: Callable[..., AbstractContextManager[str]] = _load_example("stub_llm").serve_stub
"""The examples' OpenAI-compatible stub on a free loopback port; yields the client's base_url.

``serve_stub(received=[])`` also records each request it gets: (path, headers, body)."""

STUB_MODEL = "stub"


@dataclass(frozen=True)
class Instrumentation:
    """A real instrumentor package and the one span it starts for one chat completion call."""

    label: str
    instrumentor: Callable[[], BaseInstrumentor]
    span_name: str
    scope_name: str


OPENINFERENCE = Instrumentation(
    "openinference", OpenInferenceOpenAIInstrumentor, "ChatCompletion", "openinference.instrumentation.openai"
)
# openai-v2 starts its spans through opentelemetry-util-genai's handler, hence the scope name;
# the span is named "<operation> <model>".
OPENAI_V2 = Instrumentation("openai-v2", OpenAIV2Instrumentor, f"chat {STUB_MODEL}", "opentelemetry.util.genai.handler")
# openai 3.x sends its requests with httpx2; the httpx instrumentation covers it with its own class.
HTTPX = Instrumentation("httpx", HTTPX2ClientInstrumentor, "POST", "opentelemetry.instrumentation.httpx")


@contextmanager
def instrumented(instrumentations: Iterable[Instrumentation], provider: TracerProvider) -> Iterator[None]:
    """Instrument in the given order with ``provider``; uninstrument in reverse, also on failure.

    Instrumentors patch global classes and are singletons: one left instrumented by an
    earlier test would silently keep exporting to that test's provider, so that fails here.
    """
    done: list[BaseInstrumentor] = []
    try:
        for instrumentation in instrumentations:
            instrumentor = instrumentation.instrumentor()
            assert not instrumentor.is_instrumented_by_opentelemetry, f"{instrumentation.label} left instrumented"
            instrumentor.instrument(tracer_provider=provider)
            done.append(instrumentor)
        yield
    finally:
        for instrumentor in reversed(done):
            instrumentor.uninstrument()


def expected_spans(instrumentations: Iterable[Instrumentation]) -> list[tuple[str, str]]:
    """(scope name, span name) of the spans one chat call gets, sorted."""
    return sorted((i.scope_name, i.span_name) for i in instrumentations)


def descendants(spans: Sequence[ReceivedSpan], root: ReceivedSpan) -> list[ReceivedSpan]:
    """Every span below ``root`` in its trace (children, their children, ...)."""
    children: dict[str, list[ReceivedSpan]] = {}
    for span in spans:
        if span.trace_id == root.trace_id and span.parent_span_id:
            children.setdefault(span.parent_span_id, []).append(span)
    found: list[ReceivedSpan] = []
    pending = [root.span_id]
    while pending:
        for child in children.pop(pending.pop(), []):
            found.append(child)
            pending.append(child.span_id)
    return found
