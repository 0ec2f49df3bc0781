"""What becomes of a stamped span as it ends, in a pipeline that exports through the processor.

The SDK's attribute count limit evicts the oldest attributes first, and the stamped ids
are set first: a long LLM span loses them. With a ``downstream`` processor,
:class:`~spanstamp.SessionSpanProcessor` keeps what it stamped per open span and puts it
back before export: into the span itself as it ends (SDK 1.40 and later call
``_on_ending``), or else on a copy at ``on_end``::

    as_ending(stamped_spans, span)            # from _on_ending: in place
    span, found, final = at_end(stamped_spans, readable)  # from on_end: a copy if still needed
"""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, Span
from opentelemetry.util.types import AttributeValue

from spanstamp._attribute_writes import restore_ending
from spanstamp._open_spans import OpenSpans
from spanstamp._spans import overwritten, restore

#: Kept per stamped span until it ends: ``[values stamped, the ids among them a scope set
#: (final), whether they were put back in place as the span ended]``; a list, so that
#: :func:`as_ending` can mark it.
Stamped = list[Any]


def as_ending(stamped: OpenSpans[Stamped], span: Span) -> None:
    """Put back, in ``span`` itself, what the count limit evicted or an instrumentor overwrote.

    Called as the span ends, before any processor's ``on_end`` (every exporter then sees
    it, and no copy is made)::

        as_ending(stamped_spans, span)
    """
    entry = stamped.get(span.context.span_id)
    if entry is not None:  # restore_ending() tests first what it need not do
        entry[2] = restore_ending(span, entry[0], entry[1])


def at_end(
    stamped: OpenSpans[Stamped], span: ReadableSpan
) -> tuple[ReadableSpan, dict[str, AttributeValue], tuple[str, ...]]:
    """``span`` with what :func:`as_ending` could not put back restored on a copy.

    Also returns what was stamped on it and its final ids (for the repairs that follow:
    a LangChain run's ids, late user ids hashed), and forgets the span::

        span, found, final = at_end(stamped_spans, span)
    """
    context = span.context
    entry = stamped.pop(context.span_id) if context is not None else None
    if entry is None:
        return span, {}, ()
    found, final, restored = entry
    # A scope's id wins over one written later: OpenInference's LangChain tracer writes
    # the run metadata's session at span end, which would split one run's spans between
    # two sessions. Restored as the span ended, or here on a copy (SDKs before 1.40,
    # spans of other classes, a processor wrapping this one that does not pass _on_ending on).
    if not restored and (span.dropped_attributes or (final and overwritten(span, found, final))):
        span = restore(span, found, final)
    return span, found, final
