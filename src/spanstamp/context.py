"""Reading what the scopes put into the Context.

``get_attributes_from_context`` is what :class:`~spanstamp.SessionSpanProcessor`
stamps on a span started in that context; both use :func:`collect`::

    with using_session("s-1"):
        assert current_session_id() == "s-1"
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from opentelemetry.context import Context, get_current
from opentelemetry.util.types import AttributeValue

from spanstamp import attributes as attr
from spanstamp.rules import max_id_length


def collect(keys: Iterable[str], parent: Context | None, current: Context) -> dict[str, AttributeValue]:
    """The attributes for a span started with ``parent`` while ``current`` is current.

    Each key comes from ``parent`` and, where ``parent`` lacks it, from ``current``:
    instrumentors that build a parent context from an empty ``Context()`` still get
    the scope's values::

        collect(CONTEXT_ATTRIBUTES, None, get_current())
    """
    found: dict[str, AttributeValue] = {}
    for key in keys:
        value = None if parent is None else parent.get(key)
        if value is None:
            value = current.get(key)
            if value is None:
                continue
        if type(value) is str:
            if not value:
                continue
        elif key in attr.ID_ATTRIBUTES:
            # Written by another library (OpenInference stores what it is given):
            # hold it to our id rules.
            value = _foreign_id(value)
            if value is None:
                continue
        found[key] = value  # type: ignore[assignment]
    return found


def _foreign_id(value: object) -> str | None:
    # Never reject loudly here: this runs inside span creation, strict mode or not.
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        text = str.strip(value)
        return text if 0 < len(text) <= max_id_length() else None
    return None


def get_attributes_from_context(context: Context | None = None) -> dict[str, AttributeValue]:
    """Exactly the attributes the processor would stamp on a span started with ``context``.

    with using_user("u-1"):
        get_attributes_from_context()  # -> {"user.id": "u-1"}
    """
    return collect(attr.CONTEXT_ATTRIBUTES, context, get_current())


def current_session_id(context: Context | None = None) -> str | None:
    """The session id in force, or ``None``.

    with using_session("s-1"):
        current_session_id()  # -> "s-1"
    """
    value = collect((attr.SESSION_ID,), context, get_current()).get(attr.SESSION_ID)
    return value if isinstance(value, str) else None


def current_user_id(context: Context | None = None) -> str | None:
    """The user id in force, or ``None``.

    with using_user("u-1"):
        current_user_id()  # -> "u-1"
    """
    value = collect((attr.USER_ID,), context, get_current()).get(attr.USER_ID)
    return value if isinstance(value, str) else None


def new_session_id() -> str:
    """A fresh random session id (a UUID4 string).

    session_id = new_session_id()
    """
    return str(uuid.uuid4())
