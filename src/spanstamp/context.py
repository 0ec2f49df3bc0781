"""Reading what the scopes put into the Context.

``get_attributes_from_context`` is what :class:`~spanstamp.SessionSpanProcessor`
stamps on a span started in that context; both use :func:`collect`::

    with using_session("s-1"):
        assert current_session_id() == "s-1"
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable
from typing import Final

from opentelemetry.context import Context, get_current
from opentelemetry.util.types import AttributeValue

from spanstamp import attributes as attr
from spanstamp.rules import coerce_id

_ALL: Final = frozenset(attr.CONTEXT_ATTRIBUTES)
_SESSION: Final = frozenset({attr.SESSION_ID})
_USER: Final = frozenset({attr.USER_ID})
# With a parent context, keys are probed in this fixed order (not a set's, which changes
# with PYTHONHASHSEED), so spans list their attributes the same way in every process.
_PARENT_ORDER: Final = (*attr.CONTEXT_ATTRIBUTES, *attr.FROM_METADATA)


def collect(keys: Collection[str], parent: Context | None, current: Context) -> dict[str, AttributeValue]:
    """The attributes for a span started with ``parent`` while ``current`` is current.

    Each key comes from ``parent`` and, where ``parent`` lacks it, from ``current``:
    instrumentors that build a parent context from an empty ``Context()`` still get
    the scope's values. An id a scope's metadata names fills ``session.id`` /
    ``user.id`` only where no scope set them::

        collect(CONTEXT_ATTRIBUTES, None, get_current())
    """
    found: dict[str, AttributeValue] = {}
    named: dict[str, str] | None = None
    if parent is None:
        # A Context holds a handful of keys: walking them beats probing every key.
        pairs: Iterable[tuple[str, object]] = current.items()
    else:
        pairs = []
        for key in _PARENT_ORDER:
            value = parent.get(key)
            pairs.append((key, current.get(key) if value is None else value))
    for key, value in pairs:
        if key in keys and value is not None:
            # A plain non-empty str, what the scopes write, is taken without a call.
            if type(value) is not str or not value:
                value = stampable(key, value)
                if value is None:
                    continue
            found[key] = value
        elif key in attr.FROM_METADATA and type(value) is str:
            named = {} if named is None else named
            named[attr.FROM_METADATA[key]] = value
    if named is not None:
        for key, value in named.items():
            if key in keys and key not in found:
                found[key] = value
    return found


def stampable(key: str, value: object) -> AttributeValue | None:
    """What is stamped for ``value`` found under ``key`` in a Context, or ``None`` for nothing.

    stampable("user.id", 42)   # -> "42"
    stampable("user.id", "")   # -> None
    """
    if type(value) is str:
        return value or None
    if value is None:
        return None
    # Tags (a tuple or list), or a value another library wrote (OpenInference stores
    # what it is given), held to our id rules.
    return coerce_id(value) if key in attr.ID_ATTRIBUTES else value  # type: ignore[return-value]


def get_attributes_from_context(context: Context | None = None) -> dict[str, AttributeValue]:
    """Exactly the attributes the processor would stamp on a span started with ``context``.

    with using_user("u-1"):
        get_attributes_from_context()  # -> {"user.id": "u-1"}
    """
    return collect(_ALL, context, get_current())


def current_session_id(context: Context | None = None) -> str | None:
    """The session id in force, or ``None``.

    with using_session("s-1"):
        current_session_id()  # -> "s-1"
    """
    value = collect(_SESSION, context, get_current()).get(attr.SESSION_ID)
    return value if isinstance(value, str) else None


def current_user_id(context: Context | None = None) -> str | None:
    """The user id in force, or ``None``.

    with using_user("u-1"):
        current_user_id()  # -> "u-1"
    """
    value = collect(_USER, context, get_current()).get(attr.USER_ID)
    return value if isinstance(value, str) else None


def new_session_id() -> str:
    """A fresh random session id (a UUID4 string).

    session_id = new_session_id()
    """
    return str(uuid.uuid4())
