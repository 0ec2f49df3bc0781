"""A span context's ids, read on the hot paths without its properties.

``SpanContext`` is a tuple, ``(trace_id, span_id, is_remote, trace_flags, trace_state,
is_valid)`` as its class declares, and each of its properties is a Python call that
returns one item: ~400 instructions, and configure()'s pipeline read seven of them a span
(valgrind). Where a probe at import finds that layout, these getters are C
``operator.itemgetter``\\ s (~100 instructions); anywhere else they read the properties::

    trace_id, span_id = ids_of(span.context)
    trace_id, span_id, flags = ids_and_flags_of(span.context)
"""

from __future__ import annotations

from collections.abc import Callable
from operator import attrgetter, itemgetter
from typing import Any

from opentelemetry.trace import SpanContext, TraceFlags, TraceState

__all__ = ["ids_and_flags_of", "ids_of", "is_remote_of", "span_id_of"]


def _layout_as_expected() -> bool:
    # Distinct values in every field, compared with what each property returns.
    try:
        probe = SpanContext(
            trace_id=0x1F, span_id=0x2F, is_remote=True, trace_flags=TraceFlags(1), trace_state=TraceState()
        )
        return isinstance(probe, tuple) and tuple.__getitem__(probe, slice(0, 4)) == (
            probe.trace_id,
            probe.span_id,
            probe.is_remote,
            probe.trace_flags,
        ) == (0x1F, 0x2F, True, TraceFlags(1))
    except Exception:
        return False


def _getters(tuple_layout: bool) -> tuple[Any, ...]:
    # The four getters below: C item reads where the layout holds, the properties else.
    if tuple_layout:
        return itemgetter(1), itemgetter(0, 1), itemgetter(0, 1, 3), itemgetter(2)
    return (
        attrgetter("span_id"),
        attrgetter("trace_id", "span_id"),
        attrgetter("trace_id", "span_id", "trace_flags"),
        attrgetter("is_remote"),
    )


#: ``context.span_id``.
span_id_of: Callable[[SpanContext], int]
#: ``(context.trace_id, context.span_id)``.
ids_of: Callable[[SpanContext], tuple[int, int]]
#: ``(context.trace_id, context.span_id, context.trace_flags)``.
ids_and_flags_of: Callable[[SpanContext], tuple[int, int, TraceFlags]]
#: ``context.is_remote``.
is_remote_of: Callable[[SpanContext], bool]

span_id_of, ids_of, ids_and_flags_of, is_remote_of = _getters(_layout_as_expected())
