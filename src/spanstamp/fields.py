"""How each kind of scope value is checked and lands in the Context.

A :class:`Field` is one argument of a scope (``session_id``, ``metadata``, ...): the rule
that checks it (from :mod:`spanstamp.rules`), how it is written on top of the outer
Context (ids under their key; metadata merged, tags accumulated, a template replacing
the outer one), and what user-id hashing makes of it. Every scope front and ``task()``
use these same fields::

    Scope("using_session", ((SESSION, "using_session(session_id)"),), (conversation_id,))
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final, cast

from opentelemetry.context import Context

from spanstamp import attributes as attr
from spanstamp import checks, jsontext, privacy
from spanstamp.calls import from_arg
from spanstamp.context import stampable

#: What a scope sets on top of the outer Context, by key.
Changes = dict[str, object]
#: What a scope's id and mapping arguments take: a value, ``None`` (nothing), or ``from_arg``.
IdValue = str | int | from_arg | None
MappingValue = Mapping[str, Any] | from_arg | None

#
# Ids go in as checked, under their key (``Field.key``). For the other kinds, each
# function writes one checked value into ``changes``, the keys the new context sets on
# top of ``outer``. ``None`` in ``changes`` hides an outer value: every reader
# (ours and OpenInference's) treats a ``None`` value as absent.


def _hide_metadata(value: jsontext.JsonObject, where: str) -> jsontext.JsonObject | None:
    hidden = privacy.hide_metadata_users(value.data, where)
    return value if hidden is value.data else (jsontext.JsonObject(hidden) if hidden else None)


class _Decoded:
    # Metadata a scope put into the Context: its JSON text, the (JSON-safe) dict it
    # encodes, and that dict's entries as encoded (jsontext.entries).
    __slots__ = ("data", "entries", "text")

    def __init__(self, text: str, data: dict[str, Any], entries: dict[str, str]) -> None:
        self.text = text
        self.data = data
        self.entries = entries


def _merge_metadata(changes: Changes, outer: Context, value: Any) -> None:
    # Nested metadata merges key by key, the inner scope winning. Each level used to decode
    # the outer JSON and encode the merge again: 10 µs at depth 1, 280 µs for 20 levels
    # (measured); then, with the outer dict kept beside its text, encoding the merge was
    # still most of a level (183 µs for 20). The outer scope's entries as encoded are kept
    # too: a level encodes only its own, and a dict merge of the entries, joined, is the
    # merge's JSON (the same key order as the dict merge). Every level costs about the same.
    outer_text = outer.get(attr.METADATA)
    inner: dict[str, Any] = value.data
    parts: dict[str, str] | None = None  # the outer entries as encoded, when they are ours
    if outer_text is None:
        merged: dict[str, Any] = {}
    else:
        decoded = outer.get(_DECODED)
        if type(decoded) is _Decoded and decoded.text is outer_text:
            merged = decoded.data  # ours, checked as it went in
            parts = decoded.entries
        else:
            merged = jsontext.decode_mapping(outer_text)
    hashing = _privacy.hash_user_ids
    if merged and hashing and outer.get(_PSEUDONYMOUS_METADATA) is not outer_text:
        # Another library's metadata (or ours from before hashing was on) may name a raw user.
        hidden = privacy.hide_metadata_users(merged)
        if hidden is not merged:
            merged, parts = hidden, None
    ours = parts is not None
    if not merged:
        data, text, entries = inner, value.text, value.entries
    else:
        data = {**merged, **inner}
        entries = {**(jsontext.entries(merged) if parts is None else parts), **value.entries}
        text = jsontext.join_entries(entries.values())
    changes[attr.METADATA] = text
    changes[_DECODED] = _Decoded(text, data, entries)
    if hashing:
        changes[_PSEUDONYMOUS_METADATA] = text
    if _ID_NAMES.isdisjoint(inner if ours else data):
        # No id is named at all; or the ids the outer metadata names (ours) are in the
        # outer Context already, and the inner names none that could outrank them.
        return
    # Ids the metadata names (``session_id``, ``user_id``, ...) wait under private keys;
    # the readers use them only where no scope sets the id itself.
    for key, names in _NAMED_IDS:
        named = next((found for name in names if (found := checks.coerce_id(data.get(name))) is not None), None)
        if named is not None:
            changes[key] = named
            if hashing and key == attr.USER_FROM_METADATA:
                changes[_PSEUDONYMOUS_NAMED_USER] = named


_DECODED: Final = attr.METADATA_DECODED
_privacy: Final = privacy._settings
_PSEUDONYMOUS_METADATA: Final = attr.PSEUDONYMOUS[attr.METADATA]
_PSEUDONYMOUS_NAMED_USER: Final = attr.PSEUDONYMOUS[attr.USER_FROM_METADATA]


def _add_tags(changes: Changes, outer: Context, value: Any) -> None:
    # Nested tags accumulate: outer first, deduplicated, in first-seen order.
    outer_tags = outer.get(attr.TAG_TAGS)
    if outer_tags is not None:
        # Outer tags may be another library's: held to the rules as any reader takes them.
        clean = stampable(attr.TAG_TAGS, outer_tags)
        if isinstance(clean, list):
            value = checks.Tags(dict.fromkeys([*clean, *value]))
    changes[attr.TAG_TAGS] = value


def _set_template(changes: Changes, outer: Context, value: Any) -> None:
    # A template replaces the outer one whole: the outer version and variables
    # belong to the outer template, so they are hidden too.
    changes[attr.PROMPT_TEMPLATE] = value
    changes[attr.PROMPT_TEMPLATE_VERSION] = None
    changes[attr.PROMPT_TEMPLATE_VARIABLES] = None


def _set_variables(changes: Changes, outer: Context, value: Any) -> None:
    changes[attr.PROMPT_TEMPLATE_VARIABLES] = value.text


_NAMED_IDS: Final = (
    (attr.SESSION_FROM_METADATA, attr.METADATA_SESSION_KEYS),
    (attr.USER_FROM_METADATA, attr.METADATA_USER_KEYS),
)
_ID_NAMES: Final = frozenset(attr.METADATA_SESSION_KEYS + attr.METADATA_USER_KEYS)


Check = Callable[[object, str], Any]
Apply = Callable[[Changes, Context, Any], None]


class Field:
    """How one argument is checked and applied.

    ``key`` (ids): the checked value goes into the Context as it is, under this key.
    ``apply`` writes anything else. ``static``: the result does not depend on the outer
    context, so a scope computes it once. ``requires``: a field this one belongs to,
    which must be given too. ``hide``: with user-id hashing on, what the checked value
    becomes (its pseudonym, say; ``None`` leaves it out); a key field also writes the
    result under ``marker``, so readers know it is hashed already.
    """

    __slots__ = ("apply", "check", "hide", "key", "marker", "requires", "static")

    def __init__(
        self,
        check: Check,
        apply: Apply | None = None,
        *,
        key: str | None = None,
        static: bool = True,
        requires: Field | None = None,
        hide: Callable[[Any, str], Any] | None = None,
    ) -> None:
        self.check = check
        self.key = key
        self.apply: Apply = self._write_key if apply is None else apply
        self.static = static
        self.requires = requires
        self.hide = hide
        self.marker = attr.PSEUDONYMOUS.get(key) if key is not None and hide is not None else None

    def _write_key(self, changes: Changes, outer: Context, value: Any) -> None:
        changes[cast(str, self.key)] = value
        if self.marker is not None and _privacy.hash_user_ids:
            changes[self.marker] = value

    def accept(self, value: object, where: str) -> Any:
        """The checked (and, with hashing on, hidden) value, or ``None`` when it is left out."""
        checked = self.check(value, where)
        if checked is not None and self.hide is not None and _privacy.hash_user_ids:
            return self.hide(checked, where)
        return checked


SESSION: Final = Field(checks.check_id, key=attr.SESSION_ID)
USER: Final = Field(checks.check_id, key=attr.USER_ID, hide=privacy.hide_user_id)
METADATA: Final = Field(checks.check_mapping, _merge_metadata, static=False, hide=_hide_metadata)
TAGS: Final = Field(checks.check_tags, _add_tags, static=False)
TEMPLATE: Final = Field(checks.check_template, _set_template)
# A version or variables without their template would be read as describing an outer
# template they do not belong to. The template is applied first, as it hides them.
VERSION: Final = Field(checks.check_id, key=attr.PROMPT_TEMPLATE_VERSION, requires=TEMPLATE)
VARIABLES: Final = Field(checks.check_mapping, _set_variables, requires=TEMPLATE)

_NO_CONTEXT: Final = Context()
