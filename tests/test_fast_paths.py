"""The scopes' fast paths give exactly what the general code gives (issue 14).

Each fast path copies a slower one for the common case; these tests pin the two to the
same result, over many inputs where the input space is large.
"""

from __future__ import annotations

import json
import logging
from contextlib import ExitStack
from typing import Any

import openinference.instrumentation as oi
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from opentelemetry.context import get_current

import spanstamp
from hostile import restore_settings, settings_snapshot
from spanstamp import attributes as attr
from spanstamp import checks, from_arg, jsontext, privacy, rules, tag_rules
from spanstamp.calls import ScopedFunction, scoped_function
from spanstamp.scope import _ENTRY_KEY, Scope
from spanstamp.scopes import _ATTRIBUTES_ARGS


class _Str(str):
    """A str subclass: read through str's own methods, never its overrides."""

    def strip(self, chars: str | None = None) -> str:
        return "overridden"


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


# --- Decorated calls: the direct __call__ against wrapt's own ---------------------------


def _recording() -> tuple[list[tuple[Any, ...]], Any]:
    seen: list[tuple[Any, ...]] = []

    def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        seen.append((wrapped, instance, args, kwargs))
        return wrapped(*args, **kwargs)

    return seen, wrapper


def test_a_direct_call_hands_the_wrapper_what_wrapt_hands_it() -> None:
    def answer(self: object, b: int = 2, *, c: int = 3) -> tuple[object, int, int]:
        return self, b, c

    seen, wrapper = _recording()
    fast, slow = scoped_function(answer, wrapper), ScopedFunction(answer, wrapper)
    assert type(fast) is not ScopedFunction  # the direct path is taken
    assert isinstance(fast, ScopedFunction)
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = [((1,), {}), ((1, 5), {"c": 4}), ((), {"self": 0})]
    for args, kwargs in calls:
        assert fast(*args, **kwargs) == slow(*args, **kwargs)
    assert seen[0::2] == seen[1::2]
    assert seen[2] == (answer, None, (1, 5), {"c": 4})


def test_methods_and_bound_methods_keep_wrapts_binding() -> None:
    seen, wrapper = _recording()

    class Bot:
        def reply(self, text: str) -> str:
            return text

        fast = scoped_function(reply, wrapper)
        slow = ScopedFunction(reply, wrapper)

    bot = Bot()
    assert bot.fast("a") == bot.slow("a") == "a"
    assert Bot.fast(bot, "b") == Bot.slow(bot, "b") == "b"
    assert seen[0::2] == seen[1::2]
    assert seen[0][1] is bot
    assert seen[2][1] is bot
    # Already bound: wrapt finds its __self__ itself, so no direct path is made.
    bound = scoped_function(bot.reply, wrapper)
    assert type(bound) is ScopedFunction
    assert bound("c") == "c"
    assert seen[-1][1] is bot


# --- using_attributes(session_id=..., user_id=...): built without the general loop ------

_PADDING = st.sampled_from(["", " ", "\t", "\n", "\u3000", "\x1c", "\xa0"])
_TEXT = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=12)
_IDS = st.one_of(
    st.none(),
    _TEXT,
    st.builds(lambda pad, text, end: pad + text + end, _PADDING, _TEXT, _PADDING),
    st.text(alphabet="ab", min_size=250, max_size=262),  # about the cap of 256
    st.sampled_from(["a\ud800", " \udfff ", "ä", "\U0001d518"]),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.booleans(),
    st.floats(allow_nan=True),
    st.builds(_Str, _TEXT),
    st.just(from_arg("sid")),
)


def _built(make: Any) -> tuple[str, object, list[str]]:
    """What a scope puts into the Context (``with`` it), or the strict-mode error, and the warnings."""
    rules.forget_warnings()
    records = _Records()
    logger = logging.getLogger("spanstamp")
    logger.addHandler(records)
    try:
        try:
            scope = make()
        except (TypeError, ValueError) as exc:
            return "raised", (type(exc), str(exc)), records.messages
        try:
            with scope:
                seen = {key: value for key, value in get_current().items() if key != _ENTRY_KEY}
        except (TypeError, ValueError) as exc:  # from_arg() in a with block, strict mode
            return "raised at entry", (type(exc), str(exc)), records.messages
        return "built", seen, records.messages
    finally:
        logger.removeHandler(records)


@pytest.mark.parametrize("mode", ["default", "strict", "hashing"])
@settings(max_examples=400, derandomize=True, deadline=None, database=None)
@given(session_id=_IDS, user_id=_IDS)
def test_the_ids_fast_path_builds_what_the_general_loop_builds(mode: str, session_id: Any, user_id: Any) -> None:
    snapshot = settings_snapshot()
    try:
        if mode == "strict":
            spanstamp.configure_rules(strict=True)
        elif mode == "hashing":
            spanstamp.configure_privacy(hash_user_ids=True, user_id_key="fast-path-key-0123456789")
        fast = _built(lambda: spanstamp.using_attributes(session_id=session_id, user_id=user_id))
        general = _built(lambda: Scope("using_attributes", _ATTRIBUTES_ARGS, (session_id, user_id, *[None] * 5)))
    finally:
        restore_settings(snapshot)
        spanstamp.configure_rules(strict=False)  # rules.settings is not in the snapshot
    assert fast == general


def _state(scope: Scope) -> tuple[object, ...]:
    """Every slot of a scope but its last entry's token (``None`` until entered)."""
    return (
        scope._name,
        tuple(scope._plan),
        scope._static,
        tuple(scope._dynamic),
        scope._from_call,
        scope._propagate,
        scope._simple,
        scope._last,
    )


@settings(max_examples=300, derandomize=True, deadline=None, database=None)
@given(session_id=_IDS, user_id=_IDS)
def test_the_ids_fast_path_builds_the_very_scope_object_the_general_loop_builds(session_id: Any, user_id: Any) -> None:
    # Not only the same Context: the same state, so that entering, re-entering, sharing and
    # decorating behave alike (the fast path builds the object in place, without __init__).
    fast = spanstamp.using_attributes(session_id=session_id, user_id=user_id)
    general = Scope("using_attributes", _ATTRIBUTES_ARGS, (session_id, user_id, *[None] * 5))
    assert type(fast) is Scope
    assert _state(fast) == _state(general)


# --- Tags: checked once per distinct sequence of texts -----------------------------------

_TAG = st.one_of(
    st.text(alphabet=st.sampled_from(["a", "b", " ", "\x00", "\ud800", "ä", "\t"]), max_size=4),
    st.builds(_Str, st.text(alphabet="ab\x00 ", max_size=3)),
    st.integers(min_value=0, max_value=3),
    st.none(),
)
_TAG_LISTS = st.lists(_TAG, max_size=6)


@settings(max_examples=600, derandomize=True, deadline=None, database=None)
@given(first=_TAG_LISTS, second=_TAG_LISTS, as_tuple=st.booleans())
# Sequences whose texts join to one key: told apart by their count, or never kept.
@example(first=["a", "b"], second=["a\x00b"], as_tuple=False)
@example(first=["a\x00", "b"], second=["a", "\x00b"], as_tuple=True)
@example(first=[_Str("a"), "b"], second=["a", _Str("b")], as_tuple=False)
def test_cached_tags_are_what_the_rules_give_for_every_sequence(
    first: list[object], second: list[object], as_tuple: bool
) -> None:
    tag_rules._tags_cache.clear()
    try:
        # A tuple is given again as the same object (kept by identity), a list as a new one.
        given = [tuple(first), tuple(second)] if as_tuple else [first, second]
        for index in (0, 1, 0, 1, 0):  # misses, then hits where the first were clean
            given_tags = given[index] if as_tuple else list(given[index])
            expected, messages = _checked(lambda value=given_tags: tag_rules._check_tags(value, "using_tags(tags)"))
            got, got_messages = _checked(lambda value=given_tags: checks.check_tags(value, "using_tags(tags)"))
            assert got == expected
            assert got is None or type(got) is checks.Tags
            assert got_messages == messages
    finally:
        tag_rules._tags_cache.clear()


def test_a_cached_result_is_a_list_of_its_own() -> None:
    first = checks.check_tags(["a", "b"], "using_tags(tags)")
    second = checks.check_tags(["a", "b"], "using_tags(tags)")
    assert first == second == ["a", "b"]
    assert first is not second
    assert first is not None
    first.append("changed")
    assert checks.check_tags(["a", "b"], "using_tags(tags)") == ["a", "b"]


def _checked(check: Any) -> tuple[object, list[str]]:
    rules.forget_warnings()
    records = _Records()
    logger = logging.getLogger("spanstamp")
    logger.addHandler(records)
    try:
        return check(), records.messages
    finally:
        logger.removeHandler(records)


# --- Metadata: plain entries copied as they are; nested scopes merge without decoding ---

_KEYS = st.one_of(st.sampled_from(["a", "b", "ä", "session_id", "thread_id", "user_id", "conversation_id"]), _TEXT)
_VALUES = st.one_of(
    st.text(alphabet="ab ä\ud800", max_size=3),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=True),
    st.builds(_Str, st.text(alphabet="ab", max_size=2)),
    st.lists(st.integers(), max_size=2),
)
_MAPPINGS = st.dictionaries(_KEYS, _VALUES, max_size=4)


def _reference_mapping(value: dict[Any, Any]) -> dict[str, Any] | None:
    # check_mapping's rule for each entry, without its fast copy of plain entries.
    data: dict[str, Any] = {}
    for key, item in value.items():
        text = jsontext.coerce_text(key)
        if text is None:
            continue
        try:
            data[jsontext.encodable_or_raise(text)] = jsontext.json_safe(item, set())
        except Exception:
            continue
    return data or None


@settings(max_examples=500, derandomize=True, deadline=None, database=None)
@given(value=_MAPPINGS)
@example(value={"a\ud800": "b", "c": "d\ud800", "e": True, 7: "f", _Str("g"): "h", "i": 2**80})
def test_plain_metadata_entries_are_copied_as_the_rules_copy_them(value: dict[Any, Any]) -> None:
    checked = checks.check_mapping(value, "using_metadata(metadata)")
    expected = _reference_mapping(value)
    if expected is None:
        assert checked is None
        return
    assert checked is not None
    assert checked.data == expected
    assert [type(item) for item in checked.data.values()] == [type(item) for item in expected.values()]
    assert checked.text == jsontext.dumps(expected)


def _named(data: dict[str, Any], names: tuple[str, ...]) -> str | None:
    return next((found for name in names if (found := checks.coerce_id(data.get(name))) is not None), None)


@pytest.mark.parametrize("hashing", [False, True])
@settings(max_examples=300, derandomize=True, deadline=None, database=None)
@given(levels=st.lists(_MAPPINGS, min_size=1, max_size=5), foreign=st.one_of(st.none(), _MAPPINGS))
def test_nested_metadata_merges_as_decoding_and_encoding_each_level_would(
    hashing: bool, levels: list[dict[Any, Any]], foreign: dict[Any, Any] | None
) -> None:
    snapshot = settings_snapshot()
    if hashing:
        spanstamp.configure_privacy(hash_user_ids=True, user_id_key="fast-path-key-0123456789")
    try:
        with ExitStack() as stack:
            expected: dict[str, Any] = {}
            named: dict[str, str] = {}
            if foreign:  # another library's metadata outermost: decoded once, as before
                stack.enter_context(oi.using_metadata(foreign))
                expected = jsontext.decode_mapping(get_current().get("metadata"))
                if hashing:
                    expected = privacy.hide_metadata_users(expected)
            for level in levels:
                stack.enter_context(spanstamp.using_metadata(level))
                checked = checks.check_mapping(level, "using_metadata(metadata)")
                if checked is not None and hashing and not privacy.hide_metadata_users(checked.data):
                    checked = None  # all it held was a user id that is no valid id: nothing is set
                if checked is not None:
                    data = privacy.hide_metadata_users(checked.data) if hashing else checked.data
                    expected = {**expected, **data}
                current = get_current()
                if expected and (checked is not None or not foreign):
                    assert current.get("metadata") == jsontext.dumps(expected)
                    assert json.loads(str(current.get("metadata"))) == expected
                for key, names in (
                    (attr.SESSION_FROM_METADATA, attr.METADATA_SESSION_KEYS),
                    (attr.USER_FROM_METADATA, attr.METADATA_USER_KEYS),
                ):
                    # An id the merge names replaces the outer one; none leaves it.
                    if checked is not None and (found := _named(expected, names)) is not None:
                        named[key] = found
                    if checked is not None or not foreign:
                        assert current.get(key) == named.get(key)
    finally:
        restore_settings(snapshot)
