"""Copies of ended spans with attributes added, as the exporter will see them.

An ended span is immutable, so a value can only reach the exporter on a copy. The
copy keeps the SDK's attribute limits and every dropped count::

    span = copy_with(span, {"session.id": "s-1"})
"""

from __future__ import annotations

from collections.abc import Mapping

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.util.types import AttributeValue


def copy_with(span: ReadableSpan, added: Mapping[str, AttributeValue], *, evicted: int = 0) -> ReadableSpan:
    """A copy of ``span`` carrying ``added`` (keys it lacks) first, then its own attributes.

    Within the span's attribute count limit the oldest of its own attributes make room,
    as the SDK would, and count as dropped. ``evicted`` says how many of ``added`` the
    limit had already dropped: they leave the dropped count again::

        restored = copy_with(span, {"session.id": "s-1"}, evicted=1)
    """
    # The public ``attributes`` is a read-only view without the limit and the dropped
    # count; the SDK keeps both on the private BoundedAttributes.
    current = getattr(span, "_attributes", None)
    if isinstance(current, BoundedAttributes):
        maxlen, max_value_len, dropped = current.maxlen, current.max_value_len, current.dropped
    else:
        maxlen, max_value_len, dropped = None, None, 0
    kept = list((span.attributes or {}).items())
    overflow = 0
    if maxlen is not None:
        overflow = max(0, len(kept) + len(added) - maxlen)
        kept = kept[overflow:]
    attributes = BoundedAttributes(maxlen, {**added, **dict(kept)}, immutable=True, max_value_len=max_value_len)
    attributes.dropped = dropped - evicted + overflow
    return ReadableSpan(
        name=span.name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=attributes,
        # The private lists keep the dropped counts that the public tuples lose.
        events=getattr(span, "_events", span.events),
        links=getattr(span, "_links", span.links),
        kind=span.kind,
        status=span.status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )
