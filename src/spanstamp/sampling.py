"""Sampling whole sessions: keep or drop every trace of a conversation together.

Ratio sampling by trace id keeps some turns of a conversation and drops the others.
These samplers decide by the session id in the Context instead, so a session is kept
or dropped as a whole, in every process, for a given ratio::

    provider = TracerProvider(sampler=ParentBasedSessionIdRatio(0.25))
    with using_session(conversation_id): ...   # all of this session's traces, or none

:class:`SessionIdRatioBased` is the root decision (like the SDK's ``TraceIdRatioBased``);
:class:`ParentBasedSessionIdRatio` wraps it in the SDK's ``ParentBased`` (like
``ParentBasedTraceIdRatio``), so a span follows its parent's decision and only the
root span of a trace is decided by session. Use the parent-based one unless you
compose ``ParentBased(root=SessionIdRatioBased(r), ...)`` yourself.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import Final

from opentelemetry.context import Context
from opentelemetry.sdk.trace.sampling import Decision, ParentBased, Sampler, SamplingResult, TraceIdRatioBased
from opentelemetry.trace import Link, SpanKind, get_current_span
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes

from spanstamp import rules
from spanstamp.context import current_session_id

#: The variable the SDK's configurator hands to a sampler named in ``OTEL_TRACES_SAMPLER``.
SAMPLER_ARG_ENV: Final = "OTEL_TRACES_SAMPLER_ARG"

# A ratio maps to a threshold on a 64-bit number, as the SDK's TraceIdRatioBased does
# with the low 64 bits of the trace id: ratio 0.25 keeps values below 2**62.
_SCALE: Final = 1 << 64
_FALLBACK_RATIO: Final = 1.0


class SessionIdRatioBased(Sampler):
    """Keep a trace when its session is kept: ``ratio`` of all sessions, the same ones everywhere.

    The session id is what :func:`~spanstamp.current_session_id` reads for the span's
    parent context (the current context filling in what it lacks), as the processor
    stamps it. A session is kept when the first 8 bytes of the SHA-256 of its UTF-8 id,
    read as a big-endian unsigned integer, are below ``ratio * 2**64``: stable across
    processes, machines and languages, and the sessions kept at a lower ratio are a
    subset of those kept at a higher one. Without a session, the trace id decides,
    exactly as ``TraceIdRatioBased(ratio)`` would. This sampler does not look at the
    parent span; wrap it in ``ParentBased`` or use :class:`ParentBasedSessionIdRatio`::

        sampler = ParentBased(root=SessionIdRatioBased(0.25))

    A ratio that is not a number from 0 to 1 gives a warning and ratio 1.0 (keep all),
    or raises in strict mode.
    """

    def __init__(self, ratio: float) -> None:
        self._ratio = _checked_ratio(ratio, "SessionIdRatioBased(ratio)")
        self._bound = round(self._ratio * _SCALE)
        self._by_trace_id = TraceIdRatioBased(self._ratio)
        self._report_failure = rules.FailureLog(
            "SessionIdRatioBased failed; this and later failures fall back to the trace id",
            "SessionIdRatioBased failed again",
        )

    @property
    def ratio(self) -> float:
        """The share of sessions kept, from 0.0 to 1.0.

        SessionIdRatioBased(0.25).ratio  # -> 0.25
        """
        return self._ratio

    def keeps_session(self, session_id: str) -> bool:
        """Whether traces of ``session_id`` are kept at this ratio (pure: no Context involved).

        SessionIdRatioBased(0.25).keeps_session("conv-7")  # the same answer in every process
        """
        digest = hashlib.sha256(session_id.encode("utf-8", "surrogatepass")).digest()
        return int.from_bytes(digest[:8], "big") < self._bound

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        """Keep or drop by the session id in force; without one, by the trace id (the SDK calls this)."""
        try:
            session_id = current_session_id(parent_context)
            if session_id is None:
                return self._by_trace_id.should_sample(parent_context, trace_id, name, kind, attributes, links)
            keep = self.keeps_session(session_id)
            return SamplingResult(
                Decision.RECORD_AND_SAMPLE if keep else Decision.DROP,
                attributes if keep else None,
                _parent_trace_state(parent_context),
            )
        except Exception:
            # A sampler that raises would fail the application's span creation.
            self._report_failure()
            return self._by_trace_id.should_sample(parent_context, trace_id, name, kind, attributes, links)

    def get_description(self) -> str:
        """The sampler's name and ratio, as the SDK's samplers describe themselves."""
        return f"SessionIdRatioBased{{{self._ratio}}}"


class ParentBasedSessionIdRatio(ParentBased):
    """Follow the parent span's decision; decide root spans by session (:class:`SessionIdRatioBased`).

    The SDK's ``ParentBased`` rules apply: a sampled parent, local or remote, keeps the
    span and an unsampled one drops it, whatever the session::

        provider = TracerProvider(sampler=ParentBasedSessionIdRatio(0.25))
    """

    def __init__(self, ratio: float) -> None:
        self._session_root = SessionIdRatioBased(ratio)
        super().__init__(root=self._session_root)

    @property
    def ratio(self) -> float:
        """The share of sessions kept at the root of a trace.

        ParentBasedSessionIdRatio(0.25).ratio  # -> 0.25
        """
        return self._session_root.ratio


def _checked_ratio(ratio: object, where: str) -> float:
    outcome = f"using ratio {_FALLBACK_RATIO} (every session is kept)"
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)):
        rules.reject(where, f"expected a number from 0.0 to 1.0, got {rules.describe(ratio)}", TypeError, outcome)
        return _FALLBACK_RATIO
    value = float(ratio)
    if not 0.0 <= value <= 1.0:  # NaN fails this too
        found = "NaN" if math.isnan(value) else ("one below 0" if value < 0 else "one above 1")
        rules.reject(where, f"expected a number from 0.0 to 1.0, got {found}", ValueError, outcome)
        return _FALLBACK_RATIO
    return value


def _ratio_from_argument(argument: object) -> float:
    # The SDK's configurator passes OTEL_TRACES_SAMPLER_ARG as a str, or None when unset;
    # unset means 1.0, as for the SDK's own ratio samplers.
    if argument is None or (isinstance(argument, str) and not argument.strip()):
        return _FALLBACK_RATIO
    if isinstance(argument, str):
        try:
            argument = float(argument)
        except ValueError:
            rules.reject(
                SAMPLER_ARG_ENV,
                f"expected a number from 0.0 to 1.0, got {rules.describe(argument)}",
                outcome=f"using ratio {_FALLBACK_RATIO} (every session is kept)",
            )
            return _FALLBACK_RATIO
    return _checked_ratio(argument, SAMPLER_ARG_ENV)


def _session_ratio_from_env(argument: object = None) -> SessionIdRatioBased:
    """Entry point for ``OTEL_TRACES_SAMPLER=spanstamp_sessionidratio``."""
    return SessionIdRatioBased(_ratio_from_argument(argument))


def _parent_based_session_ratio_from_env(argument: object = None) -> ParentBasedSessionIdRatio:
    """Entry point for ``OTEL_TRACES_SAMPLER=spanstamp_parentbased_sessionidratio``."""
    return ParentBasedSessionIdRatio(_ratio_from_argument(argument))


def _parent_trace_state(parent_context: Context | None) -> TraceState | None:
    parent = get_current_span(parent_context).get_span_context()
    return parent.trace_state if parent.is_valid else None
