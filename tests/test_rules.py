"""Input rules: every rejected value is left out with a warning, or raises in strict mode."""

from __future__ import annotations

import datetime
import json
import logging
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest

from spanstamp import (
    configure_rules,
    current_session_id,
    get_attributes_from_context,
    using_attributes,
    using_metadata,
    using_prompt_template,
    using_session,
    using_tags,
    using_user,
)
from spanstamp.rules import DEFAULT_MAX_ID_LENGTH, max_id_length
from support import Tracing, strict_mode

SECRET = "alice@example.com"

# (label, scope factory, exception in strict mode, words the message must contain)
REJECTED: list[tuple[str, Callable[[], Any], type[Exception], str]] = [
    ("float id", lambda: using_session(3.5), TypeError, "using_session(session_id): expected a str or int"),
    ("bool id", lambda: using_user(True), TypeError, "using_user(user_id): expected a str or int"),
    ("bytes id", lambda: using_session(b"abc"), TypeError, "got a value of type bytes"),
    ("empty id", lambda: using_session(""), ValueError, "using_session(session_id): got an empty or blank str"),
    ("blank id", lambda: using_user(" \t\n"), ValueError, "using_user(user_id): got an empty or blank str"),
    ("long id", lambda: using_session("x" * 257), ValueError, "got a str of 257 characters, over the cap of 256"),
    ("str tags", lambda: using_tags("abc"), TypeError, "using_tags(tags): expected a list of str, got a str"),
    ("non-str tag", lambda: using_tags([1]), TypeError, "each tag must be a str"),
    ("blank tag", lambda: using_tags([" "]), ValueError, "got an empty or blank tag"),
    ("list metadata", lambda: using_metadata(["a"]), TypeError, "using_metadata(metadata): expected a mapping"),
    ("int metadata key", lambda: using_metadata({1: "a"}), TypeError, "keys must be str, got a key of type int"),
    ("tuple key inside", lambda: using_metadata({"a": {(1, 2): 3}}), ValueError, "cannot be encoded as JSON"),
    ("blank template", lambda: using_prompt_template(template=" "), ValueError, "got an empty or blank str"),
    ("int template", lambda: using_prompt_template(template=5), TypeError, "using_prompt_template(template)"),
    (
        "version without template",
        lambda: using_attributes(prompt_template_version="v1"),
        ValueError,
        "using_attributes(prompt_template_version): given without a valid template",
    ),
    (
        "session in using_attributes",
        lambda: using_attributes(session_id=[1]),
        TypeError,
        "using_attributes(session_id)",
    ),
]


@pytest.mark.parametrize(("label", "make", "error", "words"), REJECTED, ids=[r[0] for r in REJECTED])
def test_default_mode_leaves_the_value_out_and_warns(
    label: str, make: Callable[[], Any], error: type[Exception], words: str, caplog: pytest.LogCaptureFixture
) -> None:
    tracing = Tracing()
    with caplog.at_level(logging.WARNING, logger="spanstamp"), make():
        tracing.record("span")
    assert tracing.attrs("span") == {}
    (record,) = [r for r in caplog.records if r.name == "spanstamp"]
    assert record.levelno == logging.WARNING
    assert words in record.getMessage()
    assert "left out" in record.getMessage()


@pytest.mark.parametrize(("label", "make", "error", "words"), REJECTED, ids=[r[0] for r in REJECTED])
def test_strict_mode_raises_naming_the_argument(
    label: str, make: Callable[[], Any], error: type[Exception], words: str
) -> None:
    with strict_mode(), pytest.raises(error) as raised:
        make()
    assert words in str(raised.value)


def test_valid_values_are_normalized() -> None:
    with using_attributes(session_id="  padded  ", user_id=12345, tags=[" t ", "t"]):
        attrs = get_attributes_from_context()
    assert attrs == {"session.id": "padded", "user.id": "12345", "tag.tags": ("t",)}


def test_one_bad_tag_or_key_leaves_the_others_in(caplog: pytest.LogCaptureFixture) -> None:
    with using_tags(["good", "", "also-good"]), using_metadata({"ok": 1, 2: "bad"}):
        attrs = get_attributes_from_context()
    assert attrs["tag.tags"] == ("good", "also-good")
    assert json.loads(str(attrs["metadata"])) == {"ok": 1}
    assert len(caplog.records) == 2


def test_metadata_values_are_made_json_safe_and_copied() -> None:
    day = datetime.date(2026, 11, 21)
    source: dict[str, Any] = {"day": day, "nested": {"set": {1}}, "n": 1.5}
    with using_metadata(source):
        source["late"] = "mutation"
        decoded = json.loads(str(get_attributes_from_context()["metadata"]))
    assert decoded == {"day": "2026-11-21", "nested": {"set": "{1}"}, "n": 1.5}


def test_non_ascii_metadata_is_kept_as_is() -> None:
    with using_metadata({"greeting": "héllo 你好"}):
        assert "你好" in str(get_attributes_from_context()["metadata"])


def test_messages_never_contain_the_rejected_value(caplog: pytest.LogCaptureFixture) -> None:
    with using_session(SECRET * 20), using_tags(SECRET), using_user(SECRET.encode()):
        pass
    assert len(caplog.records) == 3
    assert SECRET not in caplog.text
    assert "alice" not in caplog.text


def test_warnings_are_rate_limited(caplog: pytest.LogCaptureFixture) -> None:
    for _ in range(1000):
        using_session("")
    assert len(caplog.records) == 1


def test_id_cap_is_configurable() -> None:
    assert max_id_length() == DEFAULT_MAX_ID_LENGTH
    configure_rules(max_id_length=10)
    try:
        with using_session("x" * 10):
            assert current_session_id() == "x" * 10
        with using_session("x" * 11):
            assert current_session_id() is None
    finally:
        configure_rules(max_id_length=DEFAULT_MAX_ID_LENGTH)


def test_configure_rules_rejects_nonsense() -> None:
    with pytest.raises(TypeError):
        configure_rules(strict="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="positive int"):
        configure_rules(max_id_length=0)


def _run(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **env}, timeout=60
    )


def test_strict_mode_from_the_environment() -> None:
    code = "import spanstamp\ntry:\n    spanstamp.using_session('')\nexcept ValueError as e:\n    print('raised', e)"
    assert "raised using_session(session_id)" in _run(code, SPANSTAMP_STRICT="1").stdout
    assert "raised" not in _run(code, SPANSTAMP_STRICT="0").stdout


def test_bad_environment_values_name_the_variable() -> None:
    result = _run("import spanstamp", SPANSTAMP_STRICT="maybe", SPANSTAMP_MAX_ID_LENGTH="-3")
    assert result.returncode == 0
    assert "SPANSTAMP_STRICT='maybe' is not a boolean" in result.stderr
    assert "SPANSTAMP_MAX_ID_LENGTH='-3' is not a positive integer" in result.stderr
    capped = _run("import spanstamp.rules as r; print(r.max_id_length())", SPANSTAMP_MAX_ID_LENGTH="64")
    assert capped.stdout.strip() == "64"
