"""OpenInference drop-in: its documented usage runs unchanged with ``from spanstamp import ...``.

Each usage below is the way OpenInference's documentation shows a name (keyword
arguments, ``with`` blocks, decorators, ``get_attributes_from_context()`` feeding a span).
It runs once with ``openinference.instrumentation`` and once with ``spanstamp`` as ``lib``;
both must leave the same attributes, read by OpenInference's own reader (what every
OpenInference instrumentor stamps) and by the reader of the library in use.
"""

from __future__ import annotations

import inspect
import json
import types
from collections.abc import Callable
from typing import Any

import openinference.instrumentation as oi
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import spanstamp

NAMES = (
    "using_session",
    "using_user",
    "using_metadata",
    "using_tags",
    "using_prompt_template",
    "using_attributes",
    "get_attributes_from_context",
)
LIBRARIES = {"openinference": oi, "spanstamp": spanstamp}
Read = dict[str, dict[str, Any]]


def _read(lib: types.ModuleType) -> Read:
    # OpenInference's documented reader loop, with the library in use, and OpenInference's
    # own reader: the two must agree, whoever wrote the Context.
    mine = {}
    for key, value in lib.get_attributes_from_context():
        mine[key] = value
    theirs = dict(oi.get_attributes_from_context())
    return {"mine": _plain(mine), "openinference": _plain(theirs)}


def _plain(attrs: dict[str, Any]) -> dict[str, Any]:
    # Metadata is JSON text in both; compare it decoded (key order may differ). Tags are a list.
    out = dict(attrs)
    for key in ("metadata", "llm.prompt_template.variables"):
        if key in out:
            out[key] = json.loads(out[key])
    if "tag.tags" in out:
        out["tag.tags"] = list(out["tag.tags"])
    return out


def session_usage(lib: types.ModuleType) -> Read:
    with lib.using_session(session_id="my-session-id"):
        return _read(lib)


def user_usage(lib: types.ModuleType) -> Read:
    with lib.using_user("my-user-id"):
        return _read(lib)


def metadata_usage(lib: types.ModuleType) -> Read:
    metadata = {"key-1": "value_1", "key-2": 1}
    with lib.using_metadata(metadata):
        return _read(lib)


def tags_usage(lib: types.ModuleType) -> Read:
    tags = ["tag_1", "tag_2"]
    with lib.using_tags(tags):
        return _read(lib)


def prompt_template_usage(lib: types.ModuleType) -> Read:
    prompt_template = "Please describe the weather forecast for {city} on {date}"
    prompt_template_variables = {"city": "Johannesburg", "date": "July 11"}
    with lib.using_prompt_template(template=prompt_template, variables=prompt_template_variables, version="v1.0"):
        return _read(lib)


def attributes_usage(lib: types.ModuleType) -> Read:
    with lib.using_attributes(
        session_id="my-session-id",
        user_id="my-user-id",
        metadata={"key-1": "value_1"},
        tags=["tag_1", "tag_2"],
        prompt_template="Please describe the weather forecast for {city} on {date}",
        prompt_template_version="v1.0",
        prompt_template_variables={"city": "Johannesburg", "date": "July 11"},
    ):
        return _read(lib)


def decorator_usage(lib: types.ModuleType) -> Read:
    @lib.using_session(session_id="my-session-id")
    @lib.using_user(user_id="my-user-id")
    def call_fn() -> Read:
        return _read(lib)

    return call_fn()


def nested_usage(lib: types.ModuleType) -> Read:
    with lib.using_session("outer"), lib.using_user("u"):
        with lib.using_session("inner"):
            inner = _read(lib)
        return {**inner, "after": _read(lib)["openinference"]}


USAGES: dict[str, Callable[[types.ModuleType], Read]] = {
    "using_session": session_usage,
    "using_user": user_usage,
    "using_metadata": metadata_usage,
    "using_tags": tags_usage,
    "using_prompt_template": prompt_template_usage,
    "using_attributes": attributes_usage,
    "decorators": decorator_usage,
    "nesting": nested_usage,
}


@pytest.mark.parametrize("usage", USAGES, ids=list(USAGES))
def test_openinference_documented_usage_gives_the_same_attributes(usage: str, caplog: pytest.LogCaptureFixture) -> None:
    expected = USAGES[usage](oi)
    got = USAGES[usage](spanstamp)
    assert got == expected
    assert got["mine"] == got["openinference"]
    assert got["mine"]  # the usage put something in: the comparison is not of two empty dicts
    assert not [r for r in caplog.records if r.name == "spanstamp"]  # documented usage warns about nothing


def test_get_attributes_from_context_feeds_a_span_as_openinference_documents() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("dropin")
    for lib in (oi, spanstamp):
        with lib.using_attributes(session_id="s-1", user_id="u-1"), tracer.start_as_current_span(lib.__name__) as span:
            span.set_attributes(dict(lib.get_attributes_from_context()))
    by_name = {s.name: dict(s.attributes or {}) for s in exporter.get_finished_spans()}
    assert by_name["spanstamp"] == by_name["openinference.instrumentation"] == {"session.id": "s-1", "user.id": "u-1"}


@pytest.mark.parametrize("name", NAMES)
def test_every_openinference_call_shape_is_accepted(name: str) -> None:
    """Each of OpenInference's parameters exists here with the same name and kind; ours add only optional ones."""
    theirs = inspect.signature(getattr(oi, name)).parameters
    ours = inspect.signature(getattr(spanstamp, name)).parameters
    for parameter in theirs.values():
        assert parameter.name in ours, parameter.name
        assert ours[parameter.name].kind == parameter.kind, parameter.name
        if parameter.default is not parameter.empty:
            assert ours[parameter.name].default is not parameter.empty, parameter.name
    extra = [p for p in ours.values() if p.name not in theirs]
    assert all(p.default is not p.empty for p in extra)


def test_get_attributes_from_context_yields_pairs_like_openinference() -> None:
    with spanstamp.using_session("s-1"):
        pairs = spanstamp.get_attributes_from_context()
        assert not isinstance(pairs, dict)
        assert list(pairs) == [("session.id", "s-1")] == list(oi.get_attributes_from_context())
