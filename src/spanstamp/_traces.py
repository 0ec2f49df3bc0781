"""What one local trace carries, and its spans filled from that.

trace = LocalTrace(root_id, time.monotonic()); trace.note(span, ["session.id"])
fills, copied = trace.decision(); span = fill(span, fills, copied)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.util.types import AttributeValue

from spanstamp import attributes as attr
from spanstamp import rules
from spanstamp._spans import attributes_of, copy_with

# What a held span costs beyond its attribute values (objects, ids, times), estimated.
_SPAN_OVERHEAD: Final = 1024
_SEVERAL: Final = object()
_SESSION_ID: Final = attr.SESSION_ID
# A turn's input and output reach the local root as value and mime type together.
_INPUT: Final = (attr.INPUT_VALUE, attr.INPUT_MIME_TYPE)
_OUTPUT: Final = (attr.OUTPUT_VALUE, attr.OUTPUT_MIME_TYPE)


class LocalTrace:
    """What is known of one open local trace: its roots, held spans and the values seen."""

    __slots__ = (
        "bytes",
        "copy_bytes",
        "copy_off",
        "held",
        "input",
        "open_roots",
        "output",
        "roots",
        "started",
        "values",
    )

    def __init__(self, root_id: int, started: float) -> None:
        self.open_roots = {root_id}
        self.roots = {root_id}
        self.started = started
        self.held: list[ReadableSpan] = []
        self.bytes = 0
        self.values: dict[str, object] = {}  # key -> the one value seen, or _SEVERAL
        # (time, {value key: value, mime key: mime}) of the first task's input, last task's output.
        self.input: tuple[int, dict[str, AttributeValue]] | None = None
        self.output: tuple[int, dict[str, AttributeValue]] | None = None
        self.copy_bytes = 0  # what keeping that input and output costs, estimated
        self.copy_off = False

    def note(self, span: ReadableSpan, keys: Iterable[str]) -> tuple[bool, int]:
        """Record the ids ``span`` carries and, for a task's span, its input and output.

        Returns whether the span lacks one of ``keys``, and by how many bytes (estimated)
        what the trace keeps for the root copy grew.
        """
        attributes = attributes_of(span)
        values = self.values
        lacks = False
        for key in keys:
            value = attributes.get(key)
            if value is None:
                lacks = True
            elif type(value) is str and value:
                seen = values.setdefault(key, value)
                if seen is not value and seen != value:
                    values[key] = _SEVERAL
        if attr.TASK_ID not in attributes or self.copy_off:
            return lacks, 0
        start, end = span.start_time or 0, span.end_time or 0
        if attr.INPUT_VALUE in attributes and (self.input is None or start < self.input[0]):
            self.input = (start, _pair(attributes, _INPUT))
        if attr.OUTPUT_VALUE in attributes and (self.output is None or end >= self.output[0]):
            self.output = (end, _pair(attributes, _OUTPUT))
        before, self.copy_bytes = self.copy_bytes, sum(_size(kept[1]) for kept in (self.input, self.output) if kept)
        return lacks, self.copy_bytes - before

    def drop_copy(self) -> int:
        """Give up the root copy for this trace; returns the bytes that frees."""
        freed, self.copy_bytes = self.copy_bytes, 0
        self.input = self.output = None
        self.copy_off = True
        return freed

    def decision(self) -> tuple[dict[str, AttributeValue], dict[str, AttributeValue]]:
        """The values to fill on every span, and the input/output to copy onto the roots.

        Taken once, as the trace ends: nothing is noted after it, so the values noted may
        be what it returns (never modified; shared by the spans filled from it).
        """
        values = self.values
        if values.get(_SESSION_ID) is _SEVERAL:  # a batch job: never guess
            return {}, {}
        # Usually every key had one value: then they are the decision as they are.
        fills: dict[str, AttributeValue] = (
            values  # type: ignore[assignment]
            if _SEVERAL not in values.values()
            else {key: value for key, value in values.items() if isinstance(value, str)}
        )
        copied: dict[str, AttributeValue] = {}
        if self.input is not None or self.output is not None:  # a trace with a turn in it
            copied.update(self.input[1] if self.input else {})
            copied.update(self.output[1] if self.output else {})
        return fills, copied


def fill(
    span: ReadableSpan, fills: dict[str, AttributeValue], copied: dict[str, AttributeValue] | None
) -> ReadableSpan:
    """``span`` with the values it lacks (and, on a root, the turn's input/output)."""
    if not fills and not copied:  # a trace with no one session and no turn: nothing to look up
        return span
    try:
        present = attributes_of(span)
        missing = {key: value for key, value in fills.items() if key not in present}
        if copied:
            for value_key, mime_key in (_INPUT, _OUTPUT):
                if value_key not in present and value_key in copied:
                    missing[value_key] = copied[value_key]
                    if mime_key in copied and mime_key not in present:
                        missing[mime_key] = copied[mime_key]
        return copy_with(span, missing) if missing else span
    except Exception:  # a span the SDK did not build; it goes on as it is
        rules.logger.debug("trace filling could not copy a span", exc_info=True)
        return span


def _pair(attributes: Mapping[str, AttributeValue], keys: tuple[str, str]) -> dict[str, AttributeValue]:
    found: dict[str, AttributeValue] = {}
    for key in keys:
        value = attributes.get(key)
        if value is not None:
            found[key] = value
    return found


def weight(span: ReadableSpan) -> int:
    """An estimate of what holding ``span`` costs, in bytes: its values and a fixed overhead."""
    size = _SPAN_OVERHEAD + _size(attributes_of(span))
    for event in getattr(span, "_events", None) or ():
        size += 128 + _size(event.attributes)
    return size + 128 * len(getattr(span, "_links", None) or ())


def _size(attributes: Mapping[str, object] | None) -> int:
    if not attributes:
        return 0
    # Keys are short and shared; values are what grows (prompts, messages).
    size = 64 * len(attributes)
    for value in attributes.values():
        if type(value) is str or type(value) is bytes:
            size += len(value)
        elif isinstance(value, (tuple, list)):
            size += sum(len(item) + 16 if isinstance(item, (str, bytes)) else 16 for item in value)
    return size
