"""Stamping values on an SDK span: what ``span.set_attribute`` would store, at a fraction of its cost.

Of what stamping two ids added to a span (CPython 3.11, SDK 1.45), two thirds were the SDK's
two ``set_attribute`` calls (~20,700 instructions under callgrind, ~2.1 µs): per call the
span's lock, the ended-span test, the validation of the value and
``BoundedAttributes.__setitem__`` with a lock of its own. The values stamped are plain
``str`` the input rules checked already, so all that work finds nothing to do but store
them. :func:`write` stores them itself (~6,000 instructions for two), under the span's lock
taken once for all, wherever that provably stores exactly what ``set_attribute`` would, and
hands every other value to ``set_attribute``; :func:`write_plain`, for values known to be
plain ``str``, adds them in one ``dict.update()`` (~4,800)::

    write(span, [("session.id", "s-1"), ("user.id", "u-1")])
    write_plain(span, {"session.id": "s-1", "user.id": "u-1"})

What the SDK does for a plain ``str`` (1.26 to 1.45 alike, read in their source): nothing on
an ended span but log ``"Setting attribute on ended span."``; a key the span has already
moves to the end with the new value; a new key beyond the count limit evicts the oldest one
(and counts it as dropped; 1.45 also logs a warning); a value longer than the length limit
is cut (1.45 logs that too). The fast path stores a value itself only when none of this but
the move applies: the span is live, and the value fits both limits. Everything else, a value
of another type, a span of another class or a patched ``set_attribute`` included, goes
through ``set_attribute``, so the SDK's own logging and counting stay the SDK's.
tests/test_attribute_writes.py pins both ways to the same spans, on SDK 1.26 and the newest.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Span, _Span
from opentelemetry.trace import INVALID_SPAN_CONTEXT
from opentelemetry.util.types import AttributeValue

from spanstamp._spans import add_last, clean, lacking

__all__ = ["restore_ending", "write", "write_plain"]

# The one method whose effect write() reproduces: a subclass's or a patched one is called.
_SET_ATTRIBUTE: Final = Span.set_attribute


def _internals_as_expected() -> bool:
    # The SDK's span and its attribute mapping keep these names private; SDK 1.26 to 1.45
    # have them all, with these types. A version without them is written through
    # set_attribute only. Checked once, on a span that is never started.
    try:
        probe = _Span("spanstamp-probe", INVALID_SPAN_CONTEXT, resource=Resource({}))
        attributes = probe._attributes
        return (
            probe._end_time is None
            and hasattr(probe._lock, "acquire")
            and hasattr(probe._lock, "release")
            and type(attributes) is BoundedAttributes
            and type(attributes._dict) is dict
            and attributes._immutable is False
            and all(hasattr(attributes, name) for name in ("maxlen", "max_value_len", "dropped"))
            and hasattr(attributes._lock, "acquire")
            and hasattr(attributes._lock, "release")
        )
    except Exception:
        return False


_KNOWN_INTERNALS: Final = _internals_as_expected()


def write(span: Span, pairs: Iterable[tuple[str, AttributeValue]]) -> None:
    """Set each ``(key, value)`` on ``span`` as ``span.set_attribute(key, value)`` would, in order.

    Keys are attribute names (non-empty ``str``). May raise what ``set_attribute`` raises::

        write(span, {"session.id": "s-1"}.items())
    """
    pending = iter(pairs)
    left: tuple[str, AttributeValue] | None = None
    # Only the SDK's own span class, whose set_attribute is the SDK's: type() and `is`
    # tests, where isinstance() would admit a subclass that overrides it.
    if _KNOWN_INTERNALS and type(span) is _Span and _Span.set_attribute is _SET_ATTRIBUTE:
        attributes = span._attributes
        # A plain dict inside: SDK 1.26 turns it into an OrderedDict once it evicted.
        if type(attributes) is BoundedAttributes and type(attributes._dict) is dict:
            store = attributes._dict
            # The span's lock, which set_attribute holds too (as does every other writer
            # through the span's API), taken once for all values. set_attribute's second
            # lock, the mapping's own, only guards against code that writes into the
            # mapping itself, past the span (and past its ended-span test); the SDK does
            # not. acquire()/release(): `with` cost twice as much (~2,000 instructions a
            # span) for the same lock.
            lock = span._lock
            lock.acquire()
            try:
                if span._end_time is None and attributes._immutable is False:
                    limit = attributes.maxlen
                    cap = attributes.max_value_len
                    for left in pending:
                        key, value = left
                        if type(value) is not str or (cap is not None and len(value) > cap):
                            break  # to be cleaned or cut, with the SDK's warning
                        if key in store:
                            del store[key]  # an existing key moves to the end, as in the SDK
                        elif limit is not None and len(store) >= limit:
                            break  # the oldest would be evicted: the SDK's to do and count
                        store[key] = value
                    else:
                        return
            finally:
                lock.release()
    # The rest in order, outside the lock (set_attribute takes it itself).
    if left is not None:
        span.set_attribute(*left)
    for key, value in pending:
        span.set_attribute(key, value)


def write_plain(span: Span, values: dict[str, AttributeValue]) -> None:
    """:func:`write` for values the caller knows are all plain ``str``.

    The usual span, live, below both limits and without these keys yet, gets them in one
    ``dict.update()``; any other goes through :func:`write`::

        write_plain(span, {"session.id": "s-1", "user.id": "u-1"})
    """
    if _KNOWN_INTERNALS and type(span) is _Span and _Span.set_attribute is _SET_ATTRIBUTE:
        attributes = span._attributes
        if type(attributes) is BoundedAttributes and type(store := attributes._dict) is dict:
            limit = attributes.maxlen
            cap = attributes.max_value_len
            lock = span._lock
            lock.acquire()
            try:
                # Nothing to cut, nothing to evict, no key to move: what the values'
                # set_attribute calls would do, one by one, is to add them in order.
                # One update() cost ~1,200 instructions less than write()'s loop.
                if (
                    span._end_time is None
                    and attributes._immutable is False
                    and (limit is None or len(store) + len(values) <= limit)
                    and (not store or store.keys().isdisjoint(values))
                    and (cap is None or max(map(len, values.values()), default=0) <= cap)  # type: ignore[arg-type]
                ):
                    store.update(values)
                    return
            finally:
                lock.release()
    write(span, values.items())


def restore_ending(span: Span, found: dict[str, AttributeValue], final: tuple[str, ...]) -> bool:
    """Put the stamped values the count limit evicted back on an ending SDK span, in place.

    The SDK calls a processor's ``_on_ending`` after ``end()`` (1.40 and later) and before
    any processor's ``on_end``: the span's attributes then hold their final values, no
    :class:`ReadableSpan` of them exists yet, and every ``on_end`` (every exporter) will see
    what this writes. That spares :func:`spanstamp._spans.restore` its copy of the span and
    its attributes at ``on_end`` (~5 % of a 200-attribute span in configure()'s pipeline,
    benchmarks/). The result is the copy's: the same rule, :func:`~spanstamp._spans.add_last`,
    and tests/test_attribute_writes.py compares both. Returns whether the span now holds
    every value of ``found`` (``final`` ones with their stamped value); ``False`` for a span
    it cannot write (another class, another mapping), which ``on_end`` then restores on a copy::

        restore_ending(span, {"session.id": "s-1"}, ("session.id",))  # -> True
    """
    if not (_KNOWN_INTERNALS and type(span) is _Span):
        return False
    attributes = span._attributes
    if type(attributes) is not BoundedAttributes or type(store := attributes._dict) is not dict:
        return False
    # The mapping's own lock, which guards its store and dropped count; the span's
    # set_attribute refuses to write once ended, so nothing else writes here now.
    # acquire()/release(): `with` cost twice as much for the same lock.
    lock = attributes._lock
    lock.acquire()
    try:
        if not attributes.dropped:
            # Nothing was evicted, so only a final id written over needs putting back. The
            # values stored are the very objects stamped (plain str are stored as they
            # are): an identity test per id, where lacking() cost ~10,000 instructions.
            for key in final:
                if store.get(key) is not found.get(key):
                    break
            else:
                return True
        missing, evicted = lacking(store, found, final)
        if missing:
            attributes.dropped += add_last(store, clean(missing, attributes.max_value_len), attributes.maxlen) - evicted
    finally:
        lock.release()
    return True
