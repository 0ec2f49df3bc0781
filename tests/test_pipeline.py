"""install() and configure(): where the processor goes, once, and what it stamps there.

Spans are read back with the SDK's real InMemorySpanExporter. The global provider can be
set only once per process, so configure(set_global=True) runs in a subprocess.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import spanstamp
from spanstamp import SessionSpanProcessor, rules, using_attributes, using_session, using_user

ALL_VALUES = {
    "session_id": "s-1",
    "user_id": "u-1",
    "metadata": {"tier": "pro"},
    "tags": ["beta"],
    "prompt_template": "Answer {q}",
    "prompt_template_version": "v3",
    "prompt_template_variables": {"q": "why"},
}


@pytest.fixture(autouse=True)
def _lenient_rules() -> Iterator[None]:
    # Strict mode is process-wide: every test starts and ends lenient, with the
    # warning rate limiter reset so each test sees its own warnings.
    rules.configure_rules(strict=False)
    rules.forget_warnings()
    yield
    rules.configure_rules(strict=False)
    rules.forget_warnings()


def _sdk_provider() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def _session_processors(provider: TracerProvider) -> list[SessionSpanProcessor]:
    # The SDK has no public list of processors; this private one is what install() inspects too.
    processors = provider._active_span_processor._span_processors
    return [p for p in processors if isinstance(p, SessionSpanProcessor)]


def _one_span(provider: TracerProvider, exporter: InMemorySpanExporter, name: str = "work") -> dict[str, object]:
    exporter.clear()
    with using_attributes(**ALL_VALUES), provider.get_tracer("t").start_as_current_span(name):
        pass
    (span,) = exporter.get_finished_spans()
    return dict(span.attributes or {})


def _spanstamp_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "spanstamp" and r.levelno == logging.WARNING]


# --- install() ------------------------------------------------------------------------------


def test_install_twice_returns_the_same_processor_and_stamps_once(caplog: pytest.LogCaptureFixture) -> None:
    provider, exporter = _sdk_provider()
    try:
        first = spanstamp.install(provider, attributes=["session.id"])
        assert spanstamp.install(provider, attributes=["session.id"]) is first
        assert caplog.records == []
        # A second call with other options must not add a second processor: if it did,
        # user.id and gen_ai.conversation.id would appear on the span. It says so.
        second = spanstamp.install(provider, gen_ai_conversation_id=True)
        assert second is first
        assert "the options of this call are ignored" in caplog.text
        assert len(_session_processors(provider)) == 1

        attributes = _one_span(provider, exporter)
        assert attributes == {"session.id": "s-1"}
        assert len(exporter.get_finished_spans()) == 1
    finally:
        provider.shutdown()


def test_install_stamps_every_value_on_a_plain_sdk_provider() -> None:
    provider, exporter = _sdk_provider()
    try:
        processor = spanstamp.install(provider)
        assert processor.downstream is None
        assert _one_span(provider, exporter) == {
            "session.id": "s-1",
            "user.id": "u-1",
            "metadata": '{"tier": "pro"}',
            "tag.tags": ("beta",),
            "llm.prompt_template.template": "Answer {q}",
            "llm.prompt_template.version": "v3",
            "llm.prompt_template.variables": '{"q": "why"}',
        }
        with provider.get_tracer("t").start_as_current_span("outside"):
            pass
        assert exporter.get_finished_spans()[-1].attributes == {}
    finally:
        provider.shutdown()


def test_install_finds_a_processor_added_by_hand() -> None:
    provider, exporter = _sdk_provider()
    try:
        by_hand = SessionSpanProcessor(attributes=["user.id"])
        provider.add_span_processor(by_hand)
        assert spanstamp.install(provider) is by_hand
        assert spanstamp.install(provider) is by_hand
        assert _session_processors(provider) == [by_hand]
        # Only the hand-added processor stamps: user.id and nothing else.
        assert _one_span(provider, exporter) == {"user.id": "u-1"}
    finally:
        provider.shutdown()


def test_install_finds_the_processor_configure_built() -> None:
    exporter = InMemorySpanExporter()
    provider = spanstamp.configure(exporter=exporter, batch=False, attributes=["session.id"], set_global=False)
    try:
        processor = spanstamp.install(provider)
        assert processor.downstream is not None  # configure()'s, which exports
        assert _session_processors(provider) == [processor]
        assert _one_span(provider, exporter) == {"session.id": "s-1"}
    finally:
        provider.shutdown()


@pytest.mark.parametrize(
    ("make_provider", "hint"),
    [
        pytest.param(trace.NoOpTracerProvider, "got NoOpTracerProvider", id="noop"),
        pytest.param(trace.ProxyTracerProvider, "no provider is set yet", id="proxy"),
    ],
)
def test_install_on_a_non_sdk_provider_warns_and_returns_an_unattached_processor(
    make_provider: type, hint: str, caplog: pytest.LogCaptureFixture
) -> None:
    provider = make_provider()
    with caplog.at_level(logging.WARNING, logger="spanstamp"):
        processor = spanstamp.install(provider)
    assert isinstance(processor, SessionSpanProcessor)
    assert processor.downstream is None
    (message,) = _spanstamp_warnings(caplog)
    assert message.startswith("install(tracer_provider): spans can only be stamped on an SDK TracerProvider")
    assert hint in message
    # Unattached: nothing remembers it, so the next call makes a new one.
    assert spanstamp.install(provider) is not processor

    # The processor still works wherever the caller puts it.
    sdk_provider, exporter = _sdk_provider()
    try:
        sdk_provider.add_span_processor(processor)
        with using_session("s-2"), sdk_provider.get_tracer("t").start_as_current_span("later"):
            pass
        assert exporter.get_finished_spans()[0].attributes == {"session.id": "s-2"}
    finally:
        sdk_provider.shutdown()


@pytest.mark.parametrize("make_provider", [trace.NoOpTracerProvider, trace.ProxyTracerProvider], ids=["noop", "proxy"])
def test_install_on_a_non_sdk_provider_raises_in_strict_mode(make_provider: type) -> None:
    spanstamp.configure_rules(strict=True)
    with pytest.raises(TypeError, match=r"install\(tracer_provider\): spans can only be stamped on an SDK"):
        spanstamp.install(make_provider())


# --- configure(): options ---------------------------------------------------------------


def test_gen_ai_conversation_id_copies_the_session_id() -> None:
    exporter = InMemorySpanExporter()
    provider = spanstamp.configure(exporter=exporter, batch=False, gen_ai_conversation_id=True, set_global=False)
    try:
        attributes = _one_span(provider, exporter)
        assert attributes["gen_ai.conversation.id"] == attributes["session.id"] == "s-1"

        exporter.clear()
        with using_user("u-only"), provider.get_tracer("t").start_as_current_span("no-session"):
            pass
        (span,) = exporter.get_finished_spans()
        assert span.attributes == {"user.id": "u-only"}
    finally:
        provider.shutdown()


def test_gen_ai_conversation_id_is_off_by_default() -> None:
    exporter = InMemorySpanExporter()
    provider = spanstamp.configure(exporter=exporter, batch=False, set_global=False)
    try:
        attributes = _one_span(provider, exporter)
        assert attributes["session.id"] == "s-1"
        assert "gen_ai.conversation.id" not in attributes
    finally:
        provider.shutdown()


def test_attributes_option_stamps_only_the_chosen_keys() -> None:
    exporter = InMemorySpanExporter()
    provider = spanstamp.configure(exporter=exporter, batch=False, attributes=["session.id"], set_global=False)
    try:
        assert _one_span(provider, exporter) == {"session.id": "s-1"}
    finally:
        provider.shutdown()


def test_gen_ai_conversation_id_needs_session_id_among_the_attributes() -> None:
    exporter = InMemorySpanExporter()
    provider = spanstamp.configure(
        exporter=exporter, batch=False, attributes=["user.id"], gen_ai_conversation_id=True, set_global=False
    )
    try:
        assert _one_span(provider, exporter) == {"user.id": "u-1"}
    finally:
        provider.shutdown()


def test_unknown_attribute_name_warns_or_raises(caplog: pytest.LogCaptureFixture) -> None:
    exporter = InMemorySpanExporter()
    with caplog.at_level(logging.WARNING, logger="spanstamp"):
        provider = spanstamp.configure(
            exporter=exporter, batch=False, attributes=["session.id", "session"], set_global=False
        )
    try:
        (message,) = _spanstamp_warnings(caplog)
        assert "unknown attribute name (a str of 7 characters)" in message
        assert _one_span(provider, exporter) == {"session.id": "s-1"}
    finally:
        provider.shutdown()

    spanstamp.configure_rules(strict=True)
    with pytest.raises(ValueError, match="unknown attribute name"):
        spanstamp.configure(exporter=InMemorySpanExporter(), attributes=["session"], set_global=False)


def test_configure_without_set_global_leaves_the_global_provider_alone() -> None:
    before = trace.get_tracer_provider()
    provider = spanstamp.configure(exporter=InMemorySpanExporter(), batch=False, set_global=False)
    try:
        assert trace.get_tracer_provider() is before
        assert trace.get_tracer_provider() is not provider
    finally:
        provider.shutdown()


# --- The SDK's attribute length limit against the id cap ----------------------------------


def test_install_warns_when_the_sdk_would_cut_ids_the_cap_lets_through(caplog: pytest.LogCaptureFixture) -> None:
    long_id = "s" * 40  # within the id cap of 256, over the limit of 16
    exporter = InMemorySpanExporter()
    provider = TracerProvider(span_limits=SpanLimits(max_span_attribute_length=16))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with caplog.at_level(logging.WARNING, logger="spanstamp"):
        spanstamp.install(provider)
    (message,) = _spanstamp_warnings(caplog)
    assert "install(): this provider cuts span attribute values at 16 characters" in message
    assert "below the id cap of 256" in message
    assert "SPANSTAMP_MAX_ID_LENGTH" in message
    # What the warning is about: the SDK really cuts the id.
    with using_session(long_id):
        provider.get_tracer("t").start_span("work").end()
    (span,) = exporter.get_finished_spans()
    assert span.attributes is not None
    assert span.attributes["session.id"] == long_id[:16]


def test_a_limit_at_or_above_the_cap_is_fine(caplog: pytest.LogCaptureFixture) -> None:
    for limit in (256, 4096):
        provider = TracerProvider(span_limits=SpanLimits(max_span_attribute_length=limit))
        with caplog.at_level(logging.WARNING, logger="spanstamp"):
            spanstamp.install(provider)
    rules.configure_rules(max_id_length=16)
    try:
        with caplog.at_level(logging.WARNING, logger="spanstamp"):
            spanstamp.install(TracerProvider(span_limits=SpanLimits(max_span_attribute_length=16)))
    finally:
        rules.configure_rules(max_id_length=rules.DEFAULT_MAX_ID_LENGTH)
    assert _spanstamp_warnings(caplog) == []


def test_the_length_limit_check_raises_in_strict_mode() -> None:
    rules.configure_rules(strict=True)
    with pytest.raises(ValueError, match=r"cuts span attribute values at 100 characters"):
        spanstamp.install(TracerProvider(span_limits=SpanLimits(max_span_attribute_length=100)))


def test_configure_reads_the_limit_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", "64")
    with caplog.at_level(logging.WARNING, logger="spanstamp"):
        provider = spanstamp.configure(exporter=InMemorySpanExporter(), batch=False, set_global=False)
    provider.shutdown()
    (message,) = _spanstamp_warnings(caplog)
    assert message.startswith("configure(): this provider cuts span attribute values at 64 characters")


# --- configure(set_global=True): in a fresh process --------------------------------------

_GLOBAL_SCRIPT = textwrap.dedent(
    """
    import json
    import logging

    from opentelemetry import trace
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    import spanstamp

    warnings = []


    class Collect(logging.Handler):
        def emit(self, record):
            warnings.append(record.getMessage())


    logging.getLogger("spanstamp").addHandler(Collect(logging.WARNING))
    result = {}

    # Before any provider is global, install() can only warn.
    result["early_install_attached"] = spanstamp.install().downstream is not None
    result["warnings_before"] = list(warnings)
    warnings.clear()

    exporter = InMemorySpanExporter()
    first = spanstamp.configure(exporter=exporter, batch=False, service_name="global-one")
    result["first_is_global"] = trace.get_tracer_provider() is first
    result["install_finds_configure"] = spanstamp.install().downstream is not None

    with spanstamp.using_session("s-global"), trace.get_tracer("t").start_as_current_span("via-global"):
        pass
    span = exporter.get_finished_spans()[0]
    result["global_span"] = [span.name, dict(span.attributes), span.resource.attributes["service.name"]]
    result["warnings_first"] = list(warnings)
    warnings.clear()

    second = spanstamp.configure(exporter=InMemorySpanExporter(), batch=False, service_name="global-two")
    result["second_is_global"] = trace.get_tracer_provider() is second
    result["first_still_global"] = trace.get_tracer_provider() is first
    result["warnings_second"] = list(warnings)
    warnings.clear()

    third = spanstamp.configure(exporter=InMemorySpanExporter(), batch=False, set_global=False)
    result["warnings_third"] = list(warnings)
    for provider in (first, second, third):
        provider.shutdown()
    print(json.dumps(result))
    """
)


def test_configure_sets_the_global_provider_once_in_a_fresh_process() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SPANSTAMP_"))}
    done = subprocess.run(
        [sys.executable, "-c", _GLOBAL_SCRIPT], capture_output=True, text=True, timeout=120, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])

    assert result["early_install_attached"] is False
    (early,) = result["warnings_before"]
    assert "no provider is set yet" in early

    assert result["first_is_global"] is True
    assert result["install_finds_configure"] is True
    assert result["global_span"] == ["via-global", {"session.id": "s-global"}, "global-one"]
    assert result["warnings_first"] == []

    assert result["second_is_global"] is False
    assert result["first_still_global"] is True
    (already,) = result["warnings_second"]
    assert "a global TracerProvider is already set" in already
    assert "spanstamp.install()" in already

    assert result["warnings_third"] == []
