"""Reading a value for the input rules: whatever a user object raises is a rejection.

A value can break no check: a ``Mock(spec=str)`` or a list whose ``__iter__`` raises is
rejected like any bad value, with a message naming only the exception's type::

    read_safely(_check_id, value, "using_session(session_id)")
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, TypeVar

from spanstamp import rules

T = TypeVar("T")

#: What the rules say of text that no exporter can send.
UNENCODABLE: Final = "got text that cannot be encoded as UTF-8 (a lone surrogate)"


def read_safely(check: Callable[[object, str], T], value: object, where: str) -> T | None:
    """``check(value, where)``; anything but the rules' own error it raises is a rejection.

    read_safely(_check_tags, value, "using_tags(tags)")
    """
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
