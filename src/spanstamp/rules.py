"""The input rules' settings, and how a rejected value is reported.

Strict mode and the id cap (``SPANSTAMP_STRICT``, ``SPANSTAMP_MAX_ID_LENGTH``), the
``SPANSTAMP_*`` variable readers, and :func:`reject`: a rate-limited warning on the
``spanstamp`` logger in default mode, a ``TypeError`` / ``ValueError`` in strict mode.
The checks themselves are in :mod:`spanstamp.checks`. Messages name the argument and
say what was wrong (type, size), never the value: ids can be personal data::

    configure_rules(strict=True)      # raise TypeError / ValueError instead of warning
    reject("using_session(session_id)", "got an empty or blank str")
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Mapping
from typing import Final

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


class _Settings:
    # One object, read on hot paths by the checks (checks.py) and the readers (context.py).
    __slots__ = ("max_id_length", "strict")

    def __init__(self) -> None:
        self.strict = False
        self.max_id_length = DEFAULT_MAX_ID_LENGTH


settings: Final = _Settings()
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
        settings.strict = strict
    if max_id_length is not None:
        if isinstance(max_id_length, bool) or not isinstance(max_id_length, int) or max_id_length < 1:
            raise ValueError("configure_rules(max_id_length) must be a positive int")
        settings.max_id_length = max_id_length


def max_id_length() -> int:
    """The longest id accepted, in characters.

    assert len(session_id) <= max_id_length()
    """
    return settings.max_id_length


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
    settings.strict = env_flag(STRICT_ENV, settings.strict, environ)
    settings.max_id_length = env_positive_int(MAX_ID_LENGTH_ENV, settings.max_id_length, environ)


def reject(
    where: str, problem: str, error: type[Exception] = ValueError, outcome: str = "the value is left out"
) -> None:
    """Report a value that breaks a rule: raise in strict mode, else warn (rate-limited).

    ``problem`` must describe the value by type and size only, never by content;
    ``outcome`` says what happens instead in default mode::

        reject("using_session(session_id)", "expected a str or int, got float", TypeError)
    """
    if settings.strict:
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


class FailureLog:
    """Report a failure caught on the span path: the first with its traceback, later ones at debug.

    Telemetry must not flood the app's log; one traceback says what broke::

        report = FailureLog("SessionSpanProcessor failed on a span", "SessionSpanProcessor failed again")
        report()  # inside ``except Exception:``
    """

    __slots__ = ("_again", "_first", "failed")

    def __init__(self, first: str, again: str) -> None:
        self._first = first
        self._again = again
        self.failed = False

    def __call__(self) -> None:
        """Log the exception being handled (call it inside ``except``)."""
        if not self.failed:
            self.failed = True
            logger.exception(self._first)
        else:
            logger.debug(self._again, exc_info=True)


def forget_warnings() -> None:
    """Reset the rate limiter, so the next rejected value warns again (for tests).

    forget_warnings()
    """
    with _warned_lock:
        _warned.clear()


load_environment()
