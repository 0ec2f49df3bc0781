"""Metadata entries encoded one by one give exactly what encoding the whole mapping gives (issue 14).

A nested metadata scope re-encodes only its own entries and joins them with the outer
scope's, as encoded before (jsontext.entries / join_entries). These tests pin that to
``jsontext.dumps`` of the merged dict, byte for byte, over many JSON-safe mappings and
merges, and through real nested scopes.
"""

from __future__ import annotations

import json
from contextlib import ExitStack
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st
from opentelemetry.context import get_current

import spanstamp
from spanstamp import attributes as attr
from spanstamp import checks, jsontext

# Text of every kind the encoder treats apart: ASCII, non-ASCII, quotes, backslashes,
# control characters, characters outside the BMP.
_TEXT = st.one_of(
    st.sampled_from(["tenant", "route", "step", "user_id", "ä", 'q"uote', "back\\slash", "\n\t\x00", "😀", ""]),
    st.text(max_size=6),
)
_SCALARS = st.one_of(
    _TEXT,
    st.integers(min_value=-(2**80), max_value=2**80),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
)
# Anything a caller may hand over: json_safe makes it what the rules keep.
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.tuples(inner, inner),
        st.dictionaries(st.one_of(_TEXT, st.integers(), st.booleans()), inner, max_size=3),
    ),
    max_leaves=6,
)
_RAW_MAPPINGS = st.dictionaries(_TEXT, _VALUES, max_size=6)


def _safe(raw: dict[str, Any]) -> dict[str, Any]:
    # What the rules keep of a mapping: each entry made JSON-safe, unencodable ones left out.
    data: dict[str, Any] = {}
    for key, value in raw.items():
        try:
            data[jsontext.encodable_or_raise(key)] = jsontext.json_safe(value, set())
        except ValueError:
            continue
    return data


@settings(max_examples=600, derandomize=True, deadline=None, database=None)
@given(raw=_RAW_MAPPINGS)
@example(raw={"n": 2**80, "f": -0.0, "e": 1e300, "nan": float("nan"), "t": True, "z": None, "l": [1, "ä"]})
@example(raw={})
def test_entries_joined_are_what_dumps_writes(raw: dict[str, Any]) -> None:
    data = _safe(raw)
    entries = jsontext.entries(data)
    assert list(entries) == list(data)
    assert jsontext.join_entries(entries.values()) == jsontext.dumps(data)
    assert jsontext.JsonObject(data).text == jsontext.dumps(data)


@settings(max_examples=600, derandomize=True, deadline=None, database=None)
@given(outer=_RAW_MAPPINGS, inner=_RAW_MAPPINGS)
@example(outer={"tenant": "acme", "step": "s-0", "level_0": 0}, inner={"step": "s-1", "tenant": "ä", "level_1": 1})
def test_a_merge_of_entries_joined_is_what_dumps_writes_of_the_merged_dict(
    outer: dict[str, Any], inner: dict[str, Any]
) -> None:
    # Overwritten keys keep their outer place, with the inner entry: as in a dict merge.
    old, new = _safe(outer), _safe(inner)
    merged = {**jsontext.entries(old), **jsontext.entries(new)}
    assert jsontext.join_entries(merged.values()) == jsontext.dumps({**old, **new})


@settings(max_examples=200, derandomize=True, deadline=None, database=None)
@given(levels=st.lists(_RAW_MAPPINGS, min_size=1, max_size=6))
def test_nested_scopes_hold_the_json_of_the_merge_and_its_entries(levels: list[dict[str, Any]]) -> None:
    with ExitStack() as stack:
        expected: dict[str, Any] = {}
        for level in levels:
            stack.enter_context(spanstamp.using_metadata(level))
            checked = checks.check_mapping(level, "using_metadata(metadata)")
            if checked is not None:
                expected = {**expected, **checked.data}
            current = get_current()
            text = current.get(attr.METADATA)
            if not expected:
                assert text is None
                continue
            assert text == jsontext.dumps(expected)
            assert json.loads(str(text)) == json.loads(json.dumps(expected))
            decoded: Any = current.get(attr.METADATA_DECODED)
            assert decoded.text is text
            assert decoded.data == expected
            assert decoded.entries == jsontext.entries(expected)


def test_the_benchmarks_shape_overwrites_three_keys_per_level_and_keeps_their_place() -> None:
    # As benchmarks/_bench_scopes.py nests them: three keys named at every level, one new.
    with ExitStack() as stack:
        for level in range(20):
            values = {"tenant": "acme", "route": "/chat", "step": f"step-{level}", f"level_{level}": level}
            stack.enter_context(spanstamp.using_metadata(values))
        text = str(get_current().get(attr.METADATA))
    expected = {"tenant": "acme", "route": "/chat", "step": "step-19", **{f"level_{n}": n for n in range(20)}}
    assert text == json.dumps(expected, ensure_ascii=False)
