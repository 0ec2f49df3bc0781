"""What becomes of a stamped span as it ends, in a pipeline that exports through the processor.

The SDK's attribute count limit evicts the oldest attributes first, and the stamped ids
are set first: a long LLM span loses them. With a ``downstream`` processor,
:class:`~spanstamp.SessionSpanProcessor` keeps what it stamped per open span and puts it
back before export: into the span itself as it ends (SDK 1.40 and later call
``_on_ending``, where the processor calls
:func:`~spanstamp._attribute_writes.restore_ending` and marks the entry), or else on a
copy at ``on_end``::

    entry[2] = restore_ending(span, entry[0], entry[1])   # from _on_ending: in place
    readable = for_export(readable, stamped_spans, runs, keys, None, report)  # from on_end
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.util.types import AttributeValue

from spanstamp import privacy, repairs
from spanstamp._open_spans import OpenSpans
from spanstamp._span_context import span_id_of
from spanstamp._spans import overwritten, restore
from spanstamp.integrations import langchain as _langchain

_privacy: Final = privacy._settings

#: Kept per stamped span until it ends: ``[values stamped, the ids among them a scope set
#: (final), whether they were put back in place as the span ended]``; a list, so that
#: ``_on_ending`` can mark it.
Stamped = list[Any]


def for_export(
    span: ReadableSpan,
    stamped: OpenSpans[Stamped] | None,
    runs: dict[int, dict[str, AttributeValue]],
    keys: frozenset[str],
    more: Callable[[dict[str, AttributeValue]], dict[str, AttributeValue]] | None,
    report: Callable[[], None],
) -> ReadableSpan:
    """``span`` as the exporter gets it: what the span lost put back, a LangChain run's ids, users hashed.

    ``stamped`` is the processor's table of stamped spans (forgotten here), ``runs`` its
    LangChain runs, ``more`` its options' ids. Each step that fails is reported
    (``report()``, from inside the ``except``) and skipped: the span goes on as it is::

        downstream.on_end(for_export(span, stamped, runs, keys, None, processor._report_failure))
    """
    final: tuple[str, ...] = ()
    found: dict[str, AttributeValue] = {}
    if stamped is not None:
        try:
            context = span.context
            entry = stamped.pop(span_id_of(context)) if context is not None else None
            if entry is not None:
                found, final, restored = entry
                # A scope's id wins over one written later: OpenInference's LangChain
                # tracer writes the run metadata's session at span end, which would split
                # one run's spans between two sessions. Restored as the span ended, or here
                # on a copy (SDKs before 1.40, spans of other classes, a processor wrapping
                # this one that does not pass _on_ending on).
                if not restored and (span.dropped_attributes or (final and overwritten(span, found, final))):
                    span = restore(span, found, final)
        except Exception:
            report()
    if _langchain.loaded and (runs or _langchain.is_run_span(span)):
        try:
            span, added = repairs.with_run_ids(runs, span, final, keys, more)
            found = {**found, **added}
        except Exception:
            report()
    if _privacy.hash_user_ids:
        try:
            span = repairs.hide_late_users(span, found)
        except Exception:
            report()
    return span
