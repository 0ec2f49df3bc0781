"""User-id hashing where ids enter the Context, and privacy settings that fail closed (issue 10).

With hashing on, the Context holds the pseudonym, so every reader (ours, OpenInference's,
a sampler, the app) sees only it; a raw id another library wrote is hashed as it is read.
"""

from __future__ import annotations

import json
import logging

import openinference.instrumentation as oi
import pytest
from opentelemetry import baggage
from opentelemetry.context import get_current
from opentelemetry.propagate import inject

import spanstamp
from spanstamp import privacy, propagation
from support import Tracing, strict_mode

KEY = "entry-key-0123456789"
RAW = "ada@example.com"


def pseudonym(user_id: str, key: str = KEY) -> str:
    return spanstamp.pseudonymize(user_id, key=key)


@pytest.fixture
def hashing() -> None:
    spanstamp.configure_privacy(hash_user_ids=True, user_id_key=KEY)


@pytest.mark.usefixtures("hashing")
def test_the_context_holds_the_pseudonym_and_every_reader_sees_only_it() -> None:
    with spanstamp.using_attributes(user_id=f" {RAW} ", metadata={"user_id": RAW, "tier": "pro"}):
        assert get_current()["user.id"] == pseudonym(RAW)
        assert spanstamp.current_user_id() == pseudonym(RAW)
        theirs = dict(oi.get_attributes_from_context())  # what OpenInference's tracer copies
        assert theirs["user.id"] == pseudonym(RAW)
        assert json.loads(str(theirs["metadata"])) == {"user_id": pseudonym(RAW), "tier": "pro"}
        assert RAW not in repr(dict(get_current()))


@pytest.mark.usefixtures("hashing")
def test_a_raw_id_another_library_wrote_is_hashed_as_it_is_read() -> None:
    tracing = Tracing()
    with oi.using_user(RAW), oi.using_metadata({"user_id": RAW}):
        tracing.record("span")
        assert spanstamp.current_user_id() == pseudonym(RAW)
    attrs = tracing.attrs("span")
    assert attrs["user.id"] == pseudonym(RAW)
    assert json.loads(str(attrs["metadata"])) == {"user_id": pseudonym(RAW)}


@pytest.mark.usefixtures("hashing")
def test_nested_metadata_hashes_only_what_is_not_yet_a_pseudonym() -> None:
    with oi.using_metadata({"user_id": "outer-raw"}), spanstamp.using_metadata({"tier": "pro"}):
        merged = json.loads(str(dict(spanstamp.get_attributes_from_context())["metadata"]))
        assert merged == {"user_id": pseudonym("outer-raw"), "tier": "pro"}
        with spanstamp.using_metadata({"extra": 1}):
            inner = json.loads(str(dict(oi.get_attributes_from_context())["metadata"]))
    # Ours, already hashed, is not hashed a second time when an inner scope merges it.
    assert inner == {"user_id": pseudonym("outer-raw"), "tier": "pro", "extra": 1}


def test_metadata_user_is_hashed_even_when_user_id_is_not_stamped() -> None:
    # Finding 4: the metadata's user_id was exported raw when user.id was not among the attributes.
    tracing = Tracing(attributes=["session.id", "metadata"], hash_user_ids=KEY)
    with spanstamp.using_metadata({"user_id": RAW}):
        tracing.record("span")
    assert tracing.attrs("span") == {"metadata": json.dumps({"user_id": pseudonym(RAW)})}


@pytest.mark.usefixtures("hashing")
def test_a_propagated_user_id_is_the_pseudonym_once_not_hashed_twice() -> None:
    with spanstamp.using_attributes(session_id="s-1", user_id=RAW, propagate=True):
        assert baggage.get_baggage("user.id") == pseudonym(RAW)
        carrier: dict[str, str] = {}
        inject(carrier)
    assert RAW not in carrier["baggage"]
    assert pseudonym(RAW) in carrier["baggage"]


def test_hashing_without_a_key_keeps_user_ids_out_of_the_context(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("SPANSTAMP_USER_ID_KEY", raising=False)
    privacy.load_environment({"SPANSTAMP_HASH_USER_IDS": "1"})
    with caplog.at_level(logging.WARNING, logger="spanstamp"):
        with spanstamp.using_attributes(session_id="s-1", user_id=RAW, metadata={"user_id": RAW, "a": 1}):
            assert spanstamp.current_user_id() is None
            assert json.loads(str(dict(spanstamp.get_attributes_from_context())["metadata"])) == {"a": 1}
            assert RAW not in repr(dict(get_current()))
    assert "no key" in caplog.text
    assert RAW not in caplog.text
    with strict_mode(), pytest.raises(ValueError, match="no key"):
        spanstamp.using_user(RAW)


@pytest.mark.parametrize("value", ["ture", "enabled", "my-secret-key-value"])
def test_an_unreadable_hashing_setting_fails_closed_and_is_never_echoed(
    value: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Finding 5: a typo turned hashing off, and the warning echoed what may be the key itself.
    monkeypatch.setenv("SPANSTAMP_USER_ID_KEY", KEY)
    monkeypatch.setenv("SPANSTAMP_HASH_USER_IDS", value)
    with caplog.at_level(logging.WARNING, logger="spanstamp"):
        tracing = Tracing()
    with spanstamp.using_user(RAW):
        tracing.record("span")
    assert tracing.attrs("span") == {"user.id": pseudonym(RAW)}
    assert "SPANSTAMP_HASH_USER_IDS is not a boolean" in caplog.text
    assert value not in caplog.text


def test_a_processor_cannot_turn_off_hashing_the_process_asked_for() -> None:
    spanstamp.configure_privacy(hash_user_ids=True, user_id_key=KEY)
    tracing = Tracing(hash_user_ids=False)
    with spanstamp.using_user(RAW):
        tracing.record("span")
    assert tracing.attrs("span") == {"user.id": pseudonym(RAW)}


@pytest.mark.parametrize("listed", [",,", " , ", "x,,", "user,session"])
def test_an_attributes_variable_that_names_nothing_known_keeps_the_default(
    listed: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Finding 6: ",," silently stamped nothing; "x,," stamped nothing and named the argument.
    monkeypatch.setenv("SPANSTAMP_ATTRIBUTES", listed)
    with caplog.at_level(logging.WARNING, logger="spanstamp"):
        tracing = Tracing()
    assert tracing.processor.attributes == spanstamp.attributes.CONTEXT_ATTRIBUTES
    assert "SPANSTAMP_ATTRIBUTES" in caplog.text
    assert "SessionSpanProcessor(attributes)" not in caplog.text
    with spanstamp.using_session("s-1"):
        tracing.record("span")
    assert tracing.attrs("span") == {"session.id": "s-1"}


def test_a_lone_surrogate_never_reaches_the_context_or_the_baggage_header() -> None:
    # Finding 2: accepted as an id, it made every instrumented outgoing call raise at inject.
    lone = json.loads('"abc\\ud800"')
    propagation.configure_propagation(user_id_key=KEY)
    try:
        with spanstamp.using_attributes(session_id=lone, user_id=lone, tags=[lone], propagate=True):
            assert spanstamp.current_session_id() is None
            carrier: dict[str, str] = {}
            inject(carrier)  # must not raise
        assert "baggage" not in carrier
        with strict_mode(), pytest.raises(ValueError, match="UTF-8"):
            spanstamp.using_session(lone)
    finally:
        propagation.load_environment()


@pytest.mark.usefixtures("hashing")
def test_in_configures_pipeline_a_user_id_written_after_the_start_is_hashed_before_export() -> None:
    # An instrumentor (OpenInference's LangChain tracer, say) may write user.id or metadata
    # itself at span end; only what the processor stamped is sure to be a pseudonym.
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = spanstamp.configure(exporter=exporter, batch=False, set_global=False)
    tracer = provider.get_tracer("late")
    with spanstamp.using_user(RAW), tracer.start_as_current_span("ours"):
        pass
    with tracer.start_as_current_span("written late") as span:
        span.set_attribute("user.id", RAW)
        span.set_attribute("metadata", json.dumps({"user_id": RAW, "tier": "pro"}))
    provider.shutdown()
    by_name = {s.name: dict(s.attributes or {}) for s in exporter.get_finished_spans()}
    assert by_name["ours"]["user.id"] == pseudonym(RAW)  # stamped: not hashed twice
    assert by_name["written late"]["user.id"] == pseudonym(RAW)
    assert json.loads(by_name["written late"]["metadata"]) == {"user_id": pseudonym(RAW), "tier": "pro"}
    assert RAW not in repr(by_name)
