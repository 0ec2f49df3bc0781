"""The docs' snippets cannot leak global state into each other or into the rest of the suite."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from openinference.instrumentation.openai import OpenAIInstrumentor
from opentelemetry import propagate, trace
from opentelemetry.instrumentation.httpx import HTTPX2ClientInstrumentor
from opentelemetry.sdk.trace import TracerProvider

import spanstamp
from doc_namespace import setup_docs, teardown
from spanstamp import propagation, rules


def _careless_snippet(namespace: dict[str, Any]) -> None:
    # What a page may do: everything global it can touch, without undoing any of it.
    exec(
        "import os, spanstamp\n"
        "from opentelemetry.instrumentation.httpx import HTTPX2ClientInstrumentor\n"
        "from opentelemetry import propagate\n"
        "tracer_provider = spanstamp.configure(service_name='careless', openai_user_ids=True)\n"
        "HTTPX2ClientInstrumentor().instrument()\n"
        "client.chat.completions.create(model=model, messages=messages, safety_identifier='u-1')\n"
        "spanstamp.configure_rules(strict=True, max_id_length=16)\n"
        "spanstamp.configure_propagation(enabled=True)\n"
        "os.environ['SPANSTAMP_STRICT'] = '1'\n"
        "propagate.set_global_textmap(propagate.get_global_textmap().__class__([]))\n",
        namespace,
    )


def test_a_page_gets_the_names_it_takes_as_given_and_leaves_nothing_behind(tmp_path: Path) -> None:
    from openai.resources.chat.completions.completions import Completions

    environ = dict(os.environ)
    create = Completions.__dict__["create"]
    propagator = propagate.get_global_textmap()
    page = tmp_path / "page.md"
    page.write_text("# A page\n")
    namespace: dict[str, Any] = {"__file__": str(page)}
    setup_docs(namespace)
    assert namespace["conversation_id"] == "conv-42"
    assert OpenAIInstrumentor().is_instrumented_by_opentelemetry  # the client is traced
    assert os.environ["OPENAI_BASE_URL"].startswith("http://127.0.0.1:")
    assert not isinstance(trace.get_tracer_provider(), TracerProvider)  # configure() may set one

    try:
        _careless_snippet(namespace)
        assert isinstance(trace.get_tracer_provider(), TracerProvider)
    finally:
        teardown(namespace)

    assert namespace == {}
    assert not isinstance(trace.get_tracer_provider(), TracerProvider)
    assert not HTTPX2ClientInstrumentor().is_instrumented_by_opentelemetry
    assert not OpenAIInstrumentor().is_instrumented_by_opentelemetry
    assert propagate.get_global_textmap() is propagator
    assert Completions.__dict__["create"] is create  # openai_user_ids=True wrapped it
    assert dict(os.environ) == environ
    spanstamp.using_session("   ")  # default mode again: rejected with a warning, no raise
    assert rules.max_id_length() == rules.DEFAULT_MAX_ID_LENGTH
    assert not propagation.propagation_enabled()


def test_a_page_that_sets_up_the_openai_instrumentor_itself_gets_it_uninstrumented(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("OpenAIInstrumentor().instrument(tracer_provider=my_provider)\n")
    namespace: dict[str, Any] = {"__file__": str(page)}
    setup_docs(namespace)
    try:
        assert not OpenAIInstrumentor().is_instrumented_by_opentelemetry
        assert "client" in namespace
    finally:
        teardown(namespace)
