"""Processor options and their SPANSTAMP_* defaults; ids named in metadata."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from openinference.instrumentation import using_session as oi_using_session
from opentelemetry import baggage
from opentelemetry.context import attach, detach
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import spanstamp
from spanstamp import (
    get_attributes_from_context,
    propagation,
    using_attributes,
    using_metadata,
    using_session,
    using_user,
)
from support import Tracing, strict_mode

KEY = "test-key-0123456789"


def pseudonym(user_id: str, key: str = KEY) -> str:
    return hmac.new(key.encode(), user_id.encode(), hashlib.sha256).hexdigest()


# --- Ids named in metadata -------------------------------------------------------------


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ({"session_id": "a", "thread_id": "b", "conversation_id": "c"}, "a"),
        ({"thread_id": "b", "conversation_id": "c"}, "b"),
        ({"conversation_id": " c "}, "c"),
        ({"conversation_id": 12}, "12"),
        ({"session_id": {"not": "an id"}, "thread_id": "b"}, "b"),
        ({"session_id": "   "}, None),
        ({"other": "x"}, None),
    ],
)
def test_metadata_names_the_session(metadata: dict[str, object], expected: str | None) -> None:
    tracing = Tracing()
    with using_metadata(metadata):
        tracing.record("span")
    assert tracing.attrs("span").get("session.id") == expected


def test_metadata_user_id_names_the_user() -> None:
    tracing = Tracing()
    with using_metadata({"user_id": "u-meta", "tier": "pro"}):
        tracing.record("span")
    assert tracing.attrs("span")["user.id"] == "u-meta"


def test_explicit_scopes_win_over_metadata_in_either_nesting_order() -> None:
    tracing = Tracing()
    with using_session("explicit-outer"), using_metadata({"session_id": "meta", "user_id": "meta-user"}):
        tracing.record("outer-explicit")
    with using_metadata({"session_id": "meta", "user_id": "meta-user"}):
        with using_session("explicit-inner"), using_user("u-inner"):
            tracing.record("inner-explicit")
        with using_metadata({"thread_id": "meta-2"}):
            tracing.record("inner-metadata")
    with oi_using_session("openinference"), using_metadata({"session_id": "meta"}):
        tracing.record("openinference-explicit")
    with using_attributes(session_id="same-scope", metadata={"session_id": "meta"}):
        tracing.record("same-scope")
    assert tracing.attrs("outer-explicit")["session.id"] == "explicit-outer"
    assert tracing.attrs("outer-explicit")["user.id"] == "meta-user"
    assert tracing.attrs("inner-explicit")["session.id"] == "explicit-inner"
    assert tracing.attrs("inner-explicit")["user.id"] == "u-inner"
    # Merged metadata still says session_id "meta", which outranks thread_id.
    assert tracing.attrs("inner-metadata")["session.id"] == "meta"
    assert tracing.attrs("openinference-explicit")["session.id"] == "openinference"
    assert tracing.attrs("same-scope")["session.id"] == "same-scope"


def test_metadata_session_is_stamped_when_only_ids_are_chosen() -> None:
    tracing = Tracing(attributes=["session.id"])
    with using_metadata({"session_id": "meta"}):
        tracing.record("span")
        assert dict(get_attributes_from_context())["session.id"] == "meta"
    assert tracing.attrs("span") == {"session.id": "meta"}


# --- Hashed user ids ---------------------------------------------------------------------


def test_hash_user_ids_stamps_the_pseudonym() -> None:
    tracing = Tracing(hash_user_ids=KEY)
    with using_attributes(session_id="s-1", user_id=" ada@example.com "):
        tracing.record("span")
    assert tracing.attrs("span") == {"session.id": "s-1", "user.id": pseudonym("ada@example.com")}


def test_hash_user_ids_key_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPANSTAMP_HASH_USER_IDS", "1")
    monkeypatch.setenv("SPANSTAMP_USER_ID_KEY", "env-key-abcdef")
    tracing = Tracing()
    with using_user("u-1"):
        tracing.record("span")
    assert tracing.attrs("span")["user.id"] == pseudonym("u-1", "env-key-abcdef")


def test_hashing_without_a_key_leaves_user_ids_out(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("SPANSTAMP_USER_ID_KEY", raising=False)
    with caplog.at_level(logging.WARNING, logger="spanstamp"):
        tracing = Tracing(hash_user_ids=True)
    with using_attributes(session_id="s-1", user_id="raw-user"):
        tracing.record("span")
    assert tracing.attrs("span") == {"session.id": "s-1"}
    assert "hash_user_ids" in caplog.text
    assert "raw-user" not in caplog.text
    with strict_mode(), pytest.raises(ValueError, match="hash_user_ids"):
        Tracing(hash_user_ids=True)


# --- Inbound baggage -----------------------------------------------------------------


@contextmanager
def inbound(**entries: str) -> Iterator[None]:
    """Baggage in the current context, as a server instrumentation extracts it."""
    context = None
    for key, value in entries.items():
        context = baggage.set_baggage(key, value, context)
    token = attach(context)  # type: ignore[arg-type]
    try:
        yield
    finally:
        detach(token)


def test_baggage_is_not_trusted_by_default() -> None:
    tracing = Tracing()
    with inbound(**{"session.id": "spoofed", "user.id": "admin"}):
        tracing.record("span")
    assert tracing.attrs("span") == {}


def test_trusted_baggage_fills_only_what_no_local_scope_sets() -> None:
    tracing = Tracing(trust_baggage=True, baggage_max_length=16, hash_user_ids=KEY)
    with inbound(**{"session.id": "s-in", "user.id": "already-hashed", "tier": "gold"}):
        tracing.record("inbound-only")
        with using_session("s-local"):
            tracing.record("local-session")
    with inbound(**{"session.id": "x" * 17}):
        tracing.record("too-long")
    # Inbound user ids were hashed upstream: not hashed again.
    assert tracing.attrs("inbound-only") == {"session.id": "s-in", "user.id": "already-hashed"}
    assert tracing.attrs("local-session") == {"session.id": "s-local", "user.id": "already-hashed"}
    assert tracing.attrs("too-long") == {}


def test_trust_baggage_from_the_environment_chooses_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPANSTAMP_TRUST_BAGGAGE", "session.id")
    tracing = Tracing()
    with inbound(**{"session.id": "s-in", "user.id": "admin"}):
        tracing.record("span")
    assert tracing.attrs("span") == {"session.id": "s-in"}


# --- Environment defaults for the other options --------------------------------------


def test_environment_chooses_attributes_and_conversation_id(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPANSTAMP_ATTRIBUTES", "session.id, tag.tags")
    monkeypatch.setenv("SPANSTAMP_GEN_AI_CONVERSATION_ID", "true")
    tracing = Tracing()
    with using_attributes(session_id="s-1", user_id="u-1", tags=["a"]):
        tracing.record("span")
    assert tracing.processor.attributes == ("session.id", "tag.tags")
    assert tracing.attrs("span") == {"session.id": "s-1", "tag.tags": ("a",), "gen_ai.conversation.id": "s-1"}


def test_explicit_arguments_override_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPANSTAMP_ATTRIBUTES", "session.id")
    monkeypatch.setenv("SPANSTAMP_GEN_AI_CONVERSATION_ID", "1")
    processor = spanstamp.SessionSpanProcessor(attributes=["user.id"], gen_ai_conversation_id=False)
    assert processor.attributes == ("user.id",)
    assert processor.gen_ai_conversation_id is False


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SPANSTAMP_GEN_AI_CONVERSATION_ID", "maybe"),
        ("SPANSTAMP_STAMP_LOCAL_ROOT", "2"),
        ("SPANSTAMP_BAGGAGE_MAX_LENGTH", "-5"),
        ("SPANSTAMP_HASH_USER_IDS", "yes please"),
    ],
)
def test_a_bad_variable_is_named_and_the_default_kept(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    monkeypatch.setenv("SPANSTAMP_TRUST_BAGGAGE", "1")
    with caplog.at_level(logging.WARNING, logger="spanstamp"):
        tracing = Tracing()
    assert name in caplog.text
    assert not tracing.processor.gen_ai_conversation_id
    with inbound(**{"session.id": "s" * 200}):
        tracing.record("span")
    # The default baggage cap is the id cap (256), so a 200-character id passes.
    assert tracing.attrs("span") == {"session.id": "s" * 200}


def test_hashing_covers_a_user_named_in_metadata() -> None:
    tracing = Tracing(hash_user_ids=KEY)
    with using_metadata({"user_id": "ada@example.com", "tier": "pro"}):
        tracing.record("span")
    attrs = tracing.attrs("span")
    assert attrs["user.id"] == pseudonym("ada@example.com")
    assert json.loads(attrs["metadata"]) == {"user_id": pseudonym("ada@example.com"), "tier": "pro"}
    assert "ada@example.com" not in str(attrs)


def test_hashing_without_a_key_removes_the_metadata_user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPANSTAMP_USER_ID_KEY", raising=False)
    tracing = Tracing(hash_user_ids=True)
    with using_metadata({"user_id": "ada@example.com", "tier": "pro"}):
        tracing.record("span")
    assert tracing.attrs("span") == {"metadata": '{"tier": "pro"}'}


def test_a_bad_hashing_key_is_named_as_the_option(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="spanstamp"):
        Tracing(hash_user_ids="  ")
    assert "SessionSpanProcessor(hash_user_ids)" in caplog.text


def test_hashing_shares_the_propagation_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPANSTAMP_USER_ID_KEY", raising=False)
    spanstamp.configure_propagation(user_id_key="shared-key-123456")
    try:
        tracing = Tracing(hash_user_ids=True)
        with using_user("u-1", propagate=True):
            tracing.record("span")
            sent = baggage.get_baggage("user.id")
    finally:
        propagation.load_environment()
    assert tracing.attrs("span")["user.id"] == sent == pseudonym("u-1", "shared-key-123456")


def test_a_scope_that_does_not_propagate_clears_the_outer_baggage_it_replaces() -> None:
    spanstamp.configure_propagation(user_id_key=KEY)
    try:
        with using_attributes(session_id="s-outer", user_id="u-outer", propagate=True):
            assert baggage.get_baggage("session.id") == "s-outer"
            with using_session("s-inner", propagate=False):
                assert baggage.get_baggage("session.id") is None
                # The user was not replaced here, so its outer entry still travels.
                assert baggage.get_baggage("user.id") == pseudonym("u-outer")
            assert baggage.get_baggage("session.id") == "s-outer"
    finally:
        propagation.load_environment()


def test_configure_passes_every_option_and_the_sampler() -> None:
    exporter = InMemorySpanExporter()
    provider = spanstamp.configure(
        exporter=exporter,
        batch=False,
        set_global=False,
        sampler=spanstamp.ParentBasedSessionIdRatio(0.5),
        hash_user_ids=KEY,
        gen_ai_conversation_id=True,
    )
    tracer = provider.get_tracer("tests")
    kept = {spanstamp.SessionIdRatioBased(0.5).keeps_session(f"s-{n}") for n in range(40)}
    assert kept == {True, False}  # both outcomes occur among these sessions
    for n in range(40):
        with using_attributes(session_id=f"s-{n}", user_id="u-1"), tracer.start_as_current_span(f"turn-{n}"):
            tracer.start_span("child").end()
    provider.shutdown()
    spans = exporter.get_finished_spans()
    exported = {s.attributes["session.id"] for s in spans if s.attributes}
    expected = {f"s-{n}" for n in range(40) if spanstamp.SessionIdRatioBased(0.5).keeps_session(f"s-{n}")}
    assert exported == expected
    assert len(spans) == 2 * len(expected)
    assert {s.attributes["user.id"] for s in spans if s.attributes} == {pseudonym("u-1")}
    assert all(s.attributes and s.attributes["gen_ai.conversation.id"] == s.attributes["session.id"] for s in spans)
