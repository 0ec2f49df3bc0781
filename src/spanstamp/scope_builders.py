"""The most common scopes, built without the general loop of :class:`~spanstamp.scope.Scope`.

``using_attributes(session_id=..., user_id=...)`` and the fronts of one argument
(``using_session``, ``using_user``, ``using_metadata``, ``using_tags``) build the very
scope ``Scope(...)`` builds, by the same rules (tests/test_fast_paths.py pins the two),
in about half the time: building was most of a ``with using_attributes(...)``::

    scope_of_ids("using_attributes", _ATTRIBUTES_ARGS, "s-1", "u-1")
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from spanstamp import privacy, rules
from spanstamp.attributes import SESSION_ID, USER_ID
from spanstamp.calls import from_arg
from spanstamp.checks import check_id
from spanstamp.fields import Apply, Changes, Field
from spanstamp.scope import Scope, _accept

# Read as a scope is built: whether user ids go in as pseudonyms, and the id cap.
_privacy: Final = privacy._settings
_rules: Final = rules.settings
# object.__new__, looked up once: a class attribute read costs ~1% of a ``with`` (measured).
_new: Final = object.__new__


def scope_of_ids(name: str, fields: Sequence[tuple[Field, str]], session_id: object, user_id: object) -> Scope:
    """A scope of a session id and a user id (either may be ``None``), exactly as ``Scope(...)`` builds it.

    The most common scope, built without the general loop: ``fields`` are the front's
    (SESSION, where) and (USER, where) pairs::

        scope_of_ids("using_attributes", _ATTRIBUTES_ARGS, "s-1", "u-1")
    """
    if _privacy.hash_user_ids:
        return Scope(name, fields[:2], (session_id, user_id))
    # Built in ~0.45 µs where the general loop takes ~1.1 (measured): it is most of a
    # ``with using_attributes(...)``. tests/test_fast_paths.py pins the two to one result.
    limit = _rules.max_id_length
    # checks.check_id's first branch, copied, for both ids at once: plain ASCII strs, the
    # usual case, make their dict in one step (a dict display: ~2% of a ``with``, measured).
    if (
        type(session_id) is str
        and (session := session_id.strip())
        and len(session) <= limit
        and session.isascii()
        and type(user_id) is str
        and (user := user_id.strip())
        and len(user) <= limit
        and user.isascii()
    ):
        static: Changes = {SESSION_ID: session, USER_ID: user}
    else:
        checked = _checked_ids(session_id, user_id, fields, limit)
        if checked is None:  # a from_arg(): only the general loop keeps it
            return Scope(name, fields[:2], (session_id, user_id))
        static = checked
    # Built in place, not by Scope(): the class call is ~5% of this scope's cost.
    scope = _new(Scope)
    scope._name = name
    scope._plan = ()
    scope._static = static
    scope._dynamic = ()
    scope._from_call = False
    scope._propagate = None
    scope._simple = bool(static)
    scope._last = None
    return scope


def _checked_ids(session_id: object, user_id: object, fields: Sequence[tuple[Field, str]], limit: int) -> Changes | None:
    """What scope_of_ids sets for ids that are not both plain ASCII strs; ``None``: a ``from_arg``."""
    static: Changes = {}
    if type(session_id) is str and (text := session_id.strip()) and len(text) <= limit and text.isascii():
        static[SESSION_ID] = text
    elif session_id is not None:
        if type(session_id) is from_arg or type(user_id) is from_arg:  # before any check can warn
            return None
        if (checked := check_id(session_id, fields[0][1])) is not None:
            static[SESSION_ID] = checked
    if type(user_id) is str and (text := user_id.strip()) and len(text) <= limit and text.isascii():
        static[USER_ID] = text
    elif user_id is not None:
        if type(user_id) is from_arg:
            return None
        if (checked := check_id(user_id, fields[1][1])) is not None:
            static[USER_ID] = checked
    return static


def scope_of(name: str, fields: tuple[tuple[Field, str]], value: object) -> Scope:
    """The scope of a front with one argument, exactly as ``Scope(name, fields, (value,))`` builds it.

    ``using_session``, ``using_user``, ``using_metadata`` and ``using_tags``, without the
    general loop and the class call (~40% of building one, measured)::

        scope_of("using_tags", _TAGS_ARGS, ["beta"])
    """
    field, where = fields[0]
    if type(value) is from_arg:
        return Scope(name, fields, (value,))
    static: Changes = {}
    dynamic: list[tuple[Apply, Any]] = []
    if value is not None:
        _accept(field, where, value, static, dynamic)
    # As scope_of_ids builds it: what Scope() leaves for constant values.
    scope = _new(Scope)
    scope._name = name
    scope._plan = ()
    scope._static = static
    scope._dynamic = dynamic
    scope._from_call = False
    scope._propagate = None
    scope._simple = bool(static or dynamic)
    scope._last = None
    return scope
