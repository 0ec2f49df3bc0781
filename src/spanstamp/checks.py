"""The input gate: what spanstamp accepts as an id, a tag, metadata or a template.

Every value that reaches the Context passes through one of the ``check_*`` functions
here, and nowhere else. A value that breaks a rule is left out with a warning on the
``spanstamp`` logger, or raises in strict mode (:func:`spanstamp.rules.reject`). Messages
name the argument and say what was wrong (type, length), never the value itself: ids
can be personal data. No value can break a check: anything a value raises while it is
read is a rejection too::

    check_id(" abc ", "using_session(session_id)")   # -> "abc"
    check_tags(["beta", " "], "using_tags(tags)")    # -> ["beta"], and one warning

Tags are checked in tag_rules.py (re-exported here), once per distinct sequence.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from spanstamp import jsontext, rules
from spanstamp.jsontext import base_text
from spanstamp.reading import UNENCODABLE, read_safely
from spanstamp.tag_rules import Tags as Tags
from spanstamp.tag_rules import check_tags as check_tags


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
    return read_safely(_check_id, value, where)


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
        rules.reject(where, UNENCODABLE)
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
    return read_safely(_check_mapping, value, where)


def _check_mapping(value: object, where: str) -> jsontext.JsonObject | None:
    # type() first: isinstance() against the Mapping ABC is a tenth of checking a small dict.
    if type(value) is not dict and not isinstance(value, Mapping):
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
            rules.reject(where, f"an entry {UNENCODABLE[4:]}", outcome="the entry is left out")
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
        rules.reject(where, UNENCODABLE)
        return None
    return text
