"""Input rules: every rejected value is left out with a warning, or raises in strict mode."""

from __future__ import annotations

import datetime
import json
import logging
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest
from opentelemetry import context as otel_context

from spanstamp import (
    configure_rules,
    current_session_id,
    get_attributes_from_context,
    rules,
    using_attributes,
    using_metadata,
    using_prompt_template,
    using_session,
    using_tags,
    using_user,
)
from spanstamp.checks import check_id, check_tags, coerce_id
from spanstamp.rules import DEFAULT_MAX_ID_LENGTH, max_id_length, reject
from support import Tracing, strict_mode

SECRET = "alice@example.com"
HUGE_INT = 10**5000  # more digits than Python converts to str: str(HUGE_INT) raises ValueError
TEMPLATE = "llm.prompt_template.template"


class _Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no text for this one")


class _Unreadable(Mapping[str, Any]):
    """A mapping that fails when read, like a lazily loaded one whose source is gone."""

    def __getitem__(self, key: str) -> Any:
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        raise RuntimeError("source gone")

    def __len__(self) -> int:
        return 1


def _circular() -> dict[str, Any]:
    data: dict[str, Any] = {}
    data["self"] = data
    return data


def _nested(depth: int) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for _ in range(depth):
        data = {"x": data}
    return data


# (label, scope factory, exception in strict mode, words the message must contain)
REJECTED: list[tuple[str, Callable[[], Any], type[Exception], str]] = [
    ("float id", lambda: using_session(3.5), TypeError, "using_session(session_id): expected a str or int"),
    ("bool id", lambda: using_user(True), TypeError, "using_user(user_id): expected a str or int"),
    ("bytes id", lambda: using_session(b"abc"), TypeError, "got a value of type bytes"),
    ("empty id", lambda: using_session(""), ValueError, "using_session(session_id): got an empty or blank str"),
    ("blank id", lambda: using_user(" \t\n"), ValueError, "using_user(user_id): got an empty or blank str"),
    ("long id", lambda: using_session("x" * 257), ValueError, "got a str of 257 characters, over the cap of 256"),
    (
        "huge int id",
        lambda: using_session(HUGE_INT),
        ValueError,
        "using_session(session_id): got an int of about 5001 digits, over the cap of 256",
    ),
    ("str tags", lambda: using_tags("abc"), TypeError, "using_tags(tags): expected a list of str, got a str"),
    ("non-str tag", lambda: using_tags([1]), TypeError, "each tag must be a str"),
    ("blank tag", lambda: using_tags([" "]), ValueError, "got an empty or blank tag"),
    ("list metadata", lambda: using_metadata(["a"]), TypeError, "using_metadata(metadata): expected a mapping"),
    ("int metadata key", lambda: using_metadata({1: "a"}), TypeError, "keys must be str, got a key of type int"),
    (
        "circular metadata",
        lambda: using_metadata(_circular()),
        ValueError,
        "using_metadata(metadata): an entry cannot be encoded as JSON (ValueError)",
    ),
    (
        "unprintable metadata value",
        lambda: using_metadata({"ok": 1, "bad": _Unprintable()}),
        ValueError,
        "using_metadata(metadata): an entry cannot be encoded as JSON (RuntimeError)",
    ),
    (
        "deeply nested metadata",
        lambda: using_metadata(_nested(3000)),
        ValueError,
        "using_metadata(metadata): an entry cannot be encoded as JSON (RecursionError)",
    ),
    (
        "unreadable metadata",
        lambda: using_metadata(_Unreadable()),
        ValueError,
        "using_metadata(metadata): the value could not be read (RuntimeError)",
    ),
    ("blank template", lambda: using_prompt_template(template=" "), ValueError, "got an empty or blank str"),
    ("int template", lambda: using_prompt_template(template=5), TypeError, "using_prompt_template(template)"),
    (
        "float version",
        lambda: using_prompt_template(template="t", version=1.5),
        TypeError,
        "using_prompt_template(version): expected a str or int, got a value of type float",
    ),
    (
        "float version in using_attributes",
        lambda: using_attributes(prompt_template="t", prompt_template_version=1.5),
        TypeError,
        "using_attributes(prompt_template_version): expected a str or int, got a value of type float",
    ),
    (
        "list variables",
        lambda: using_prompt_template(template="t", variables=["q"]),
        TypeError,
        "using_prompt_template(variables): expected a mapping",
    ),
    (
        "str variables in using_attributes",
        lambda: using_attributes(prompt_template="t", prompt_template_variables="q=1"),
        TypeError,
        "using_attributes(prompt_template_variables): expected a mapping",
    ),
    (
        "version without template",
        lambda: using_attributes(prompt_template_version="v1"),
        ValueError,
        "using_attributes(prompt_template_version): given without a valid template",
    ),
    (
        "version without template in using_prompt_template",
        lambda: using_prompt_template(template=None, version="v1"),
        ValueError,
        "using_prompt_template(version): given without a valid template",
    ),
    (
        "variables without template",
        lambda: using_prompt_template(template=None, variables={"q": 1}),
        ValueError,
        "using_prompt_template(variables): given without a valid template",
    ),
    (
        "variables without template in using_attributes",
        lambda: using_attributes(prompt_template_variables={"q": 1}),
        ValueError,
        "using_attributes(prompt_template_variables): given without a valid template",
    ),
    (
        "str propagate",
        lambda: using_session("s-1", propagate="yes"),
        TypeError,
        "using_session(propagate): expected a bool, got a str",
    ),
    ("int propagate", lambda: using_user("u-1", propagate=1), TypeError, "using_user(propagate): expected a bool"),
    (
        "str propagate in using_attributes",
        lambda: using_attributes(session_id="s-1", propagate="no"),
        TypeError,
        "using_attributes(propagate): expected a bool",
    ),
    (
        "session in using_attributes",
        lambda: using_attributes(session_id=[1]),
        TypeError,
        "using_attributes(session_id)",
    ),
]

# What a case keeps in default mode: its valid arguments, next to the rejected one.
KEPT: dict[str, dict[str, Any]] = {
    "float version": {TEMPLATE: "t"},
    "float version in using_attributes": {TEMPLATE: "t"},
    "list variables": {TEMPLATE: "t"},
    # Only the entry that cannot be encoded is left out; the rest of the metadata stays.
    "unprintable metadata value": {"metadata": '{"ok": 1}'},
    "str variables in using_attributes": {TEMPLATE: "t"},
    "str propagate": {"session.id": "s-1"},
    "int propagate": {"user.id": "u-1"},
    "str propagate in using_attributes": {"session.id": "s-1"},
}


@pytest.mark.parametrize(("label", "make", "error", "words"), REJECTED, ids=[r[0] for r in REJECTED])
def test_default_mode_leaves_the_value_out_and_warns(
    label: str, make: Callable[[], Any], error: type[Exception], words: str, caplog: pytest.LogCaptureFixture
) -> None:
    tracing = Tracing()
    with caplog.at_level(logging.WARNING, logger="spanstamp"), make():
        tracing.record("span")
    assert tracing.attrs("span") == KEPT.get(label, {})
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
        attrs = dict(get_attributes_from_context())
    assert attrs == {"session.id": "padded", "user.id": "12345", "tag.tags": ["t"]}


def test_one_bad_tag_or_key_leaves_the_others_in(caplog: pytest.LogCaptureFixture) -> None:
    with using_tags(["good", "", "also-good"]), using_metadata({"ok": 1, 2: "bad"}):
        attrs = dict(get_attributes_from_context())
    assert attrs["tag.tags"] == ["good", "also-good"]
    assert json.loads(str(attrs["metadata"])) == {"ok": 1}
    assert len(caplog.records) == 2


def test_metadata_values_are_made_json_safe_and_copied() -> None:
    day = datetime.date(2026, 11, 21)
    source: dict[str, Any] = {"day": day, "nested": {"set": {1}}, "n": 1.5}
    with using_metadata(source):
        source["late"] = "mutation"
        decoded = json.loads(str(dict(get_attributes_from_context())["metadata"]))
    assert decoded == {"day": "2026-11-21", "nested": {"set": "{1}"}, "n": 1.5}


def _strict_json(text: str) -> Any:
    """Decode ``text`` as strict parsers do: NaN and Infinity are not JSON."""

    def refuse(constant: str) -> Any:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_non_finite_floats_become_text() -> None:
    nan, inf = float("nan"), float("inf")
    with (
        using_metadata({"x": nan, "deep": [inf, {"y": -inf}], "ok": 1.5}),
        using_prompt_template(template="t", variables={"v": inf}),
    ):
        attrs = dict(get_attributes_from_context())
    assert _strict_json(str(attrs["metadata"])) == {"x": "nan", "deep": ["inf", {"y": "-inf"}], "ok": 1.5}
    assert _strict_json(str(attrs["llm.prompt_template.variables"])) == {"v": "inf"}


def test_merged_metadata_stays_json_when_the_outer_one_holds_nan() -> None:
    # Another library's metadata, as json.dumps writes NaN by default.
    token = otel_context.attach(otel_context.set_value("metadata", '{"x": NaN}'))
    try:
        with using_metadata({"y": 1}):
            text = str(dict(get_attributes_from_context())["metadata"])
    finally:
        otel_context.detach(token)
    assert _strict_json(text) == {"x": "nan", "y": 1}


def test_outer_metadata_too_deep_to_decode_is_not_merged_and_does_not_raise() -> None:
    # Another library's metadata text, nested deeper than json can decode.
    token = otel_context.attach(otel_context.set_value("metadata", "[" * 100_000 + "]" * 100_000))
    try:
        with using_metadata({"y": 1}):
            text = str(dict(get_attributes_from_context())["metadata"])
    finally:
        otel_context.detach(token)
    assert json.loads(text) == {"y": 1}


def test_nested_non_str_keys_become_str(caplog: pytest.LogCaptureFixture) -> None:
    with using_metadata({"a": {(1, 2): 3, 4: [5]}, "b": 1}):
        decoded = json.loads(str(dict(get_attributes_from_context())["metadata"]))
    assert decoded == {"a": {"(1, 2)": 3, "4": [5]}, "b": 1}
    assert caplog.records == []


def test_non_ascii_metadata_is_kept_as_is() -> None:
    with using_metadata({"greeting": "héllo 你好"}):
        assert "你好" in str(dict(get_attributes_from_context())["metadata"])


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


def test_over_long_ids_of_every_length_warn_once(caplog: pytest.LogCaptureFixture) -> None:
    for extra in range(1000):
        using_session("x" * (DEFAULT_MAX_ID_LENGTH + 1 + extra))
    (record,) = caplog.records
    assert "got a str of 257 characters, over the cap of 256" in record.getMessage()
    assert len(rules._warned) == 1


def test_the_rate_limiter_forgets_its_oldest_entries(caplog: pytest.LogCaptureFixture) -> None:
    for index in range(10_000):
        reject(f"argument_{index}", "got an empty or blank str")
    assert len(rules._warned) <= rules._MAX_WARNED
    caplog.clear()
    reject("argument_0", "got an empty or blank str")  # forgotten, so it warns again
    assert len(caplog.records) == 1


class _Named(int):
    """An int whose str() is not its decimal text, like an IntEnum member on Python 3.10."""

    def __str__(self) -> str:
        return "Plan.PRO"


class _Mute(int):
    def __str__(self) -> str:
        raise RuntimeError("no text for this one")


def test_int_ids_are_decimal_whatever_str_says() -> None:
    assert check_id(_Named(7), "using_user(user_id)") == "7"
    assert check_id(_Mute(8), "using_user(user_id)") == "8"
    assert coerce_id(_Named(7)) == "7"
    assert coerce_id(_Mute(8)) == "8"
    with using_user(_Mute(9)):
        assert dict(get_attributes_from_context())["user.id"] == "9"


def test_coerce_id_holds_ints_to_the_cap_quietly(caplog: pytest.LogCaptureFixture) -> None:
    assert coerce_id(HUGE_INT) is None
    assert coerce_id(10**DEFAULT_MAX_ID_LENGTH) is None  # one digit over the cap
    assert coerce_id(10 ** (DEFAULT_MAX_ID_LENGTH - 1)) == "1" + "0" * (DEFAULT_MAX_ID_LENGTH - 1)
    assert caplog.records == []


def test_huge_int_id_warning_names_no_digits_of_it(caplog: pytest.LogCaptureFixture) -> None:
    assert check_id(-HUGE_INT, "using_user(user_id)") is None
    (record,) = caplog.records
    assert "00000" not in record.getMessage()
    assert "an int of about 5001 digits" in record.getMessage()


def test_tags_are_a_new_deduplicated_list() -> None:
    given = ["b", " a ", "b", "a"]
    tags = check_tags(given, "using_tags(tags)")
    assert tags == ["b", "a"]
    assert isinstance(tags, list)  # a list subclass that records the check
    assert tags is not given
    assert check_tags(("z",), "using_tags(tags)") == ["z"]


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
    assert "SPANSTAMP_STRICT is not a boolean (use 1 or 0; got a str of 5 characters)" in result.stderr
    assert "SPANSTAMP_MAX_ID_LENGTH is not a positive integer (got a str of 2 characters)" in result.stderr
    # A value in the wrong variable may be a secret: it is never echoed.
    assert "maybe" not in result.stderr
    assert "-3" not in result.stderr
    capped = _run("import spanstamp.rules as r; print(r.max_id_length())", SPANSTAMP_MAX_ID_LENGTH="64")
    assert capped.stdout.strip() == "64"
