"""What becomes of a stamped span as it ends, in a pipeline that exports through the processor.

The SDK's attribute count limit evicts the oldest attributes first, and the stamped ids
are set first: a long LLM span loses them. With a ``downstream`` processor,
:class:`~spanstamp.SessionSpanProcessor` keeps what it stamped per open span and puts it
back before export: into the span itself as it ends (SDK 1.40 and later call
``_on_ending``, where the processor calls
:func:`~spanstamp._attribute_writes.restore_ending` and marks the entry), or else on a
copy at ``on_end``::

    entry[2] = restore_ending(span, entry[0], entry[1])   # from _on_ending: in place
    span, found, final = at_end(stamped_spans, readable)  # from on_end: a copy if still needed
"""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.util.types import AttributeValue

from spanstamp._open_spans import OpenSpans
from spanstamp._spans import overwritten, restore

#: Kept per stamped span until it ends: ``[values stamped, the ids among them a scope set
#: (final), whether they were put back in place as the span ended]``; a list, so that
#: ``_on_ending`` can mark it.
Stamped = list[Any]


def at_end(
    stamped: OpenSpans[Stamped], span: ReadableSpan
) -> tuple[ReadableSpan, dict[str, AttributeValue], tuple[str, ...]]:
    """``span`` with what was not put back as it ended restored on a copy.

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
