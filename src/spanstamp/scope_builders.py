"""The most common scopes, built without the general loop of :class:`~spanstamp.scope.Scope`.

``using_attributes(session_id=..., user_id=...)`` and the fronts of one argument
(``using_session``, ``using_user``, ``using_metadata``, ``using_tags``) build the very
scope ``Scope(...)`` builds, by the same rules (tests/test_fast_paths.py pins the two),
in about half the time: building was most of a ``with using_attributes(...)``::

    with using_attributes(session_id="s-1", user_id="u-1"): ...
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from spanstamp import privacy, rules
from spanstamp.attributes import SESSION_ID, USER_ID
from spanstamp.calls import from_arg
from spanstamp.checks import check_id
from spanstamp.fields import (
    METADATA,
    SESSION,
    TAGS,
    TEMPLATE,
    USER,
    VARIABLES,
    VERSION,
    Apply,
    Changes,
    Field,
    IdValue,
    MappingValue,
)
from spanstamp.scope import Scope, _accept

_ATTRIBUTES_ARGS: Final = (
    (SESSION, "using_attributes(session_id)"),
    (USER, "using_attributes(user_id)"),
    (METADATA, "using_attributes(metadata)"),
    (TAGS, "using_attributes(tags)"),
    (TEMPLATE, "using_attributes(prompt_template)"),
    (VERSION, "using_attributes(prompt_template_version)"),
    (VARIABLES, "using_attributes(prompt_template_variables)"),
)

# Read as a scope is built: whether user ids go in as pseudonyms, and the id cap.
_privacy: Final = privacy._settings
_rules: Final = rules.settings
# object.__new__, looked up once: a class attribute read costs ~1% of a ``with`` (measured).
_new: Final = object.__new__


def using_attributes(
    *,
    session_id: IdValue = None,
    user_id: IdValue = None,
    metadata: MappingValue = None,
    tags: Sequence[str] | from_arg | None = None,
    prompt_template: str | from_arg | None = None,
    prompt_template_version: IdValue = None,
    prompt_template_variables: MappingValue = None,
    propagate: bool | None = None,
) -> Scope:
    """All of the scopes of spanstamp.scopes in one; arguments left as ``None`` do nothing.

    ``propagate`` applies to the session and user ids as in ``using_session`` / ``using_user``.

    with using_attributes(session_id=conversation_id, user_id=user_id, tags=["web"]):
        ...
    """
    # Defined here, next to the fast path it takes, so that the ids-only case runs in this
    # one frame: a call to a builder was ~3% of a ``with using_attributes(...)`` (measured).
    if (
        metadata is not None
        or tags is not None
        or prompt_template is not None
        or prompt_template_version is not None
        or prompt_template_variables is not None
        or propagate is not None
        or _privacy.hash_user_ids
    ):
        return Scope(
            "using_attributes",
            _ATTRIBUTES_ARGS,
            (
                session_id,
                user_id,
                metadata,
                tags,
                prompt_template,
                prompt_template_version,
                prompt_template_variables,
            ),
            propagate,
        )
    # Ids only, the common case, built without the general loop in ~0.45 µs where it takes
    # ~1.1 (measured), exactly as Scope(...) builds it: tests/test_fast_paths.py pins the two.
    limit = _rules.max_id_length
    # checks.check_id's first branch, copied, for both ids at once: plain ASCII strs, the
    # usual case, make their dict in one step (a dict display: ~1% of a ``with``, measured).
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
        checked = _checked_ids(session_id, user_id, _ATTRIBUTES_ARGS, limit)
        if checked is None:  # a from_arg(): only the general loop keeps it
            return Scope("using_attributes", _ATTRIBUTES_ARGS[:2], (session_id, user_id))
        static = checked
    # Built in place, not by Scope(): the class call is ~5% of this scope's cost.
    scope = _new(Scope)
    scope._name = "using_attributes"
    scope._plan = ()
    scope._static = static
    scope._dynamic = ()
    scope._from_call = False
    scope._propagate = None
    scope._simple = bool(static)
    scope._last = None
    return scope


def _checked_ids(
    session_id: object, user_id: object, fields: Sequence[tuple[Field, str]], limit: int
) -> Changes | None:
    """What using_attributes sets for ids that are not both plain ASCII strs; ``None``: a ``from_arg``."""
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
    # As using_attributes builds it: what Scope() leaves for constant values.
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
