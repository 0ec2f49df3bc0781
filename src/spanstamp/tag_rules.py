"""Tags: the input rule for ``using_tags`` and ``tags=``, and the cache that checks each sequence once.

Each tag a non-blank str (stripped), UTF-8 encodable; bad entries are left out one by one,
duplicates dropped in first-seen order. Part of the input gate (checks.py re-exports it)::

    check_tags(["beta", " ", "beta"], "using_tags(tags)")  # -> ["beta"] and one warning
"""

from __future__ import annotations

from typing import Final

from spanstamp import jsontext, rules
from spanstamp.reading import UNENCODABLE, read_safely


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
        return read_safely(_check_tags, value, where)
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
        return read_safely(_check_tags, tags, where)
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
    checked = read_safely(_tags_of, tags, where)
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
            rules.reject(where, UNENCODABLE)
        else:
            tags[text] = None
            continue
        clean = False
    return (Tags(tags) if tags else None), clean
