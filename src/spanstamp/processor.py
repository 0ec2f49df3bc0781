"""The span processor that stamps the scopes' values on every span started inside them.

It works for spans of any tracer on the provider, whoever creates them (the app,
OpenInference, OpenTelemetry's own instrumentors)::

    provider.add_span_processor(SessionSpanProcessor())
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import INVALID_SPAN, get_current_span, set_span_in_context
from opentelemetry.util.types import AttributeValue

from spanstamp import attributes as attr
from spanstamp import options, privacy, rules, tracefill
from spanstamp._attribute_writes import restore_ending, write, write_plain
from spanstamp._open_spans import OpenSpans, size_of
from spanstamp._runtime import get_current
from spanstamp._span_context import span_id_of
from spanstamp.context import collect
from spanstamp.context_read import named_ids, read_plain
from spanstamp.ending import Stamped, for_export
from spanstamp.hooks import add_entered_hook
from spanstamp.integrations import langchain as _langchain
from spanstamp.integrations import langchain_models as _langchain_models
from spanstamp.open_stamping import Roots, open_root, stamp_missing, track

# Read on every span: whether user ids are hashed as read, what the inlined value rule needs.
_privacy: Final = privacy._settings
_rules: Final = rules.settings

# What is kept per open span (its local root, the values to restore) is held only while
# the span lives, and within these budgets for spans the app keeps alive without ending
# them: the oldest entries are forgotten first (docs/limits-more.md).
_MAX_OPEN_BYTES: Final = 16 * 1024 * 1024
_MAX_GUARDED_BYTES: Final = 16 * 1024 * 1024
_EMPTY: Final = Context()
# The key a span is kept under in a Context: what the Context of a child span, the parent
# span alone, holds.
_SPAN_KEY: Final = next(iter(set_span_in_context(INVALID_SPAN, Context())))
# What on_start keeps of the last Context it stamped from: the Context (held strongly: a
# weak reference's call and its creation cost ~600 instructions a span, valgrind), the id
# length limit in force then, the values read from it (all plain str), the ids among them
# (final: a scope set them) and their size for the guarded table.
_Seen = tuple[Context | None, int, dict[str, AttributeValue], tuple[str, ...], int]
_NOTHING_SEEN: Final[_Seen] = (None, 0, {}, (), 0)


class SessionSpanProcessor(SpanProcessor):
    """Stamps ``session.id``, ``user.id``, metadata, tags and prompt template on span start.

    Values come from the context the span was started with and, for keys it lacks,
    from the current context. Nothing raises into the code that starts the span::

        provider.add_span_processor(SessionSpanProcessor())

    Options (each left as ``None`` is read from its ``SPANSTAMP_*`` variable):

    - ``attributes``: which of :data:`~spanstamp.attributes.CONTEXT_ATTRIBUTES` to
      stamp (default: all).
    - ``gen_ai_conversation_id=True`` also writes the session id as ``gen_ai.conversation.id``.
    - ``downstream``: the processor that exports. It is called after this one and gets
      every ended span with the stamped values restored if the SDK's attribute count
      limit evicted them (LLM spans with long message lists pass the default of 128).
    - ``stamp_local_root=True``: entering a scope inside a recording span also stamps
      that span and its local root span where they lack a value (off by default: a
      batch job whose one trace handles many sessions would get the first one).
    - ``openai_user_ids=True``: an OpenAI request's ``safety_identifier=`` / ``user=``
      becomes the user id of that call's spans when no user scope is active.
    - ``trust_baggage``: ``True`` (``session.id`` and ``user.id``) or the baggage keys to
      take from inbound W3C baggage where no local scope sets them; off by default,
      because any caller can send baggage. ``baggage_max_length`` caps those values.
    - ``hash_user_ids``: ``True`` (key from ``SPANSTAMP_USER_ID_KEY``) or the key itself:
      turns on :func:`~spanstamp.configure_privacy` hashing for the whole process, so user
      ids enter the Context, and reach every span, as their HMAC-SHA256 pseudonym.
    - ``fill_traces`` (on by default, ``SPANSTAMP_FILL_TRACES``; needs ``downstream``): every
      span of a local trace that carries one session gets it, and the user, before export
      (:class:`~spanstamp.tracefill.TraceFillProcessor`).
    """

    def __init__(
        self,
        *,
        attributes: Iterable[str] | None = None,
        gen_ai_conversation_id: bool | None = None,
        downstream: SpanProcessor | None = None,
        stamp_local_root: bool | None = None,
        openai_user_ids: bool | None = None,
        trust_baggage: bool | Iterable[str] | None = None,
        baggage_max_length: int | None = None,
        hash_user_ids: bool | str | bytes | None = None,
        fill_traces: bool | None = None,
    ) -> None:
        chosen = options.stamping(
            attributes, gen_ai_conversation_id, stamp_local_root, openai_user_ids, trust_baggage, baggage_max_length
        )
        self._keys: tuple[str, ...] = chosen.keys
        self._key_set = chosen.key_set
        self._watch = chosen.watch
        self._conversation = chosen.conversation
        self._trusted, self._baggage_cap = chosen.trusted, chosen.baggage_cap
        self._exporting = downstream
        filled: list[str] = [key for key in (attr.SESSION_ID, attr.USER_ID) if key in self._key_set]
        if self._conversation:
            filled.append(attr.GEN_AI_CONVERSATION_ID)
        self._downstream = tracefill.wrap(downstream, fill_traces, filled)
        # What was stamped per open span, to put back before export (ending.py).
        self._guarded: OpenSpans[Stamped] | None = OpenSpans(_MAX_GUARDED_BYTES) if downstream is not None else None
        # LangChain run spans, by span id, and the ids their body's spans got from the run.
        self._runs: dict[int, dict[str, AttributeValue]] = {}
        self._report_failure = rules.FailureLog(
            "SessionSpanProcessor failed on a span; the span goes on without stamps",
            "SessionSpanProcessor failed again",
        )
        self._seen: _Seen = _NOTHING_SEEN
        # The last Context found to hold nothing to stamp (only the parent span, or none of
        # the keys): nothing can be added to a Context, so the next span in it has none.
        self._nothing: Context | None = None
        self._hash_user_ids = options.apply_hashing(hash_user_ids)
        # Everything beyond plain stamping goes through one slower path, taken only
        # when one of these options is on.
        self._more = bool(self._conversation or self._trusted)
        # Open spans this processor started, by span id, with (a weak reference to) their
        # local root span: for stamping a span after it started (open_stamping.py).
        self._open: Roots | None = (
            OpenSpans(_MAX_OPEN_BYTES) if (chosen.stamp_local_root or chosen.openai_user_ids) else None
        )
        self._stamp_local_root = chosen.stamp_local_root
        if chosen.stamp_local_root:
            add_entered_hook(self._on_scope_entered)
        if chosen.openai_user_ids:
            from spanstamp.integrations.openai import take_user_ids

            take_user_ids(self)
        # LangChain models called on their own pass their run's ids too; wrapped when
        # (and only if) the application imports LangChain.
        _langchain_models.watch()
        _langchain.watch_import()
        self._direct = not self._more and self._guarded is None and self._open is None  # nothing kept per span

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
        return self._exporting

    @property
    def fill_traces(self) -> bool:
        """Whether spans are filled with their trace's session and user before export.

        SessionSpanProcessor(downstream=batch).fill_traces  # -> True
        """
        return isinstance(self._downstream, tracefill.TraceFillProcessor)

    def _options(
        self, found: dict[str, AttributeValue] | None, parent: Context | None, current: Context
    ) -> dict[str, AttributeValue]:
        return options.with_option_ids(found, parent, current, self._trusted, self._baggage_cap, self._conversation)

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        """Stamp the context's attributes on ``span`` (the SDK calls this; it never raises)."""
        try:
            current = get_current()
            run = None
            if _langchain.loaded:
                # Under a LangChain run, its ids join the Context as ids a scope's metadata
                # names, so the rules below rank them (integrations/langchain.py). Without
                # LangChain imported, this test is all a span pays.
                current, run = _langchain.with_run_ids(current)
            if parent_context is None and self._direct:
                # The usual case: stamp straight from the current Context. An empty one (a
                # root span's) and one with the parent span alone (most child spans') have
                # nothing to stamp, hashing on or off: len() and `in` cost half of what
                # isdisjoint() does (~700 instructions; it builds an iterator).
                if not current or current is self._nothing:
                    return
                seen, max_id_length, values, _, _ = self._seen
                if seen is current and max_id_length == _rules.max_id_length and not _privacy.hash_user_ids:
                    # The Context the span before was stamped from (siblings under one
                    # parent): its values were read and checked then, and a Context never
                    # changes. Reading and checking two ids cost ~5,500 instructions a
                    # span; this test ~250.
                    write_plain(span, values)
                    return
                if len(current) == 1 and _SPAN_KEY in current:
                    # The Context siblings under one parent start in: kept (one, held
                    # strongly like the stamped one) so that the next span started in it
                    # returns on the identity test above, which takes a third of the
                    # instructions and half the cache misses (valgrind).
                    if type(current) is Context:  # the SDK's own, immutable by contract
                        self._nothing = current
                    return
                if self._watch.isdisjoint(current):
                    if type(current) is Context:  # the SDK's own, immutable by contract
                        self._nothing = current
                    return
                if not _privacy.hash_user_ids:
                    self._stamp_from(span, current)
                    return  # this mode has no downstream to call
            watch = self._watch
            size = 0
            # What collect() reads depends on the Context alone only without a parent
            # context, a LangChain run, the options' ids and hashing: then it may be kept.
            reusable = run is None and parent_context is None and not self._more and not _privacy.hash_user_ids
            if reusable and self._seen[0] is current and self._seen[1] == _rules.max_id_length:
                # configure()'s pipeline, siblings under one parent: what collect() gave
                # for this Context, kept by the read below (~12,000 instructions a span).
                _, _, found, final, size = self._seen
            else:
                # The common case, no scope anywhere, must cost next to nothing.
                if watch.isdisjoint(current) and (parent_context is None or watch.isdisjoint(parent_context)):
                    found = None
                else:
                    found = collect(self._key_set, parent_context, current)
                # Taken before the options add baggage ids: only a scope's ids are final.
                final = _langchain.scoped_ids(found, run) if found and self._guarded is not None else ()
                if self._more:
                    found = self._options(found, parent_context, current)
                elif found and reusable:
                    self._keep_read(current, found, final)
            if found:
                # What one set_attribute per key would store, at a fraction of its cost;
                # a kept read (size set) holds plain str only.
                if size:
                    write_plain(span, found)
                else:
                    write(span, found.items())
                if self._guarded is not None:
                    self._guarded.add(span, [found, final, False], size or size_of(found))
                    if _langchain.loaded:
                        _langchain.note_run(self._runs, span, found)
            if self._open is not None:
                track(self._open, span)
        except Exception:
            self._report_failure()
        if self._downstream is not None:
            self._downstream.on_start(span, parent_context=parent_context)

    def _stamp_from(self, span: Span, current: Context) -> None:
        # What collect(keys, None, current) would take, read quickly (context_read.py).
        # When all were plain str, they are kept with the Context (held strongly, one at a time),
        # for the next span started in it.
        max_id_length = _rules.max_id_length
        found, plain, named = read_plain(current, self._watch, self._key_set, max_id_length)
        # All at once, as set_attribute would store them (_attribute_writes.py).
        if plain:
            if not named and type(current) is Context:
                self._seen = (current, max_id_length, found, (), 0)
            write_plain(span, found)
        else:
            write(span, found.items())
        if named:
            for key, value in named_ids(self._key_set, current).items():
                span.set_attribute(key, value)

    def _keep_read(self, current: Context, found: dict[str, AttributeValue], final: tuple[str, ...]) -> None:
        # What collect() read from a Context, for the next span started in it: sound while
        # every value is a plain str (nothing in them can change) and the Context is the
        # SDK's own (immutable by contract). Never modified: entries share it.
        if type(current) is Context and all(type(value) is str for value in found.values()):
            self._seen = (current, _rules.max_id_length, found, final, size_of(found))

    def _stamp_open(self, span: object, *, with_root: bool = False) -> bool:
        """Stamp an open span this processor started with the values in force now.

        Only keys the span lacks are written. ``with_root`` also stamps its local root.
        Returns whether the span was one of this processor's open spans::

            processor._stamp_open(trace.get_current_span())
        """
        spans = self._open
        if spans is None:
            return False
        try:
            pair = open_root(spans, span)
            if pair is None:
                return False
            current = get_current()
            found: dict[str, AttributeValue] | None = collect(self._key_set, None, current)
            if self._more:
                found = self._options(found, None, current)
            if found:
                opened, root = pair
                stamp_missing((opened, root) if with_root and root is not opened else (opened,), found)
        except Exception:
            self._report_failure()
        return True

    def _on_scope_entered(self) -> None:
        self._stamp_open(get_current_span(), with_root=True)

    def _on_ending(self, span: Span) -> None:
        # The SDK (1.40 and later) calls this as the span ends, before any on_end: the
        # stamped values the count limit evicted go back into the span itself, so no copy
        # is needed at on_end (ending.py).
        if self._guarded is not None:
            try:
                entry = self._guarded.get(span_id_of(span.context))
                if entry is not None:  # restore_ending() tests first what it need not do
                    entry[2] = restore_ending(span, entry[0], entry[1])
            except Exception:
                self._report_failure()
        if self._downstream is not None:
            self._downstream._on_ending(span)

    def on_end(self, span: ReadableSpan) -> None:
        """Put back evicted ids and hand ``span`` to the downstream processor, if there is one."""
        if self._direct:  # stamping alone keeps nothing to forget, has no one to hand to
            return
        if self._open is not None and (context := span.context) is not None:
            self._open.pop(span_id_of(context))
        downstream = self._downstream
        if downstream is None:
            return
        # What the span lost put back, a LangChain run's ids, late users hashed (ending.py).
        more = self._run_options if self._more else None
        downstream.on_end(for_export(span, self._guarded, self._runs, self._key_set, more, self._report_failure))

    def _run_options(self, added: dict[str, AttributeValue]) -> dict[str, AttributeValue]:
        return self._options(added, None, _EMPTY)

    def shutdown(self) -> None:
        """Release what this processor holds and shut its downstream processor down."""
        if self._open is not None:
            from spanstamp.integrations.openai import release_user_ids

            release_user_ids(self)
        if self._downstream is not None:
            self._downstream.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Flush the downstream processor; without one there is nothing to flush."""
        if self._downstream is not None:
            return self._downstream.force_flush(timeout_millis)
        return True
