"""Stamping a span after it started: when a scope is entered inside it, or an OpenAI request names its user.

The processor remembers the spans it started (by span id, held weakly, with a weak
reference to each one's local root) only when an option needs this
(``stamp_local_root``, ``openai_user_ids``)::

    track(open_spans, span)                       # at span start
    stamp_open(open_spans, span, found, with_root=True)  # later, with the values in force
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping

from opentelemetry.sdk.trace import Span
from opentelemetry.util.types import AttributeValue

from spanstamp._open_spans import OpenSpans
from spanstamp._span_context import is_remote_of, span_id_of

#: An open span's entry: (a weak reference to) its local root.
Roots = OpenSpans[weakref.ref[Span]]


def track(spans: Roots, span: Span) -> None:
    """Remember ``span``, just started, with its local root.

    track(open_spans, span)
    """
    parent = span.parent
    # Below a parent this processor never saw start (another provider's), the span is
    # the root of what this processor can stamp.
    root = None if parent is None or is_remote_of(parent) else spans.get(span_id_of(parent))
    # The root is held weakly too: a child kept alive does not keep its root alive.
    spans.add(span, weakref.ref(span) if root is None else root, 0)


def open_root(spans: Roots, span: object) -> tuple[Span, Span] | None:
    """``(span, its local root)`` when ``span`` is a recording span in ``spans``, else ``None``.

    open_root(open_spans, trace.get_current_span())  # -> (span, root)
    """
    if not isinstance(span, Span) or not span.is_recording():
        return None
    root_ref = spans.get(span_id_of(span.context))
    if root_ref is None:
        return None
    return span, root_ref() or span  # a root no longer referenced: the span alone


def stamp_missing(targets: tuple[Span, ...], found: Mapping[str, AttributeValue]) -> None:
    """Set on each span of ``targets`` the values of ``found`` it lacks (never overwriting).

    stamp_missing((span, root), {"session.id": "s-1"})
    """
    for target in targets:
        present = target.attributes or {}
        missing = {key: value for key, value in found.items() if key not in present}
        if missing:
            target.set_attributes(missing)
