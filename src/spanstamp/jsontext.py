"""Text as it may leave the process: exact ``str``, encodable as UTF-8, strict JSON.

The lowest layer of the input rules (:mod:`spanstamp.checks` builds on it). Values are
read through the base classes only, so a subclass's overrides cannot change or break
what is read; a value that only claims to be a ``str`` raises, and callers count that as
a rejection::

    dumps({"n": float("nan")})   # -> '{"n": "nan"}': strict JSON, as every backend parses it
    encodable("a\\ud800")        # -> False: a lone surrogate, which no exporter can send
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from typing import Any, Final


def base_text(value: object) -> str:
    """The exact ``str`` behind a str or str subclass, read with the base class only.

    Raises for anything that only claims to be a str (``Mock(spec=str)``): callers treat
    any exception as a rejection.
    """
    return value if type(value) is str else str.__str__(value)


def encodable(text: str) -> bool:
    """Whether ``text`` can be written as UTF-8: no lone surrogates.

    A lone surrogate (``json.loads('"\\ud800"')``) is a valid Python str that no exporter
    or propagator can encode: OpenTelemetry's baggage propagator raises on it::

        encodable("ada")  # -> True; encodable("a\\ud800") -> False
    """
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class JsonObject:
    """A validated mapping, kept as a JSON-safe dict, its entries as encoded, and its JSON text.

    ``text`` is ``dumps(data)``, built from ``entries`` (tests/test_metadata_merge.py pins
    the two), so a merge re-encodes only the entries it adds::

        JsonObject({"tier": "pro"}).entries  # -> {"tier": '"tier": "pro"'}
    """

    __slots__ = ("data", "entries", "text")

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.entries = entries(data)
        self.text = join_entries(self.entries.values())


# json.dumps(data, default=str, ensure_ascii=False, allow_nan=False), without building
# an encoder for each call (~1.5 µs of a ~2.5 µs dumps, measured); the encoder keeps no
# state between calls.
_encode: Final = json.JSONEncoder(default=str, ensure_ascii=False, allow_nan=False).encode
# What that encoder writes for a str (ensure_ascii=False): the very same function.
_quote: Final = json.encoder.encode_basestring


def entries(data: Mapping[str, Any]) -> dict[str, str]:
    """Each entry of a JSON-safe mapping, by key, as :func:`dumps` writes it inside the object.

    entries({"n": 1, "t": "pro"})  # -> {"n": '"n": 1', "t": '"t": "pro"'}
    """
    # Even a four-entry dumps builds an encoder per call (~1 µs, measured); a str or an
    # int, most values, is written directly here, in the encoder's own words.
    parts: dict[str, str] = {}
    for key, value in data.items():
        kind = type(value)
        if kind is str:
            parts[key] = f"{_quote(key)}: {_quote(value)}"
        elif kind is int:
            parts[key] = f"{_quote(key)}: {int.__repr__(value)}"
        else:
            parts[key] = dumps({key: value})[1:-1]
    return parts


def join_entries(parts: Iterable[str]) -> str:
    """The JSON object of entries as :func:`entries` gives them: what ``dumps`` writes.

    join_entries(['"a": 1', '"b": 2'])  # -> '{"a": 1, "b": 2}'
    """
    return "{" + ", ".join(parts) + "}"


def dumps(data: Mapping[str, Any]) -> str:
    """Encode a mapping the way OpenInference stores metadata and prompt variables, as strict JSON.

    dumps({"n": float("nan")})  # -> '{"n": "nan"}', never the invalid '{"n": NaN}'
    """
    try:
        return _encode(data)
    except (TypeError, ValueError):
        # NaN or infinity (or a nested key JSON cannot encode), e.g. in metadata another
        # library wrote and a merge decoded: the slow path makes every value safe.
        return json.dumps(json_safe(data, set()), ensure_ascii=False, allow_nan=False)


class UnencodableError(ValueError):
    """Text inside a mapping that cannot be encoded as UTF-8."""


def encodable_or_raise(text: str) -> str:
    """``text`` itself, or :class:`UnencodableError` when UTF-8 cannot encode it.

    data[encodable_or_raise(key)] = value
    """
    if not encodable(text):
        raise UnencodableError
    return text


def json_safe(value: object, path: set[int]) -> Any:
    """A plain copy of ``value`` for JSON, read with base-class methods only.

    Values JSON cannot encode go through ``str``; non-finite floats become "nan", "inf"
    or "-inf"; text that cannot be encoded as UTF-8 raises. ``path`` holds the containers
    above::

        json_safe({"n": float("inf"), "k": {(1, 2): {3}}}, set())  # -> {"n": "inf", "k": {"(1, 2)": "{3}"}}
    """
    if value is None or type(value) is bool:
        return value
    # The base classes' methods, not str() or float(): a subclass may override those.
    if isinstance(value, str):
        return encodable_or_raise(base_text(value))
    if isinstance(value, int):
        return int.__int__(value)
    if isinstance(value, float):
        number = float.__float__(value)
        # JSON has no NaN or infinity: json writes NaN, which strict parsers refuse.
        return number if math.isfinite(number) else float.__repr__(number)
    if not isinstance(value, (dict, list, tuple)):
        return encodable_or_raise(str(value))
    if id(value) in path:
        raise ValueError("circular reference")
    path.add(id(value))
    copy: Any
    if isinstance(value, dict):
        copy = {}
        for key, item in dict.items(value):
            name = coerce_text(key)
            copy[encodable_or_raise(str(key) if name is None else name)] = json_safe(item, path)
    else:
        items: Iterable[object] = list.__iter__(value) if isinstance(value, list) else tuple.__iter__(value)
        copy = [json_safe(item, path) for item in items]
    path.discard(id(value))
    return copy


def decode_mapping(text: object) -> dict[str, Any]:
    """The entries of JSON object text found in a Context (ours or another library's) that pass the rules.

    Anything that is not such text gives ``{}``; entries that cannot be made JSON-safe
    (text that cannot be encoded as UTF-8, say) are left out quietly. Never raises::

        decode_mapping('{"tier": "pro"}')  # -> {"tier": "pro"}
    """
    raw = coerce_text(text)
    if raw is None:
        return {}
    try:
        decoded = json.loads(raw)
    except (ValueError, RecursionError):  # not JSON, or nested too deep to decode
        return {}
    if type(decoded) is not dict:
        return {}
    data: dict[str, Any] = {}
    for key, item in decoded.items():
        try:
            data[encodable_or_raise(key)] = json_safe(item, set())
        except Exception:
            continue
    return data


def coerce_text(value: object) -> str | None:
    """The exact str behind a str (or str subclass), or ``None`` for anything else; never raises.

    coerce_text("a")  # -> "a"; coerce_text(Mock(spec=str)) -> None
    """
    if type(value) is str:
        return value
    if not isinstance(value, str):
        return None
    try:
        return base_text(value)
    except Exception:
        return None
