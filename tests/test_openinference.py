"""Interop with the real openinference-instrumentation package, both directions."""

from __future__ import annotations

import json

import openinference.instrumentation as oi
from openinference.instrumentation import OITracer, TraceConfig
from opentelemetry.context import get_current
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import spanstamp
from support import Tracing


def _oi_only() -> tuple[OITracer, InMemorySpanExporter]:
    """OpenInference's tracer on a provider WITHOUT our processor: only OITracer stamps."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return OITracer(provider.get_tracer("oi"), config=TraceConfig()), exporter


def test_openinference_tracer_reads_what_spanstamp_wrote() -> None:
    tracer, exporter = _oi_only()
    with (
        spanstamp.using_attributes(
            session_id="s-1",
            user_id="u-1",
            metadata={"k": "v"},
            tags=["t1", "t2"],
            prompt_template="Hi {x}",
            prompt_template_version="v1",
            prompt_template_variables={"x": 1},
        ),
        tracer.start_as_current_span("oi-span"),
    ):
        pass
    (span,) = exporter.get_finished_spans()
    attrs = dict(span.attributes or {})
    assert attrs["session.id"] == "s-1"
    assert attrs["user.id"] == "u-1"
    assert json.loads(str(attrs["metadata"])) == {"k": "v"}
    assert tuple(attrs["tag.tags"]) == ("t1", "t2")  # type: ignore[arg-type]
    assert attrs["llm.prompt_template.template"] == "Hi {x}"
    assert attrs["llm.prompt_template.version"] == "v1"
    assert json.loads(str(attrs["llm.prompt_template.variables"])) == {"x": 1}


def test_spanstamp_stamps_what_openinference_wrote_on_any_span() -> None:
    tracing = Tracing()
    with oi.using_attributes(
        session_id="oi-s",
        user_id="oi-u",
        metadata={"a": 1},
        tags=["x"],
        prompt_template="T",
        prompt_template_version="9",
    ):
        tracing.record("plain-otel-span")
        assert spanstamp.current_session_id() == "oi-s"
        assert dict(spanstamp.get_attributes_from_context())["user.id"] == "oi-u"
    attrs = tracing.attrs("plain-otel-span")
    assert attrs["session.id"] == "oi-s"
    assert attrs["user.id"] == "oi-u"
    assert json.loads(str(attrs["metadata"])) == {"a": 1}
    assert tuple(attrs["tag.tags"]) == ("x",)
    assert attrs["llm.prompt_template.template"] == "T"
    assert attrs["llm.prompt_template.version"] == "9"


def test_openinference_int_ids_become_decimal_strings() -> None:
    tracing = Tracing()
    with oi.using_session(123):  # OpenInference stores what it is given
        tracing.record("span")
    assert tracing.attrs("span")["session.id"] == "123"


def test_innermost_scope_wins_when_the_two_libraries_nest_either_way() -> None:
    tracing = Tracing()
    tracer = OITracer(tracing.provider.get_tracer("oi"), config=TraceConfig())
    with oi.using_session("oi-outer"), spanstamp.using_session("ours-inner"):
        tracing.record("ours-inside-oi")
        with tracer.start_as_current_span("oi-tracer-1"):
            pass
    with spanstamp.using_session("ours-outer"), oi.using_session("oi-inner"):
        tracing.record("oi-inside-ours")
        with tracer.start_as_current_span("oi-tracer-2"):
            pass
    assert tracing.attrs("ours-inside-oi")["session.id"] == "ours-inner"
    assert tracing.attrs("oi-tracer-1")["session.id"] == "ours-inner"
    assert tracing.attrs("oi-inside-ours")["session.id"] == "oi-inner"
    assert tracing.attrs("oi-tracer-2")["session.id"] == "oi-inner"


def test_metadata_and_tags_merge_across_the_two_libraries() -> None:
    with oi.using_metadata({"from": "oi", "a": 1}), oi.using_tags(["oi"]):
        with spanstamp.using_metadata({"from": "ours"}), spanstamp.using_tags(["ours", "oi"]):
            attrs = dict(spanstamp.get_attributes_from_context())
    assert json.loads(str(attrs["metadata"])) == {"from": "ours", "a": 1}
    assert attrs["tag.tags"] == ["oi", "ours"]  # a list of str, OpenInference's own shape


def test_an_inner_openinference_scope_replaces_metadata_and_tags() -> None:
    # OpenInference does not merge; the README says so.
    with spanstamp.using_metadata({"from": "ours", "a": 1}), spanstamp.using_tags(["ours"]):
        with oi.using_metadata({"from": "oi"}), oi.using_tags(["oi"]):
            attrs = dict(spanstamp.get_attributes_from_context())
    assert json.loads(str(attrs["metadata"])) == {"from": "oi"}
    assert attrs["tag.tags"] == ["oi"]


def test_tags_have_the_same_shape_in_the_context_as_openinference_gives_them() -> None:
    with oi.using_tags(["a"]):
        theirs = get_current()["tag.tags"]
    with spanstamp.using_tags(["a"]):
        ours = get_current()["tag.tags"]
    # A list, as OpenInference keeps them (ours is a list subclass that records that the
    # tags were checked, so a span's reader need not look at each tag again).
    assert type(theirs) is list
    assert isinstance(ours, list)
    assert ours == theirs
    assert json.dumps(ours) == json.dumps(theirs)


def test_exiting_ours_restores_openinference_values_and_back() -> None:
    with oi.using_user("oi-user"):
        with spanstamp.using_user("ours"):
            pass
        assert spanstamp.current_user_id() == "oi-user"
    with spanstamp.using_user("ours"):
        with oi.using_user("oi-user"):
            pass
        assert spanstamp.current_user_id() == "ours"
    assert spanstamp.current_user_id() is None
