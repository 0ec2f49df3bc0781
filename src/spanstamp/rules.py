"""Input rules: what spanstamp accepts as an id, a tag, metadata or a template.

Every value that reaches the Context passes through one of the ``check_*`` functions
here, and nowhere else. A value that breaks a rule is left out with a warning on the
``spanstamp`` logger, or raises in strict mode. Messages name the argument and say
what was wrong (type, length), never the value itself: ids can be personal data::

    configure_rules(strict=True)      # raise TypeError / ValueError instead of warning
    check_id(" abc ", "using_session(session_id)")   # -> "abc"
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any, Final

logger: Final = logging.getLogger("spanstamp")

DEFAULT_MAX_ID_LENGTH: Final = 256
STRICT_ENV: Final = "SPANSTAMP_STRICT"
MAX_ID_LENGTH_ENV: Final = "SPANSTAMP_MAX_ID_LENGTH"

# One warning per argument and kind of problem per interval: a bad header on every
# request must not flood the application's logs.
_WARN_INTERVAL_S: Final = 60.0
# The limiter forgets its oldest entries beyond this many: a process that meets many
# kinds of problem must not grow it without bound.
_MAX_WARNED: Final = 4096
# Sizes in a problem ("a str of 300 characters") are masked in the limiter's key, so
# values of every length count as one kind of problem.
_SIZES: Final = re.compile(r"\d+")

_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"", "0", "false", "no", "off"})


class RejectedInputError(Exception):
    """Base of what strict mode raises for a rejected value; never raised in default mode.

    Every check tells its own rejections apart from an exception a user object raised while
    being read (which is itself a rejection), so only these two kinds ever leave a check::

        except RejectedInputError: ...   # strict mode: a TypeError or ValueError
    """


class RejectedTypeError(RejectedInputError, TypeError):
    """Strict mode: a value of the wrong type (a ``TypeError``).

    with pytest.raises(TypeError): using_session(1.5)
    """


class RejectedValueError(RejectedInputError, ValueError):
    """Strict mode: a value of the right type that breaks a rule (a ``ValueError``).

    with pytest.raises(ValueError): using_session("   ")
    """


_STRICT_ERRORS: Final[dict[type[Exception], type[RejectedInputError]]] = {
    TypeError: RejectedTypeError,
    ValueError: RejectedValueError,
}


class JsonObject:
    """A validated mapping, kept both as a JSON-safe dict and as its JSON text."""

    __slots__ = ("data", "text")

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.text = dumps(data)


def dumps(data: Mapping[str, Any]) -> str:
    """Encode a mapping the way OpenInference stores metadata and prompt variables, as strict JSON.

    dumps({"n": float("nan")})  # -> '{"n": "nan"}', never the invalid '{"n": NaN}'
    """
    try:
        return json.dumps(data, default=str, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError):
        # NaN or infinity (or a nested key JSON cannot encode), e.g. in metadata another
        # library wrote and a merge decoded: the slow path makes every value safe.
        return json.dumps(_json_safe(data, set()), ensure_ascii=False, allow_nan=False)


class _UnencodableError(ValueError):
    """Text inside a mapping that cannot be encoded as UTF-8."""


def _encodable_or_raise(text: str) -> str:
    if not encodable(text):
        raise _UnencodableError
    return text


def _json_safe(value: object, path: set[int]) -> Any:
    """A plain copy of ``value`` for JSON, read with base-class methods only.

    Values JSON cannot encode go through ``str``; non-finite floats become "nan", "inf"
    or "-inf"; text that cannot be encoded as UTF-8 raises. ``path`` holds the containers
    above::

        _json_safe({"n": float("inf"), "k": {(1, 2): {3}}}, set())  # -> {"n": "inf", "k": {"(1, 2)": "{3}"}}
    """
    if value is None or type(value) is bool:
        return value
    # The base classes' methods, not str() or float(): a subclass may override those.
    if isinstance(value, str):
        return _encodable_or_raise(_text(value))
    if isinstance(value, int):
        return int.__int__(value)
    if isinstance(value, float):
        number = float.__float__(value)
        # JSON has no NaN or infinity: json writes NaN, which strict parsers refuse.
        return number if math.isfinite(number) else float.__repr__(number)
    if not isinstance(value, (dict, list, tuple)):
        return _encodable_or_raise(str(value))
    if id(value) in path:
        raise ValueError("circular reference")
    path.add(id(value))
    copy: Any
    if isinstance(value, dict):
        copy = {}
        for key, item in dict.items(value):
            name = coerce_text(key)
            copy[_encodable_or_raise(str(key) if name is None else name)] = _json_safe(item, path)
    else:
        items: Iterable[object] = list.__iter__(value) if isinstance(value, list) else tuple.__iter__(value)
        copy = [_json_safe(item, path) for item in items]
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
            data[_encodable_or_raise(key)] = _json_safe(item, set())
        except Exception:
            continue
    return data


class _Settings:
    __slots__ = ("max_id_length", "strict")

    def __init__(self) -> None:
        self.strict = False
        self.max_id_length = DEFAULT_MAX_ID_LENGTH


_settings: Final = _Settings()
_warned: dict[tuple[str, str], tuple[float, int]] = {}
_warned_lock: Final = threading.Lock()


def configure_rules(*, strict: bool | None = None, max_id_length: int | None = None) -> None:
    """Change the input rules for the whole process; ``None`` leaves a setting as it is.

    ``strict=True`` turns every rejected value into a ``TypeError`` or ``ValueError``
    (for development and tests). ``max_id_length`` caps ids: longer ones are rejected,
    never truncated, because two truncated ids could merge two sessions::

        configure_rules(strict=True, max_id_length=128)
    """
    if strict is not None:
        if not isinstance(strict, bool):
            raise TypeError(f"configure_rules(strict) must be a bool, got {type(strict).__name__}")
        _settings.strict = strict
    if max_id_length is not None:
        if isinstance(max_id_length, bool) or not isinstance(max_id_length, int) or max_id_length < 1:
            raise ValueError("configure_rules(max_id_length) must be a positive int")
        _settings.max_id_length = max_id_length


def max_id_length() -> int:
    """The longest id accepted, in characters.

    assert len(session_id) <= max_id_length()
    """
    return _settings.max_id_length


def env_flag(name: str, default: bool, environ: Mapping[str, str] = os.environ, *, invalid: bool | None = None) -> bool:
    """A boolean ``SPANSTAMP_*`` variable: 1/true/yes/on or 0/false/no/off; else a warning.

    ``invalid`` is what a value that is neither means (``default`` if not given): a privacy
    setting fails closed. The warning never shows the value, which may be a secret put in
    the wrong variable::

        env_flag("SPANSTAMP_STRICT", False)  # -> True when SPANSTAMP_STRICT=1
    """
    raw = environ.get(name)
    if raw is None:
        return default
    flag = raw.strip().lower()
    if flag in _TRUE:
        return True
    if flag in _FALSE:
        return False if flag else default
    outcome = default if invalid is None else invalid
    logger.warning("%s is not a boolean (use 1 or 0; got %s); using %s", name, describe(raw), outcome)
    return outcome


def env_positive_int(name: str, default: int, environ: Mapping[str, str] = os.environ) -> int:
    """A positive integer ``SPANSTAMP_*`` variable; a bad value warns and gives ``default``.

    env_positive_int("SPANSTAMP_MAX_ID_LENGTH", 256)  # -> 128 when set to 128
    """
    raw = environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        number = int(raw)
    except ValueError:
        number = 0
    if number < 1:
        logger.warning("%s is not a positive integer (got %s); using the default, %d", name, describe(raw), default)
        return default
    return number


def env_list(name: str, environ: Mapping[str, str] = os.environ) -> list[str] | None:
    """A comma-separated ``SPANSTAMP_*`` variable as a list of stripped names, ``None`` if unset.

    env_list("SPANSTAMP_ATTRIBUTES")  # -> ["session.id", "user.id"]
    """
    raw = environ.get(name)
    if raw is None or not raw.strip():
        return None
    return [part.strip() for part in raw.split(",") if part.strip()]


def load_environment(environ: Mapping[str, str] = os.environ) -> None:
    """Read ``SPANSTAMP_STRICT`` and ``SPANSTAMP_MAX_ID_LENGTH``; a bad value is reported, not fatal.

    load_environment({"SPANSTAMP_STRICT": "1"})
    """
    _settings.strict = env_flag(STRICT_ENV, _settings.strict, environ)
    _settings.max_id_length = env_positive_int(MAX_ID_LENGTH_ENV, _settings.max_id_length, environ)


def reject(
    where: str, problem: str, error: type[Exception] = ValueError, outcome: str = "the value is left out"
) -> None:
    """Report a value that breaks a rule: raise in strict mode, else warn (rate-limited).

    ``problem`` must describe the value by type and size only, never by content;
    ``outcome`` says what happens instead in default mode::

        reject("using_session(session_id)", "expected a str or int, got float", TypeError)
    """
    if _settings.strict:
        raise _STRICT_ERRORS.get(error, RejectedValueError)(f"{where}: {problem}")
    key = (where, _SIZES.sub("#", problem))
    now = time.monotonic()
    with _warned_lock:
        last, suppressed = _warned.get(key, (None, 0))
        if last is not None and now - last < _WARN_INTERVAL_S:
            _warned[key] = (last, suppressed + 1)
            return
        # Moved to the end, so the dict runs from the oldest warning to the newest.
        _warned.pop(key, None)
        if len(_warned) >= _MAX_WARNED:
            del _warned[next(iter(_warned))]
        _warned[key] = (now, 0)
    message = f"{where}: {problem}; {outcome}"
    if suppressed:
        message += f" ({suppressed} more like this in the last {_WARN_INTERVAL_S:.0f} s)"
    logger.warning(message)


def describe(value: object) -> str:
    """Name a value's type and size without showing its content; never raises.

    describe("secret@example.com")  # -> "a str of 18 characters"
    """
    kind = type(value)  # type(), not __class__: a mock's spec lies about its class
    if kind is str or (isinstance(value, str) and _length(value) is not None):
        return f"a str of {_length(value)} characters"
    return f"a value of type {kind.__name__}"


def _length(text: object) -> int | None:
    try:
        return str.__len__(text)  # type: ignore[arg-type]
    except Exception:  # not really a str (a mock with spec=str)
        return None


def _text(value: object) -> str:
    """The exact ``str`` behind a str or str subclass, read with the base class only.

    Raises for anything that only claims to be a str (``Mock(spec=str)``): callers treat
    any exception as a rejection.
    """
    return value if type(value) is str else str.__str__(value)


def encodable(text: str) -> bool:
    """Whether ``text`` can be written as UTF-8: no lone surrogates.

    A lone surrogate (``json.loads('"\\ud800"')``) is a valid Python str that no exporter
    or propagator can encode: OpenTelemetry's baggage propagator raises on it::

        encodable("ada")  # -> True; encodable("a\ud800") -> False
    """
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


_UNENCODABLE: Final = "got text that cannot be encoded as UTF-8 (a lone surrogate)"


def _unreadable(where: str, exc: BaseException) -> None:
    # A user object raised while being read: the value is rejected like any bad value.
    # Only the exception's type is named; its message may quote the value.
    reject(where, f"the value could not be read ({type(exc).__name__})")


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
        if text and len(text) <= _settings.max_id_length and (text.isascii() or encodable(text)):
            return text
    elif value is None:
        return None
    try:
        return _check_id(value, where)
    except RejectedInputError:
        raise
    except Exception as exc:
        _unreadable(where, exc)
        return None


def _check_id(value: object, where: str) -> str | None:
    if isinstance(value, str):
        text = _text(value).strip()
    elif isinstance(value, int) and not isinstance(value, bool):
        decimal = _decimal(value)
        if decimal is None:
            # Only the size is named: the value is an id, and str() of it is what failed.
            digits = int(int.bit_length(value) * math.log10(2)) + 1
            _reject_long_id(where, f"an int of about {digits} digits")
            return None
        text = decimal
    else:
        reject(where, f"expected a str or int, got {describe(value)}", TypeError)
        return None
    if not text:
        reject(where, "got an empty or blank str")
        return None
    if len(text) > _settings.max_id_length:
        _reject_long_id(where, describe(text))
        return None
    if not encodable(text):
        reject(where, _UNENCODABLE)
        return None
    return text


def _reject_long_id(where: str, what: str) -> None:
    """Reject an id over the cap; ``what`` names its type and size."""
    reject(
        where,
        f"got {what}, over the cap of {_settings.max_id_length} "
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
            text = _text(value).strip()
        elif isinstance(value, int) and not isinstance(value, bool):
            text = _decimal(value) or ""
        else:
            return None
        return text if 0 < len(text) <= _settings.max_id_length and encodable(text) else None
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
    try:
        return _check_tags(value, where)
    except RejectedInputError:
        raise
    except Exception as exc:
        _unreadable(where, exc)
        return None


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
    base = next((kind for kind in _COLLECTIONS if isinstance(value, kind)), None)
    if base is None:
        reject(where, f"expected a list of str, got {describe(value)}", TypeError)
        return None
    tags: dict[str, None] = {}
    tag: object
    for tag in base.__iter__(value):  # type: ignore[arg-type]
        text = coerce_text(tag)
        if text is None:
            reject(where, f"each tag must be a str, got {describe(tag)}", TypeError)
        elif not (text := text.strip()):
            reject(where, "got an empty or blank tag")
        elif not encodable(text):
            reject(where, _UNENCODABLE)
        else:
            tags[text] = None
    return Tags(tags) if tags else None


def coerce_text(value: object) -> str | None:
    """The exact str behind a str (or str subclass), or ``None`` for anything else; never raises.

    coerce_text("a")  # -> "a"; coerce_text(Mock(spec=str)) -> None
    """
    if type(value) is str:
        return value
    if not isinstance(value, str):
        return None
    try:
        return _text(value)
    except Exception:
        return None


def check_mapping(value: object, where: str) -> JsonObject | None:
    """Metadata or prompt variables: a mapping with str keys, made JSON-safe.

    Entries with a non-str key, or whose key or value holds text that cannot be encoded
    as UTF-8, are left out one by one; values that JSON cannot encode otherwise (nested
    non-str keys, NaN and infinity too) go through ``str``. An empty mapping, like
    ``None``, means "nothing here"::

        check_mapping({"tier": "pro", "when": date.today()}, "using_metadata(metadata)")
    """
    if value is None:
        return None
    try:
        return _check_mapping(value, where)
    except RejectedInputError:
        raise
    except Exception as exc:
        _unreadable(where, exc)
        return None


def _check_mapping(value: object, where: str) -> JsonObject | None:
    if not isinstance(value, Mapping):
        reject(where, f"expected a mapping with str keys, got {describe(value)}", TypeError)
        return None
    # A dict (or subclass) is read through dict's own methods; any other Mapping has only
    # its own, and whatever they raise or yield is caught by the caller.
    items = list(dict.items(value) if isinstance(value, dict) else value.items())
    data: dict[str, Any] = {}
    for pair in items:
        key, item = pair  # a pair, or the mapping cannot be read
        text = coerce_text(key)
        if text is None:
            reject(where, f"keys must be str, got a key of type {type(key).__name__}", TypeError)
            continue
        try:
            # A plain copy that later mutation of the caller's dict cannot reach, and that
            # merges and encodes without surprises.
            data[_encodable_or_raise(text)] = _json_safe(item, set())
        except _UnencodableError:
            reject(where, f"an entry {_UNENCODABLE[4:]}", outcome="the entry is left out")
        except Exception as exc:  # a circular reference, nesting too deep, a str() that raises...
            reject(
                where,
                f"an entry cannot be encoded as JSON ({type(exc).__name__})",
                outcome="the entry is left out",
            )
    return JsonObject(data) if data else None


def check_template(value: object, where: str) -> str | None:
    """A prompt template: a str with some non-blank text, kept exactly as given.

    check_template("Answer {question}", "using_prompt_template(template)")
    """
    if value is None:
        return None
    text = coerce_text(value)
    if text is None:
        reject(where, f"expected a str, got {describe(value)}", TypeError)
        return None
    if not text.strip():
        reject(where, "got an empty or blank str")
        return None
    if not encodable(text):
        reject(where, _UNENCODABLE)
        return None
    return text


def forget_warnings() -> None:
    """Reset the rate limiter, so the next rejected value warns again (for tests).

    forget_warnings()
    """
    with _warned_lock:
        _warned.clear()


load_environment()
