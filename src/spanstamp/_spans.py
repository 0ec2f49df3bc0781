"""Copies of ended spans with attributes added, as the exporter will see them.

An ended span is immutable, so a value can only reach the exporter on a copy. The
copy keeps the SDK's attribute limits and every dropped count::

    span = copy_with(span, {"session.id": "s-1"})
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.util.types import AttributeValue


def attributes_of(span: ReadableSpan) -> Mapping[str, AttributeValue]:
    """The span's attributes, read-only by convention, without a copy or a lock per key.

    if "session.id" in attributes_of(span): ...
    """
    # An ended span's BoundedAttributes is immutable and keeps its values in a plain dict;
    # reading that one directly is several times faster than through its locked methods.
    own = getattr(getattr(span, "_attributes", None), "_dict", None)
    if isinstance(own, dict):
        return own
    return span.attributes or {}


def copy_with(
    span: ReadableSpan, added: Mapping[str, AttributeValue], *, evicted: int = 0, removed: Collection[str] = ()
) -> ReadableSpan:
    """A copy of ``span`` carrying ``added`` first, then its own attributes.

    A key in ``added`` that the span has takes the value from ``added`` (a scope's id put
    back where something overwrote it). Within the span's attribute count limit the
    oldest of its own attributes make room, as the SDK would, and count as dropped.
    ``evicted`` says how many of ``added`` the limit had already dropped: they leave the
    dropped count again. ``removed`` keys are left out of the copy::

        restored = copy_with(span, {"session.id": "s-1"}, evicted=1)
    """
    # The public ``attributes`` is a read-only view without the limit and the dropped
    # count; the SDK keeps both on the private BoundedAttributes.
    current = getattr(span, "_attributes", None)
    if isinstance(current, BoundedAttributes):
        maxlen, max_value_len, dropped = current.maxlen, current.max_value_len, current.dropped
    else:
        maxlen, max_value_len, dropped = None, None, 0
    own = attributes_of(span)
    if removed or any(key in own for key in added):
        own = {key: value for key, value in own.items() if key not in added and key not in removed}
    overflow = 0 if maxlen is None else max(0, len(own) + len(added) - maxlen)
    merged = {**added, **(dict(list(own.items())[overflow:]) if overflow else own)}
    dropped += overflow - evicted
    attributes: Mapping[str, AttributeValue]
    if dropped:
        attributes = BoundedAttributes(maxlen, merged, immutable=True, max_value_len=max_value_len)
        attributes.dropped = dropped
    else:
        # The values are valid already (they were on spans); a plain dict spares checking
        # each again, and ReadableSpan shows it read-only, with no drops, as it would those.
        attributes = merged
    if type(span) is ReadableSpan:
        # What on_end gets from the SDK: every field as it is (the private event and link
        # lists keep their dropped counts, newer SDK fields come along), but the attributes.
        copied = object.__new__(ReadableSpan)
        copied.__dict__.update(span.__dict__)
        copied._attributes = attributes
        return copied
    return ReadableSpan(
        name=span.name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=attributes,
        events=getattr(span, "_events", span.events),
        links=getattr(span, "_links", span.links),
        kind=span.kind,
        status=span.status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


def overwritten(span: ReadableSpan, found: dict[str, AttributeValue], final: tuple[str, ...]) -> bool:
    """Whether a final id on ``span`` now holds another value than the one stamped."""
    attributes = span.attributes or {}
    return any(key in attributes and attributes[key] != found[key] for key in final)


def restore(
    span: ReadableSpan, found: dict[str, AttributeValue], final: tuple[str, ...] = (), *, evicted: bool = True
) -> ReadableSpan:
    """A copy of ``span`` with the stamped values that the count limit evicted put back.

    The ``final`` keys also get their stamped value back where it was overwritten.
    ``evicted=False``: the missing keys were never on the span, so the SDK did not count
    them as dropped. To stay within the limit, the oldest other attributes make room, as
    the SDK would.
    """
    current = getattr(span, "_attributes", None)
    if not isinstance(current, BoundedAttributes):
        return span
    missing = {
        key: value for key, value in found.items() if key not in current or (key in final and current[key] != value)
    }
    if not missing:
        return span
    # Only evicted keys came back; an overwritten or new one was never counted as dropped.
    back = sum(1 for key in missing if key not in current) if evicted else 0
    return copy_with(span, missing, evicted=back)
