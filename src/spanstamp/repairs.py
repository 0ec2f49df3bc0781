"""What an ended span may need before export, beyond the eviction restore: a LangChain run's ids, hashed late users.

The processor's ``on_end`` calls these in ``configure()``'s pipeline (a downstream processor
is set); each returns the span to export, the same object when there was nothing to do::

    span, added = with_run_ids(runs, span, (), keys, None)
    span = hide_late_users(span, stamped)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.util.types import AttributeValue

from spanstamp import attributes as attr
from spanstamp import privacy
from spanstamp._spans import attributes_of, copy_with, restore
from spanstamp.integrations import langchain as _langchain

_privacy: Final = privacy._settings

Values = dict[str, AttributeValue]


def with_run_ids(
    runs: dict[int, Values],
    span: ReadableSpan,
    final: tuple[str, ...],
    keys: frozenset[str],
    more: Callable[[Values], Values] | None,
) -> tuple[ReadableSpan, Values]:
    """A LangChain run's own span with the ids its run names and its body's spans got; and those ids.

    A run's span starts before LangChain sets the run's config, so it is given, where it
    lacks them, the ids its run's metadata names (read as its body's spans read them) and
    those its body's spans got (integrations/langchain.py). ``more`` adds what the
    processor's options add. May raise: the processor catches::

        span, added = with_run_ids(runs, span, (), frozenset({"session.id"}), None)
    """
    ended = _langchain.ended_run(runs, span, final)
    if ended is None:
        return span, {}
    named, learned = ended
    present = span.attributes or {}
    replaced = tuple(key for key in named if key in present)
    added: Values = {key: value for key, value in named.items() if key in keys}
    user = added.get(attr.USER_ID)
    if isinstance(user, str) and _privacy.hash_user_ids:
        # The run's metadata holds the raw id: only its pseudonym may be stamped.
        pseudonymizer = privacy.pseudonymizer()
        if pseudonymizer is None:
            del added[attr.USER_ID]
        else:
            added[attr.USER_ID] = pseudonymizer(user)
    if added and more is not None:
        added = more(added)
    for key, value in learned.items():
        added.setdefault(key, value)
    if added:
        return restore(span, added, replaced, evicted=False), added
    return span, {}


def hide_late_users(span: ReadableSpan, stamped: Values) -> ReadableSpan:
    """``span`` with user ids written after its start (not by spanstamp) hashed, with hashing on.

    OpenInference's LangChain tracer copies a run's raw metadata, ``user_id`` included, at
    span end: only what the processor stamped (``stamped``) is a pseudonym for sure. May
    raise: the processor catches::

        span = hide_late_users(span, {"user.id": pseudonym})
    """
    attributes = attributes_of(span)
    changes: Values = {}
    removed: list[str] = []
    ours = stamped.get(attr.USER_ID)
    user = attributes.get(attr.USER_ID)
    if user is not None and user != ours:
        hidden = privacy.hide_found_user(user)
        if hidden is None:
            removed.append(attr.USER_ID)
        else:
            changes[attr.USER_ID] = hidden
    metadata = attributes.get(attr.METADATA)
    if isinstance(metadata, str) and metadata != stamped.get(attr.METADATA):
        text = privacy.hide_metadata_text(metadata, keep=ours)
        if text is not metadata:
            changes[attr.METADATA] = text
    if changes or removed:
        return copy_with(span, changes, removed=removed)
    return span
