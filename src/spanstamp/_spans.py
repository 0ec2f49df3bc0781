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
    """A copy of ``span`` carrying its own attributes, then ``added``, as if set last.

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
    added = clean(added, max_value_len)
    # The span's own values were cleaned when they were set: they are copied as they are.
    # Cleaning an evicting span's 128 again, one by one, was most of what a restore cost
    # (benchmarks/, the pipeline_200 case). dict.copy() clones the table at once even
    # where evictions left holes in it; dict(own) then inserts key by key (8x the work).
    own = attributes_of(span)
    merged = own.copy() if type(own) is dict else dict(own)
    for key in removed:
        merged.pop(key, None)
    dropped += add_last(merged, added, maxlen) - evicted
    # Without drops a plain dict will do: ReadableSpan shows it read-only, with no drops.
    attributes: Mapping[str, AttributeValue] = _bounded(maxlen, max_value_len, merged, dropped) if dropped else merged
    if type(span) is ReadableSpan:
        # What on_end gets from the SDK: every field as it is (the private event and link
        # lists keep their dropped counts, newer SDK fields come along), but the attributes.
        copied = object.__new__(ReadableSpan)
        copied.__dict__.update(span.__dict__)
        copied._attributes = attributes
        return copied
    # Another ReadableSpan (the SDK's own Span, at on_end): its private event and link
    # lists keep their dropped counts; the public tuples are built only if they are missing.
    events, links = getattr(span, "_events", None), getattr(span, "_links", None)
    return ReadableSpan(
        name=span.name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=attributes,
        events=span.events if events is None else events,
        links=span.links if links is None else links,
        kind=span.kind,
        status=span.status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


def add_last(store: dict[str, AttributeValue], added: Mapping[str, AttributeValue], maxlen: int | None) -> int:
    """Put ``added`` (clean values) into ``store`` as the newest attributes, within ``maxlen``.

    A key ``store`` has already moves to the end with the added value; the oldest others
    make room, as the SDK would evict them. Returns how many were evicted for that::

        add_last(store, {"session.id": "s-1"}, 128)  # -> 1 when store held 128 others
    """
    for key in added:
        store.pop(key, None)
    overflow = 0 if maxlen is None else len(store) + len(added) - maxlen
    if overflow <= 0:
        store.update(added)
        return 0
    # The added go last, the newest, so that a later copy (trace filling) evicts them last.
    # The oldest one at a time, as the SDK evicts: list(islice(store, overflow)) cost
    # ~2,800 instructions for the usual two (the added are a few, so the front of the
    # table is read a few times).
    for _ in range(min(overflow, len(store))):
        del store[next(iter(store))]
    store.update(added)
    return overflow


def clean(values: Mapping[str, AttributeValue], max_value_len: int | None) -> Mapping[str, AttributeValue]:
    """``values`` as ``set_attribute`` would store them (a list becomes a tuple, a long str is cut).

    Values already clean come back as they are, uncopied (callers only read them)::

        clean({"tags": ["a"]}, None)  # -> {"tags": ("a",)}
    """
    for value in values.values():
        kind = type(value)
        if kind is str:
            if max_value_len is not None and len(value) > max_value_len:  # type: ignore[arg-type]
                break
        elif kind is not bool and kind is not int and kind is not float:
            break
    else:  # the usual ids: short str, stored as they are
        return values
    # The SDK's own rules, through its public constructor (a few values: cheap).
    return dict(BoundedAttributes(None, values, immutable=True, max_value_len=max_value_len))


def _bounded(
    maxlen: int | None, max_value_len: int | None, clean: dict[str, AttributeValue], dropped: int
) -> BoundedAttributes:
    """An immutable BoundedAttributes holding ``clean`` (values already clean) as they are."""
    bounded = BoundedAttributes(maxlen, None, immutable=True, max_value_len=max_value_len)
    # Its store is a plain dict in every supported SDK (1.26 makes it an OrderedDict only
    # once full, and never reads it as one when immutable); the SDK's own __deepcopy__
    # assigns it this way to spare re-cleaning. Any other shape: let the constructor clean.
    if type(getattr(bounded, "_dict", None)) is dict:
        bounded._dict = clean
    else:
        bounded = BoundedAttributes(maxlen, clean, immutable=True, max_value_len=max_value_len)
    bounded.dropped = dropped
    return bounded


def overwritten(span: ReadableSpan, found: dict[str, AttributeValue], final: tuple[str, ...]) -> bool:
    """Whether a final id on ``span`` now holds another value than the one stamped."""
    attributes = attributes_of(span)
    return any(key in attributes and attributes[key] != found[key] for key in final)


def restore(
    span: ReadableSpan, found: dict[str, AttributeValue], final: tuple[str, ...] = (), *, evicted: bool = True
) -> ReadableSpan:
    """A copy of ``span`` with the stamped values that the count limit evicted put back.

    The ``final`` keys also get their stamped value back where it was overwritten.
    ``evicted=False``: the missing keys were never on the span, so the SDK did not count
    them as dropped. To stay within the limit, the oldest other attributes make room, as
    the SDK would. A span that lacks nothing comes back as it is, uncopied::

        span = restore(span, {"session.id": "s-1"})
    """
    if not isinstance(getattr(span, "_attributes", None), BoundedAttributes):
        return span
    missing, back = lacking(attributes_of(span), found, final)
    if not missing:
        return span
    return copy_with(span, missing, evicted=back if evicted else 0)


def lacking(
    current: Mapping[str, AttributeValue], found: dict[str, AttributeValue], final: tuple[str, ...]
) -> tuple[dict[str, AttributeValue], int]:
    """What of ``found`` a span with attributes ``current`` lacks, and how many of those it lacks entirely.

    A ``final`` key it holds with another value counts as lacking too (it was overwritten,
    so it was never counted as dropped). When it lacks them all, the mapping returned is
    ``found`` itself, to be read, not changed::

        lacking({"user.id": "u-1"}, {"session.id": "s-1", "user.id": "u-1"}, ())  # -> ({"session.id": "s-1"}, 1)
    """
    if current.keys().isdisjoint(found):
        # The usual long span: the count limit evicted every stamped value (they were set
        # first), so none can have been written over; one test where the loop below cost
        # ~3,000 instructions more. ``found`` itself: the callers only read what is missing.
        return found, len(found)
    # A loop, not comprehensions: each is a call of its own, and this runs as spans end.
    missing: dict[str, AttributeValue] = {}
    absent = 0
    for key, value in found.items():
        if key not in current:
            missing[key] = value
            absent += 1
        elif key in final and current[key] != value:
            missing[key] = value
    return missing, absent
