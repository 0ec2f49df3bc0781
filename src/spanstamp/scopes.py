"""Scopes: put session, user, metadata, tags and prompt template into the Context.

One class, :class:`~spanstamp.scope.Scope`, does all the work; ``using_session``,
``using_user``, ``using_metadata``, ``using_tags``, ``using_prompt_template`` and
``using_attributes`` only choose which of its fields (fields.py) to fill. A scope is a context manager, an async
context manager and a decorator (sync and async functions, generators, async
generators, methods)::

    with using_session(conversation_id), using_user(user_id):
        client.chat.completions.create(...)

A decorator can take a value from each call instead of a constant::

    @using_session(from_arg("conversation_id"))
    def handle(conversation_id: str, text: str) -> str: ...
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from spanstamp.calls import from_arg
from spanstamp.fields import METADATA, SESSION, TAGS, TEMPLATE, USER, VARIABLES, VERSION, IdValue, MappingValue
from spanstamp.scope import Scope

# using_attributes lives next to its fast path (scope_builders.py); it is a front all the same.
from spanstamp.scope_builders import _ATTRIBUTES_ARGS as _ATTRIBUTES_ARGS
from spanstamp.scope_builders import scope_of
from spanstamp.scope_builders import using_attributes as using_attributes

# --- The public fronts ---------------------------------------------------------------
#
# Each front is a table of (field, where) and the values it was called with; the
# tables are built once, so a call builds nothing but the value tuple.

_SESSION_ARGS: Final = ((SESSION, "using_session(session_id)"),)
_USER_ARGS: Final = ((USER, "using_user(user_id)"),)
_METADATA_ARGS: Final = ((METADATA, "using_metadata(metadata)"),)
_TAGS_ARGS: Final = ((TAGS, "using_tags(tags)"),)
_TEMPLATE_ARGS: Final = (
    (TEMPLATE, "using_prompt_template(template)"),
    (VERSION, "using_prompt_template(version)"),
    (VARIABLES, "using_prompt_template(variables)"),
)


def using_session(session_id: IdValue, *, propagate: bool | None = None) -> Scope:
    """Everything inside belongs to this session (``session.id``); ``None`` does nothing.

    ``propagate=True`` also sends it downstream as W3C baggage (``None``: the
    process-wide setting, off unless ``SPANSTAMP_PROPAGATE=1``).

    with using_session(request.headers.get("x-session-id")):
        answer = client.chat.completions.create(...)
    """
    if propagate is None:
        return scope_of("using_session", _SESSION_ARGS, session_id)
    return Scope("using_session", _SESSION_ARGS, (session_id,), propagate)


def using_user(user_id: IdValue, *, propagate: bool | None = None) -> Scope:
    """Everything inside is done for this end user (``user.id``); ``None`` does nothing.

    ``propagate=True`` sends its pseudonym downstream as W3C baggage, never the raw id
    (without a ``SPANSTAMP_USER_ID_KEY`` it is not propagated).

    @using_user(from_arg("user_id"))
    def handle(user_id: str, text: str) -> str: ...
    """
    if propagate is None:
        return scope_of("using_user", _USER_ARGS, user_id)
    return Scope("using_user", _USER_ARGS, (user_id,), propagate)


def using_metadata(metadata: MappingValue) -> Scope:
    """Add metadata (JSON under ``metadata``); nested scopes merge key by key, inner wins.

    with using_metadata({"tier": "pro", "experiment": "b"}):
        ...
    """
    return scope_of("using_metadata", _METADATA_ARGS, metadata)


def using_tags(tags: Sequence[str] | from_arg | None) -> Scope:
    """Add tags (``tag.tags``); nested scopes accumulate them, without duplicates.

    with using_tags(["beta", "rag"]):
        ...
    """
    return scope_of("using_tags", _TAGS_ARGS, tags)


def using_prompt_template(
    *,
    template: str | from_arg | None = None,
    version: IdValue = None,
    variables: MappingValue = None,
) -> Scope:
    """Record the prompt template, its version and variables; replaces an outer template.

    with using_prompt_template(template="Answer: {q}", version="v3", variables={"q": q}):
        ...
    """
    return Scope("using_prompt_template", _TEMPLATE_ARGS, (template, version, variables))
