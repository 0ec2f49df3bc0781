"""The input gate: what spanstamp accepts as an id, a tag, metadata or a template.

Every value that reaches the Context passes through one of the ``check_*`` functions
here, and nowhere else. A value that breaks a rule is left out with a warning on the
``spanstamp`` logger, or raises in strict mode (:func:`spanstamp.rules.reject`). Messages
name the argument and say what was wrong (type, length), never the value itself: ids
can be personal data. No value can break a check: anything a value raises while it is
read is a rejection too::

    check_id(" abc ", "using_session(session_id)")   # -> "abc"
    check_tags(["beta", " "], "using_tags(tags)")    # -> ["beta"], and one warning
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, Final, TypeVar

from spanstamp import jsontext, rules
from spanstamp.jsontext import base_text

T = TypeVar("T")

_UNENCODABLE: Final = "got text that cannot be encoded as UTF-8 (a lone surrogate)"


def _read_safely(check: Callable[[object, str], T], value: object, where: str) -> T | None:
    # ``check(value, where)``, with anything a user object raises while it is read (a
    # Mock(spec=str), a list whose __iter__ raises) counted as a rejection, like any bad
    # value. Only the exception's type is named: its message may quote the value.
    try:
        return check(value, where)
    except rules.RejectedInputError:  # strict mode's own TypeError / ValueError
        raise
    except Exception as exc:
        rules.reject(where, f"the value could not be read ({type(exc).__name__})")
        return None


def check_id(value: object, where: str) -> str | None:
    """An id: a str non-empty after stripping (returned stripped), or an int (as decimal).

    ``None`` means "no id here" and returns ``None`` quietly. Text that cannot be encoded
    as UTF-8 is rejected, never altered: an id must reach every backend exactly::

        check_id(" u-1 ", "using_user(user_id)")  # -> "u-1"
        check_id(42, "using_user(user_id)")       # -> "42"
    """
    if type(value) is str:
        # The usual case, inline: an exact str's own methods cannot misbehave.
        text = value.strip()
        if text and len(text) <= rules.settings.max_id_length and (text.isascii() or jsontext.encodable(text)):
            return text
    elif value is None:
        return None
    return _read_safely(_check_id, value, where)


def _check_id(value: object, where: str) -> str | None:
    if isinstance(value, str):
        text = base_text(value).strip()
    elif isinstance(value, int) and not isinstance(value, bool):
        decimal = _decimal(value)
        if decimal is None:
            # Only the size is named: the value is an id, and str() of it is what failed.
            digits = int(int.bit_length(value) * math.log10(2)) + 1
            _reject_long_id(where, f"an int of about {digits} digits")
            return None
        text = decimal
    else:
        rules.reject(where, f"expected a str or int, got {rules.describe(value)}", TypeError)
        return None
    if not text:
        rules.reject(where, "got an empty or blank str")
        return None
    if len(text) > rules.settings.max_id_length:
        _reject_long_id(where, rules.describe(text))
        return None
    if not jsontext.encodable(text):
        rules.reject(where, _UNENCODABLE)
        return None
    return text


def _reject_long_id(where: str, what: str) -> None:
    """Reject an id over the cap; ``what`` names its type and size."""
    rules.reject(
        where,
        f"got {what}, over the cap of {rules.settings.max_id_length} "
        "(ids are not truncated: a cut id could merge two sessions)",
    )


def _decimal(value: int) -> str | None:
    """An int as decimal text, or ``None`` when it has too many digits to convert.

    _decimal(10**5000)  # -> None: over Python's int max str digits, far over any id cap
    """
    try:
        # int.__repr__, not str(): a subclass's __str__ may raise or say anything
        # else (an IntEnum member is "Color.RED" on Python 3.10).
        return int.__repr__(value)
    except ValueError:
        return None


def coerce_id(value: object) -> str | None:
    """An id another library or a metadata mapping holds, held to the id rules quietly.

    It runs inside span creation or reads metadata, so it never warns and never raises::

        coerce_id(42)  # -> "42"; coerce_id(True) -> None; coerce_id("  ") -> None
    """
    try:
        if type(value) is str:
            text = value.strip()
        elif isinstance(value, str):
            text = base_text(value).strip()
        elif isinstance(value, int) and not isinstance(value, bool):
            text = _decimal(value) or ""
        else:
            return None
        return text if 0 < len(text) <= rules.settings.max_id_length and jsontext.encodable(text) else None
    except Exception:  # a value that only claims to be a str or an int
        return None


def check_tags(value: object, where: str) -> Tags | None:
    """Tags: a list (or tuple, set) of non-empty str; bad entries are left out one by one.

    A new list (OpenInference keeps tags as a list), deduplicated in first-seen order.
    An empty collection, like ``None``, means "no tags here"::

        check_tags(["beta", " ", "beta"], "using_tags(tags)")  # -> ["beta"] and one warning
    """
    if value is None:
        return None
    kind = type(value)
    if kind is not tuple and kind is not list:
        return _read_safely(_check_tags, value, where)
    if kind is tuple:
        # A tuple of str is immutable: once clean, the very same tuple is clean again.
        seen = _tuples_seen.get(id(value))
        if seen is not None and seen[0] is value:
            return Tags(seen[1])
    # A list is read once, into a snapshot: the key and the check read the same items.
    tags: tuple[object, ...] = value if kind is tuple else tuple(value)  # type: ignore[assignment, arg-type]
    try:
        key = _NUL.join(tags)  # type: ignore[arg-type]
    except TypeError:  # an entry that is no str: the rules say which
        return _read_safely(_check_tags, tags, where)
    found = _tags_cache.get(key)
    if found is None or found[0] != len(tags):
        return _check_and_keep_tags(tags, key, where, kind is tuple)
    if kind is tuple:
        _keep_tuple(tags, found[1])
    return Tags(found[1])  # a new list: what one scope holds, no other can change


# Tags checked once per distinct sequence of texts: the same tags usually come with every
# request, and checking 100 of them took ~15 µs of a ~17 µs scope (measured). The key is
# the tags' text joined by NUL: ``str.join`` reads a str subclass's text as ``base_text``
# does and runs no code of the value's (anything but a str makes it raise). Only tags that
# passed every rule and hold no NUL are kept, with their count: a key names one sequence
# of texts then, as another sequence of as many tags joins to it only if no tag of either
# holds a NUL. A rejected tag is reported each time, as before.
_TAGS_CACHE_SIZE: Final = 512
# Longer tag lists are checked each time: the cache stays within ~512 x 64 KiB.
_TAGS_KEPT_MAX_CHARS: Final = 65536
_tags_cache: dict[str, tuple[int, tuple[str, ...]]] = {}
_NUL: Final = "\x00"


def _check_and_keep_tags(tags: tuple[object, ...], key: str, where: str, is_tuple: bool) -> Tags | None:
    # Not seen yet: checked, and kept under ``key`` (the texts NUL-joined) if clean.
    checked = _read_safely(_tags_of, tags, where)
    if checked is None:
        return None
    result, clean = checked
    if (
        clean
        and result is not None
        and len(key) <= _TAGS_KEPT_MAX_CHARS
        and _NUL not in key.replace(_NUL, "", len(tags) - 1)
    ):
        if len(_tags_cache) >= _TAGS_CACHE_SIZE:
            _tags_cache.clear()  # cheaper than tracking recency, as for pseudonyms
        _tags_cache[key] = (len(tags), kept := tuple(result))
        if is_tuple:
            _keep_tuple(tags, kept)
    return result


# Tuples of clean tags by identity, each held (so its id stays its own) with its result.
_tuples_seen: dict[int, tuple[tuple[object, ...], tuple[str, ...]]] = {}


def _keep_tuple(tags: tuple[object, ...], result: tuple[str, ...]) -> None:
    if len(_tuples_seen) >= _TAGS_CACHE_SIZE:
        _tuples_seen.clear()
    _tuples_seen[id(tags)] = (tags, result)


class Tags(list[str]):
    """Tags as a scope puts them into the Context: a list (OpenInference's shape), checked.

    The type says they passed :func:`check_tags`, so a span's reader takes them without
    looking at each tag again; tags of any other type are checked as they are read::

        type(check_tags(["a"], "using_tags(tags)")) is Tags  # -> True
    """

    __slots__ = ()


# Each collection is read through its own base class, never a subclass's override.
_COLLECTIONS: Final = (list, tuple, set, frozenset)


def _check_tags(value: object, where: str) -> Tags | None:
    return _tags_of(value, where)[0]


def _tags_of(value: object, where: str) -> tuple[Tags | None, bool]:
    # The tags, and whether every one of them passed (nothing was rejected).
    base = next((kind for kind in _COLLECTIONS if isinstance(value, kind)), None)
    if base is None:
        rules.reject(where, f"expected a list of str, got {rules.describe(value)}", TypeError)
        return None, False
    tags: dict[str, None] = {}
    clean = True
    tag: object
    for tag in base.__iter__(value):  # type: ignore[arg-type]
        text = jsontext.coerce_text(tag)
        if text is None:
            rules.reject(where, f"each tag must be a str, got {rules.describe(tag)}", TypeError)
        elif not (text := text.strip()):
            rules.reject(where, "got an empty or blank tag")
        elif not jsontext.encodable(text):
            rules.reject(where, _UNENCODABLE)
        else:
            tags[text] = None
            continue
        clean = False
    return (Tags(tags) if tags else None), clean


def check_mapping(value: object, where: str) -> jsontext.JsonObject | None:
    """Metadata or prompt variables: a mapping with str keys, made JSON-safe.

    Entries with a non-str key, or whose key or value holds text that cannot be encoded
    as UTF-8, are left out one by one; values that JSON cannot encode otherwise (nested
    non-str keys, NaN and infinity too) go through ``str``. An empty mapping, like
    ``None``, means "nothing here"::

        check_mapping({"tier": "pro", "when": date.today()}, "using_metadata(metadata)")
    """
    if value is None:
        return None
    return _read_safely(_check_mapping, value, where)


def _check_mapping(value: object, where: str) -> jsontext.JsonObject | None:
    if not isinstance(value, Mapping):
        rules.reject(where, f"expected a mapping with str keys, got {rules.describe(value)}", TypeError)
        return None
    # A dict (or subclass) is read through dict's own methods; any other Mapping has only
    # its own, and whatever they raise or yield is caught by the caller.
    items = list(dict.items(value) if isinstance(value, dict) else value.items())
    data: dict[str, Any] = {}
    for pair in items:
        key, item = pair  # a pair, or the mapping cannot be read
        if type(key) is str and key.isascii() and ((type(item) is str and item.isascii()) or type(item) is int):
            # What the rules below make of a plain ASCII key and a plain ASCII str or an int:
            # the value itself (tests/test_fast_paths.py pins the two). Most entries are.
            data[key] = item
            continue
        text = jsontext.coerce_text(key)
        if text is None:
            rules.reject(where, f"keys must be str, got a key of type {type(key).__name__}", TypeError)
            continue
        try:
            # A plain copy that later mutation of the caller's dict cannot reach, and that
            # merges and encodes without surprises.
            data[jsontext.encodable_or_raise(text)] = jsontext.json_safe(item, set())
        except jsontext.UnencodableError:
            rules.reject(where, f"an entry {_UNENCODABLE[4:]}", outcome="the entry is left out")
        except Exception as exc:  # a circular reference, nesting too deep, a str() that raises...
            rules.reject(
                where,
                f"an entry cannot be encoded as JSON ({type(exc).__name__})",
                outcome="the entry is left out",
            )
    return jsontext.JsonObject(data) if data else None


def check_template(value: object, where: str) -> str | None:
    """A prompt template: a str with some non-blank text, kept exactly as given.

    check_template("Answer {question}", "using_prompt_template(template)")
    """
    if value is None:
        return None
    text = jsontext.coerce_text(value)
    if text is None:
        rules.reject(where, f"expected a str, got {rules.describe(value)}", TypeError)
        return None
    if not text.strip():
        rules.reject(where, "got an empty or blank str")
        return None
    if not jsontext.encodable(text):
        rules.reject(where, _UNENCODABLE)
        return None
    return text
