"""What the processor keeps per open span: held only while the span lives, bounded in bytes.

Some options make :class:`~spanstamp.SessionSpanProcessor` remember a span until it
ends: its local root (to stamp both when a scope is entered later), or the values it
stamped (to restore them if the attribute count limit evicted them). A span that is
never ended (a generator never closed, an instrumentor that forgets ``end()``) must not
be kept alive by that, nor grow the table without bound:

- an entry holds its span weakly, and goes when the span ends or when nothing else
  references it any more: the application's own references decide a span's lifetime;
- the entries of spans the application keeps alive without ending them are bounded in
  bytes: past the budget, the oldest entries are forgotten (their span is simply not
  stamped later, or not restored)::

    table = OpenSpans(max_bytes=16 << 20)
    table.add(span, value, size=0)
    table.get(span.context.span_id)   # -> value, until the span ends or is collected
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Mapping
from typing import Final, Generic, TypeVar

from opentelemetry.sdk.trace import Span

from spanstamp._span_context import span_id_of

V = TypeVar("V")

#: What one entry costs beyond its value, in bytes, as tracemalloc measures it on
#: CPython 3.11 (the entry, a weak reference with three slots, its dict slot and key: about
#: 170), rounded up.
ENTRY_BYTES: Final = 256


def size_of(values: Mapping[str, object]) -> int:
    """About how many bytes a mapping of attribute values holds, rounded up, for the budget.

    CPython's sizes from lengths (``sys.getsizeof`` costs several times as much, and
    this runs on span start): a small dict, each str (1 byte a character if ASCII, else
    at most 4), a list or tuple of str (tags)::

        size_of({"session.id": "s-1"})  # -> 299
    """
    size = 240
    for value in values.values():
        if type(value) is str:
            size += 56 + len(value) if value.isascii() else 80 + 4 * len(value)
        elif type(value) is list or type(value) is tuple:
            size += 64 + 64 * len(value) + 4 * sum(map(len, value))
        else:
            size += 32
    return size


class _Entry(weakref.ref[Span], Generic[V]):
    """One open span's entry: a weak reference to it that also holds its id, value and size.

    One object per span, created by weakref's own C constructor (no Python ``__new__``
    or ``__init__``, which made weakref.KeyedRef three times as costly); the one callback
    of the table reads the id from it::

        entry = _Entry(span, callback); entry.span_id, entry.value, entry.size = 1, v, 512
    """

    __slots__ = ("size", "span_id", "value")
    span_id: int
    value: V
    size: int


class OpenSpans(Generic[V]):
    """Values kept per open span, by span id, held weakly to the span and bounded in bytes.

    Safe from any thread without a lock on the way (each step is one dict operation);
    the byte count is exact again whenever the budget is checked::

        table.add(span, root_ref, 0); table.pop(span.context.span_id)
    """

    __slots__ = ("__weakref__", "_bytes", "_entries", "_forget", "_lock", "_max_bytes")

    def __init__(self, max_bytes: int) -> None:
        self._max_bytes = max_bytes
        self._entries: dict[int, _Entry[V]] = {}
        # Counted without a lock: concurrent updates may be lost, so it is recounted
        # (under the lock) before anything is evicted for it.
        self._bytes = 0
        self._lock = threading.Lock()
        # The callback holds the table weakly: a processor dropped with open spans goes.
        table = weakref.ref(self)

        def forget(entry: _Entry[V]) -> None:
            # The span was collected without ending. This may run in any thread, inside
            # the garbage collector: one dict step, no lock.
            found = table()
            if found is not None:
                span_id = entry.span_id
                if found._entries.get(span_id) is entry and found._entries.pop(span_id, None) is not None:
                    found._bytes -= entry.size

        self._forget = forget

    def add(self, span: Span, value: V, size: int) -> None:
        """Keep ``value`` for ``span`` (``size``: its bytes beyond the entry's own cost)."""
        # One object per span (a closure and a tuple beside the reference cost ~1,400
        # instructions more, valgrind).
        entry: _Entry[V] = _Entry(span, self._forget)
        entry.span_id = span_id = span_id_of(span.context)
        entry.value = value
        entry.size = size = size + ENTRY_BYTES
        self._entries[span_id] = entry
        self._bytes += size
        if self._bytes > self._max_bytes:
            self._shrink()

    def _shrink(self) -> None:
        with self._lock:
            entries = self._entries
            # Recounted exactly; then the oldest go, down to nine tenths of the budget,
            # so that a table kept full recounts once per tenth of it, not on every add.
            total = sum(entry.size for entry in list(entries.values()))
            if total > self._max_bytes:
                target = self._max_bytes - self._max_bytes // 10
                while total > target and entries:
                    entry = entries.pop(next(iter(entries)), None)
                    if entry is not None:
                        total -= entry.size
            self._bytes = total

    def get(self, span_id: int) -> V | None:
        """The value kept for the open span with this id, or ``None``."""
        entry = self._entries.get(span_id)
        if entry is None or entry() is None:
            return None
        return entry.value

    def pop(self, span_id: int) -> V | None:
        """Forget the span with this id (it ended); its value, or ``None``."""
        entry = self._entries.pop(span_id, None)
        if entry is None:
            return None
        self._bytes -= entry.size
        return entry.value

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def nbytes(self) -> int:
        """The bytes the entries are counted as: at most the budget, give or take a race."""
        return self._bytes
