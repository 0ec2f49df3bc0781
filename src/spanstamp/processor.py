"""The span processor that stamps the scopes' values on every span started inside them.

It works for spans of any tracer on the provider, whoever creates them (the app,
OpenInference, OpenTelemetry's own instrumentors)::

    provider.add_span_processor(SessionSpanProcessor())
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import Context, get_current
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.util.types import AttributeValue

from spanstamp import attributes as attr
from spanstamp import rules
from spanstamp.context import collect

# Guarding spans whose ids may be evicted keeps one small dict per stamped span
# until it ends; spans that never end must not grow it without bound.
_MAX_GUARDED_SPANS: Final = 65_536


class SessionSpanProcessor(SpanProcessor):
    """Stamps ``session.id``, ``user.id``, metadata, tags and prompt template on span start.

    Values come from the context the span was started with and, for keys it lacks,
    from the current context. Nothing raises into the code that starts the span::

        provider.add_span_processor(SessionSpanProcessor())

    ``attributes`` chooses which of :data:`~spanstamp.attributes.CONTEXT_ATTRIBUTES`
    to stamp (default: all). ``gen_ai_conversation_id=True`` also writes the session
    id as ``gen_ai.conversation.id``. ``downstream`` (optional) is the processor that
    exports: it is called after this one, and gets every ended span with the stamped
    values restored if the SDK's attribute count limit evicted them (LLM spans with
    long message lists pass the default limit of 128).
    """

    def __init__(
        self,
        *,
        attributes: Iterable[str] | None = None,
        gen_ai_conversation_id: bool = False,
        downstream: SpanProcessor | None = None,
    ) -> None:
        keys = attr.CONTEXT_ATTRIBUTES if attributes is None else self._known(attributes)
        self._keys: tuple[str, ...] = keys
        self._key_set = frozenset(keys)
        self._conversation = bool(gen_ai_conversation_id) and attr.SESSION_ID in self._key_set
        self._downstream = downstream
        self._guarded: dict[int, dict[str, AttributeValue]] | None = {} if downstream is not None else None
        self._failed = False

    @staticmethod
    def _known(names: Iterable[str]) -> tuple[str, ...]:
        if isinstance(names, str):
            rules.reject(
                "SessionSpanProcessor(attributes)", "expected a list of attribute names, got a single str", TypeError
            )
            return attr.CONTEXT_ATTRIBUTES
        chosen = set()
        for name in names:
            if name in attr.CONTEXT_ATTRIBUTES:
                chosen.add(name)
            else:
                rules.reject(
                    "SessionSpanProcessor(attributes)",
                    f"unknown attribute name ({rules.describe(name)}); known: {', '.join(attr.CONTEXT_ATTRIBUTES)}",
                )
        return tuple(key for key in attr.CONTEXT_ATTRIBUTES if key in chosen)

    @property
    def attributes(self) -> tuple[str, ...]:
        """The context keys this processor stamps, in stamping order.

        processor.attributes  # -> ("session.id", "user.id", ...)
        """
        return self._keys

    @property
    def gen_ai_conversation_id(self) -> bool:
        """Whether the session id is also written as ``gen_ai.conversation.id``.

        SessionSpanProcessor(gen_ai_conversation_id=True).gen_ai_conversation_id  # -> True
        """
        return self._conversation

    @property
    def downstream(self) -> SpanProcessor | None:
        """The processor this one hands spans to, if any.

        configure(...)  # builds SessionSpanProcessor(downstream=BatchSpanProcessor(exporter))
        """
        return self._downstream

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        try:
            current = get_current()
            keys = self._key_set
            # The common case, no scope anywhere, must cost next to nothing.
            if keys.isdisjoint(current) and (parent_context is None or keys.isdisjoint(parent_context)):
                found = None
            else:
                found = collect(keys, parent_context, current)
            if found:
                if self._conversation and attr.SESSION_ID in found:
                    found[attr.GEN_AI_CONVERSATION_ID] = found[attr.SESSION_ID]
                # One set_attribute per key: in the SDK this is cheaper than
                # set_attributes(mapping), which re-validates the mapping as a whole.
                for key, value in found.items():
                    span.set_attribute(key, value)
                if self._guarded is not None:
                    self._guard(span, found)
        except Exception:
            self._report_failure()
        if self._downstream is not None:
            self._downstream.on_start(span, parent_context=parent_context)

    def _guard(self, span: Span, found: dict[str, AttributeValue]) -> None:
        guarded = self._guarded
        assert guarded is not None
        if len(guarded) >= _MAX_GUARDED_SPANS:
            # Spans that never end leave entries behind; drop the oldest.
            del guarded[next(iter(guarded))]
        guarded[span.context.span_id] = found

    def _on_ending(self, span: Span) -> None:
        if self._downstream is not None:
            self._downstream._on_ending(span)

    def on_end(self, span: ReadableSpan) -> None:
        downstream = self._downstream
        if downstream is None:  # stamping alone has nothing to do at the end
            return
        if self._guarded:
            try:
                context = span.context
                found = self._guarded.pop(context.span_id, None) if context is not None else None
                if found and span.dropped_attributes:
                    span = _restore(span, found)
            except Exception:
                self._report_failure()
        downstream.on_end(span)

    def shutdown(self) -> None:
        if self._downstream is not None:
            self._downstream.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        if self._downstream is not None:
            return self._downstream.force_flush(timeout_millis)
        return True

    def _report_failure(self) -> None:
        # Once with the traceback, then quietly: telemetry must not flood the app.
        if not self._failed:
            self._failed = True
            rules.logger.exception("SessionSpanProcessor failed on a span; the span goes on without stamps")
        else:
            rules.logger.debug("SessionSpanProcessor failed again", exc_info=True)


def _restore(span: ReadableSpan, found: dict[str, AttributeValue]) -> ReadableSpan:
    """A copy of ``span`` with the stamped values that the count limit evicted put back.

    To stay within the limit, the oldest other attributes make room, as the SDK would.
    """
    # The public ``attributes`` is a read-only view without the limit and the dropped
    # count; the SDK keeps both on the private BoundedAttributes.
    current = getattr(span, "_attributes", None)
    if not isinstance(current, BoundedAttributes):
        return span
    missing = {key: value for key, value in found.items() if key not in current}
    if not missing:
        return span
    kept = list(current.items())
    overflow = 0
    if current.maxlen is not None:
        overflow = max(0, len(kept) + len(missing) - current.maxlen)
        kept = kept[overflow:]
    restored = BoundedAttributes(
        current.maxlen, {**missing, **dict(kept)}, immutable=True, max_value_len=current.max_value_len
    )
    restored.dropped = current.dropped - len(missing) + overflow
    return ReadableSpan(
        name=span.name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=restored,
        # The private lists keep the dropped counts that the public tuples lose.
        events=getattr(span, "_events", span.events),
        links=getattr(span, "_links", span.links),
        kind=span.kind,
        status=span.status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )
