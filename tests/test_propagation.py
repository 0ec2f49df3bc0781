"""Baggage out and in: what a propagating scope sends, and what an inbound header may set."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from opentelemetry import baggage
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context

from spanstamp import propagation
from spanstamp.attributes import METADATA, SESSION_ID, USER_ID
from spanstamp.privacy import USER_ID_KEY_ENV, pseudonymize
from spanstamp.propagation import (
    DEFAULT_TRUSTED_KEYS,
    PROPAGATE_ENV,
    TRUST_BAGGAGE_ENV,
    configure_propagation,
    env_trusted_keys,
    inbound_ids,
    outbound_baggage,
    propagation_enabled,
    trusted_keys,
)
from support import strict_mode

KEY = "k3y-for-tests-0123456789abcdef0123"
EMAIL = "ada.lovelace@example.com"


@pytest.fixture(autouse=True)
def _no_propagation_settings() -> Iterator[None]:
    # Propagation settings are process-wide: each test starts and leaves them unset.
    propagation.load_environment({})
    yield
    propagation.load_environment({})


def _baggage(**entries: object) -> Context:
    context = Context()
    for key, value in entries.items():
        context = baggage.set_baggage(key.replace("_", "."), value, context)
    return context


# --- The process-wide default -------------------------------------------------------------


def test_propagation_is_off_unless_turned_on() -> None:
    assert propagation_enabled() is False
    configure_propagation(enabled=True)
    assert propagation_enabled() is True
    configure_propagation(user_id_key=KEY)  # None leaves the switch as it is
    assert propagation_enabled() is True
    configure_propagation(enabled=False)
    assert propagation_enabled() is False


def test_the_environment_turns_it_on_and_a_bad_value_warns(caplog: pytest.LogCaptureFixture) -> None:
    propagation.load_environment({PROPAGATE_ENV: "1"})
    assert propagation_enabled() is True
    with caplog.at_level(logging.WARNING, logger="spanstamp"):
        propagation.load_environment({PROPAGATE_ENV: "sometimes"})
    assert propagation_enabled() is False
    assert f"{PROPAGATE_ENV} is not a boolean" in caplog.text
    assert "sometimes" not in caplog.text  # values are never echoed


def test_enabled_must_be_a_bool() -> None:
    with pytest.raises(TypeError, match="configure_propagation\\(enabled\\) must be a bool"):
        configure_propagation(enabled="yes")  # type: ignore[arg-type]


# --- Outbound ------------------------------------------------------------------------------


def test_a_session_id_propagates_as_it_is_and_a_user_id_only_as_its_pseudonym() -> None:
    configure_propagation(user_id_key=KEY)
    entries = outbound_baggage({SESSION_ID: "s-1", USER_ID: EMAIL, METADATA: '{"tier": "pro"}'})
    assert entries == {SESSION_ID: "s-1", USER_ID: pseudonymize(EMAIL, key=KEY)}
    assert EMAIL not in str(entries)


def test_the_key_can_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    propagation.load_environment({USER_ID_KEY_ENV: KEY})
    assert outbound_baggage({USER_ID: EMAIL}) == {USER_ID: pseudonymize(EMAIL, key=KEY)}
    monkeypatch.setenv(USER_ID_KEY_ENV, "another-key-from-os-environ")
    propagation.load_environment()
    assert outbound_baggage({USER_ID: EMAIL}) == {USER_ID: pseudonymize(EMAIL, key="another-key-from-os-environ")}


def test_without_a_key_the_user_id_is_not_propagated_and_a_warning_says_so(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="spanstamp"):
        entries = outbound_baggage({SESSION_ID: "s-1", USER_ID: EMAIL}, where="using_user(propagate)")
    assert entries == {SESSION_ID: "s-1"}
    (record,) = caplog.records
    assert record.getMessage().startswith("using_user(propagate): there is no key to pseudonymize the user id with")
    assert USER_ID_KEY_ENV in record.getMessage()
    assert record.getMessage().endswith("; the user id is not propagated")
    assert EMAIL not in caplog.text


def test_without_a_key_strict_mode_raises_without_the_user_id() -> None:
    with strict_mode(), pytest.raises(ValueError, match="raw user ids never leave the process") as caught:
        outbound_baggage({USER_ID: EMAIL})
    assert EMAIL not in str(caught.value)


def test_an_empty_key_given_to_configure_is_rejected_and_user_ids_stay_home(caplog: pytest.LogCaptureFixture) -> None:
    configure_propagation(user_id_key=KEY)
    with caplog.at_level(logging.WARNING, logger="spanstamp"):
        configure_propagation(user_id_key="")
        assert outbound_baggage({USER_ID: EMAIL}) == {}
    assert "configure_propagation(user_id_key): got an empty or blank key; no key is used" in caplog.text
    assert "the user id is not propagated" in caplog.text


def test_hidden_values_and_other_keys_add_nothing() -> None:
    configure_propagation(user_id_key=KEY)
    assert outbound_baggage({}) == {}
    assert outbound_baggage({SESSION_ID: None, USER_ID: None}) == {}
    assert outbound_baggage({METADATA: "{}", "tag.tags": ("a",)}) == {}


def test_importing_never_fails_on_a_bad_key_variable_even_in_strict_mode() -> None:
    # The key is read on first use, so a bad variable surfaces where ids propagate.
    code = (
        "from spanstamp import propagation\n"
        "try:\n"
        "    propagation.outbound_baggage({'user.id': 'ada@example.com'})\n"
        "except ValueError as exc:\n"
        "    print('raised:', exc)\n"
    )
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SPANSTAMP_")}
    environ.update({"SPANSTAMP_STRICT": "1", USER_ID_KEY_ENV: ""})
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environ, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"raised: {USER_ID_KEY_ENV}: got an empty or blank key")
    assert "ada@example.com" not in result.stdout + result.stderr


def test_the_variables_alone_make_a_process_propagate_pseudonyms() -> None:
    code = (
        "from spanstamp import propagation\n"
        "print(propagation.propagation_enabled())\n"
        "print(propagation.outbound_baggage({'user.id': 'ada.lovelace@example.com'})['user.id'])\n"
    )
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SPANSTAMP_")}
    environ.update({PROPAGATE_ENV: "true", USER_ID_KEY_ENV: KEY})
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environ, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", pseudonymize(EMAIL, key=KEY)]


# --- Through the real W3C propagator and back ------------------------------------------------


@pytest.mark.parametrize("session_id", ["s-1", "conv 7, turn=2 ok", "séance-ü-1", "a+b%20c"])
def test_what_goes_out_comes_back_in_unchanged(session_id: str) -> None:
    configure_propagation(user_id_key=KEY)
    entries = outbound_baggage({SESSION_ID: session_id, USER_ID: EMAIL})
    context = Context()
    for key, value in entries.items():
        context = baggage.set_baggage(key, value, context)
    headers: dict[str, str] = {}
    W3CBaggagePropagator().inject(headers, context)
    assert EMAIL not in headers["baggage"]
    received = W3CBaggagePropagator().extract(headers, Context())
    assert inbound_ids(received, DEFAULT_TRUSTED_KEYS, 256) == entries


# --- Inbound ---------------------------------------------------------------------------------


def test_no_baggage_or_no_trusted_keys_gives_nothing() -> None:
    assert inbound_ids(Context(), DEFAULT_TRUSTED_KEYS, 256) == {}
    assert inbound_ids(_baggage(session_id="s-1"), frozenset(), 256) == {}


def test_only_allow_listed_keys_are_read_and_values_are_stripped() -> None:
    context = _baggage(session_id=" s-1 ", user_id="u-1", tenant="acme", metadata="{}")
    assert inbound_ids(context, DEFAULT_TRUSTED_KEYS, 256) == {SESSION_ID: "s-1", USER_ID: "u-1"}
    assert inbound_ids(context, frozenset({SESSION_ID}), 256) == {SESSION_ID: "s-1"}


def test_the_length_cap_is_inclusive() -> None:
    assert inbound_ids(_baggage(session_id="x" * 10), DEFAULT_TRUSTED_KEYS, 10) == {SESSION_ID: "x" * 10}
    assert inbound_ids(_baggage(session_id="x" * 11), DEFAULT_TRUSTED_KEYS, 10) == {}


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "   ",
        "ad\r\nmin",
        "ad\x00min",
        "\x1b[31madmin",
        "\u202eadmin",  # right-to-left override
        "ad\u200bmin",  # zero-width space
        "line\u2028break",
        "x" * 257,
    ],
)
def test_bad_values_are_dropped_quietly_without_showing_them(bad: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="spanstamp"):
        found = inbound_ids(_baggage(session_id="s-1", user_id=bad), DEFAULT_TRUSTED_KEYS, 256)
    assert found == {SESSION_ID: "s-1"}
    assert [record.levelno for record in caplog.records] == [logging.DEBUG]
    assert caplog.records[0].getMessage().startswith("inbound baggage entry user.id dropped: ")
    if bad.strip():
        assert bad.strip() not in caplog.text


def test_printable_unicode_is_an_id_like_any_other() -> None:
    context = _baggage(session_id="séance-ü-会话")
    assert inbound_ids(context, DEFAULT_TRUSTED_KEYS, 256) == {SESSION_ID: "séance-ü-会话"}


def test_values_that_are_not_plain_str_are_dropped_without_touching_them() -> None:
    class Hostile(str):
        def strip(self, chars: str | None = None) -> str:
            raise RuntimeError("must not be called")

    context = _baggage(session_id=42, user_id=Hostile("u-1"))
    assert inbound_ids(context, DEFAULT_TRUSTED_KEYS, 256) == {}


def test_a_flood_of_entries_reads_only_the_trusted_keys() -> None:
    context = Context()
    for n in range(500):
        context = baggage.set_baggage(f"k{n}", "v" * 100, context)
    context = baggage.set_baggage(SESSION_ID, "s-9", context)
    assert inbound_ids(context, DEFAULT_TRUSTED_KEYS, 256) == {SESSION_ID: "s-9"}


def test_a_spoofed_header_through_the_real_propagator_yields_only_clean_ids(caplog: pytest.LogCaptureFixture) -> None:
    header = "session.id=s-2,user.id=ad%0D%0Amin,role=admin,user.id2=x,=nokey,novalue,session.id2=%E2%80%AEx"
    received = W3CBaggagePropagator().extract({"baggage": header}, Context())
    with caplog.at_level(logging.DEBUG, logger="spanstamp"):
        assert inbound_ids(received, DEFAULT_TRUSTED_KEYS, 256) == {SESSION_ID: "s-2"}
    # OpenTelemetry's propagator warns about the malformed entries itself; spanstamp adds
    # only debug lines, naming the key.
    ours = [record for record in caplog.records if record.name == "spanstamp"]
    assert [record.levelno for record in ours] == [logging.DEBUG]
    assert "inbound baggage entry user.id dropped" in ours[0].getMessage()


# --- Which keys a processor may trust ----------------------------------------------------------


def test_trust_options() -> None:
    where = "SessionSpanProcessor(trust_baggage)"
    assert trusted_keys(True, where) == DEFAULT_TRUSTED_KEYS == frozenset({SESSION_ID, USER_ID})
    assert trusted_keys(False, where) == frozenset()
    assert trusted_keys([SESSION_ID], where) == frozenset({SESSION_ID})
    assert trusted_keys((), where) == frozenset()


def test_an_unknown_key_is_not_trusted_and_a_bare_str_is_refused(caplog: pytest.LogCaptureFixture) -> None:
    where = "SessionSpanProcessor(trust_baggage)"
    with caplog.at_level(logging.WARNING, logger="spanstamp"):
        assert trusted_keys([SESSION_ID, "metadata"], where) == frozenset({SESSION_ID})
        assert trusted_keys("session.id", where) == frozenset()
    assert f"{where}: cannot trust this baggage key (a str of 8 characters)" in caplog.text
    assert f"{where}: expected a bool or a list of baggage keys, got a str" in caplog.text
    with strict_mode(), pytest.raises(ValueError, match="cannot trust this baggage key"):
        trusted_keys(["tenant"], where)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("true", DEFAULT_TRUSTED_KEYS),
        ("1", DEFAULT_TRUSTED_KEYS),
        ("off", frozenset()),
        ("session.id", frozenset({SESSION_ID})),
        (" session.id , user.id ", DEFAULT_TRUSTED_KEYS),
    ],
)
def test_trust_from_the_environment(value: str | None, expected: frozenset[str] | None) -> None:
    environ = {} if value is None else {TRUST_BAGGAGE_ENV: value}
    assert env_trusted_keys(environ) == expected


def test_an_unknown_key_in_the_environment_is_named(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="spanstamp"):
        assert env_trusted_keys({TRUST_BAGGAGE_ENV: "session.id,tenant"}) == frozenset({SESSION_ID})
    assert f"{TRUST_BAGGAGE_ENV}: cannot trust this baggage key" in caplog.text
