"""Session-aware sampling through a real SDK TracerProvider: whole sessions, parent rules, fallback.

Decisions are read from the spans the SDK creates (``trace_flags.sampled``) or from what
a real in-memory exporter receives; other processes run tests/apps/sampling_decisions.py.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.context import Context, get_current
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, ParentBasedTraceIdRatio, Sampler, TraceIdRatioBased
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

import spanstamp
from spanstamp.sampling import ParentBasedSessionIdRatio, SessionIdRatioBased

APPS = Path(__file__).parent / "apps"
BIN = Path(sys.executable).parent
RATIO = 0.25


def _documented_keep(session_id: str, ratio: float) -> bool:
    """The rule the docs give, computed here independently of spanstamp."""
    digest = hashlib.sha256(session_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") < round(ratio * 2**64)


def _pick(keep: bool, ratio: float = RATIO) -> str:
    """A session id the documented rule keeps (or drops) at ``ratio``."""
    return next(s for s in (f"probe-{i}" for i in range(10_000)) if _documented_keep(s, ratio) is keep)


def _pipeline(sampler: Sampler) -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=sampler)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    spanstamp.install(provider)
    return provider, exporter


def _sampled(tracer: trace.Tracer, context: Context | None = None) -> bool:
    span = tracer.start_span("probe", context=context)
    span.end()
    return span.get_span_context().trace_flags.sampled


def _remote_parent(sampled: bool) -> Context:
    flags = TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)
    parent = SpanContext(random.getrandbits(128) or 1, random.getrandbits(64) or 1, is_remote=True, trace_flags=flags)
    return trace.set_span_in_context(NonRecordingSpan(parent))


def _turns(provider: TracerProvider, sessions: list[str], turns: int) -> None:
    """``turns`` traces per session, interleaved as live traffic is: a root span and an LLM child each."""
    tracer = provider.get_tracer("chat")
    for _ in range(turns):
        for session_id in sessions:
            with spanstamp.using_session(session_id), tracer.start_as_current_span("turn"):
                with tracer.start_as_current_span("llm"):
                    pass


# --- whole sessions at volume ---------------------------------------------------------------


def test_10000_traces_over_1000_sessions_keep_or_drop_each_session_whole() -> None:
    sessions = [spanstamp.new_session_id() for _ in range(1_000)]  # fresh random ids every run
    provider, exporter = _pipeline(ParentBasedSessionIdRatio(RATIO))
    try:
        _turns(provider, sessions, turns=10)
        spans_per_session = Counter(span.attributes["session.id"] for span in exporter.get_finished_spans())
    finally:
        provider.shutdown()

    # No session is split: each has all 10 traces (20 spans) exported, or none.
    assert set(spans_per_session) <= set(sessions)
    assert set(spans_per_session.values()) <= {20}
    kept = set(spans_per_session)
    assert kept == {s for s in sessions if _documented_keep(s, RATIO)}

    # Whole sessions are the unit, so the kept share varies as a binomial over 1,000
    # sessions, not over 10,000 traces: sd = sqrt(1000 * 0.25 * 0.75) = 13.7 sessions.
    # Five sd (68.5 sessions, a share of +-0.0685) is exceeded with probability ~6e-7
    # by a uniform hash of random ids; a biased or broken hash leaves it.
    bound = 5 * math.sqrt(1_000 * RATIO * (1 - RATIO))
    assert abs(len(kept) - 1_000 * RATIO) <= bound
    kept_trace_share = sum(spans_per_session.values()) / 2 / 10_000
    assert abs(kept_trace_share - RATIO) <= bound / 1_000


def test_trace_id_ratio_sampling_splits_almost_every_session() -> None:
    # The problem this sampler solves, and proof that the split check above can fail: a
    # session survives trace-id sampling whole with probability 0.25**10 + 0.75**10 = 0.056.
    sessions = [spanstamp.new_session_id() for _ in range(1_000)]
    provider, exporter = _pipeline(ParentBasedTraceIdRatio(RATIO))
    try:
        _turns(provider, sessions, turns=10)
        spans_per_session = Counter(span.attributes["session.id"] for span in exporter.get_finished_spans())
    finally:
        provider.shutdown()
    whole = sum(1 for s in sessions if spans_per_session[s] in (0, 20))
    assert whole < 200  # expected 56, sd 7.3


def test_a_lower_ratio_keeps_a_subset_of_the_sessions_a_higher_one_keeps() -> None:
    sessions = [spanstamp.new_session_id() for _ in range(2_000)]
    kept = {ratio: {s for s in sessions if SessionIdRatioBased(ratio).keeps_session(s)} for ratio in (0.1, 0.25, 0.5)}
    assert kept[0.1] <= kept[0.25] <= kept[0.5]
    assert kept[0.1] != kept[0.25] != kept[0.5]
    assert not any(SessionIdRatioBased(0.0).keeps_session(s) for s in sessions)
    assert all(SessionIdRatioBased(1.0).keeps_session(s) for s in sessions)


# --- where the session comes from; no session --------------------------------------------------


def test_the_session_comes_from_the_parent_context_and_else_the_current_one() -> None:
    kept, dropped = _pick(True), _pick(False)
    provider = TracerProvider(sampler=SessionIdRatioBased(RATIO))
    tracer = provider.get_tracer("t")
    with spanstamp.using_session(kept):
        kept_context = get_current()
    with spanstamp.using_session(dropped):
        dropped_context = get_current()
    # 40 random trace ids each: by trace id about 10 of 40 would be kept, never all or none.
    # An explicit context wins over the current one.
    with spanstamp.using_session(dropped):
        assert all(_sampled(tracer, kept_context) for _ in range(40))
    with spanstamp.using_session(kept):
        assert not any(_sampled(tracer, dropped_context) for _ in range(40))
        # An explicit empty Context (as some instrumentors build) lacks the session: the
        # current context fills it in, as for the processor.
        assert all(_sampled(tracer, Context()) for _ in range(40))


def test_without_a_session_the_trace_id_decides_as_trace_id_ratio_sampling_does() -> None:
    provider = TracerProvider(sampler=SessionIdRatioBased(RATIO))
    tracer = provider.get_tracer("t")
    reference = TraceIdRatioBased(RATIO)
    decisions = []
    with spanstamp.using_user("u-1"):  # a user alone is no session
        for _ in range(2_000):
            span = tracer.start_span("no-session")
            span.end()
            context = span.get_span_context()
            expected = reference.should_sample(None, context.trace_id, "no-session").decision.is_sampled()
            assert context.trace_flags.sampled is expected
            decisions.append(expected)
    # Trace ids are random: the share is a binomial over 2,000 traces, sd 0.0097; 5 sd.
    assert abs(sum(decisions) / 2_000 - RATIO) <= 5 * math.sqrt(RATIO * (1 - RATIO) / 2_000)


# --- the parent's decision --------------------------------------------------------------------


def test_parent_based_follows_a_remote_parent_whatever_the_session() -> None:
    provider = TracerProvider(sampler=ParentBasedSessionIdRatio(RATIO))
    tracer = provider.get_tracer("t")
    with spanstamp.using_session(_pick(False)):
        assert all(_sampled(tracer, _remote_parent(sampled=True)) for _ in range(20))
    with spanstamp.using_session(_pick(True)):
        assert not any(_sampled(tracer, _remote_parent(sampled=False)) for _ in range(20))
        assert all(_sampled(tracer) for _ in range(20))  # a root span: the session decides


def test_parent_based_follows_a_local_parent_whatever_the_session() -> None:
    provider, exporter = _pipeline(ParentBasedSessionIdRatio(RATIO))
    tracer = provider.get_tracer("t")
    try:
        with spanstamp.using_session(_pick(True)), tracer.start_as_current_span("kept-root"):
            with spanstamp.using_session(_pick(False)), tracer.start_as_current_span("child-in-dropped-session"):
                pass
        with spanstamp.using_session(_pick(False)), tracer.start_as_current_span("dropped-root"):
            with spanstamp.using_session(_pick(True)), tracer.start_as_current_span("child-in-kept-session"):
                pass
        names = {span.name for span in exporter.get_finished_spans()}
    finally:
        provider.shutdown()
    assert names == {"kept-root", "child-in-dropped-session"}  # traces stay whole


def test_the_root_sampler_composes_inside_the_sdks_parent_based() -> None:
    # SessionIdRatioBased alone ignores the parent (it is a root decision, like
    # TraceIdRatioBased); ParentBased(root=...) adds the parent rules, as the shortcut does.
    dropped = _pick(False)
    alone = TracerProvider(sampler=SessionIdRatioBased(RATIO)).get_tracer("t")
    composed = TracerProvider(
        sampler=ParentBased(root=SessionIdRatioBased(RATIO), remote_parent_not_sampled=SessionIdRatioBased(RATIO))
    ).get_tracer("t")
    with spanstamp.using_session(dropped):
        assert not any(_sampled(alone, _remote_parent(sampled=True)) for _ in range(20))
        assert all(_sampled(composed, _remote_parent(sampled=True)) for _ in range(20))
    with spanstamp.using_session(_pick(True)):
        # Here an unsampled remote parent is overruled by the session, as configured.
        assert all(_sampled(composed, _remote_parent(sampled=False)) for _ in range(20))


def test_a_sampled_span_keeps_the_attributes_it_was_started_with() -> None:
    # The SDK builds the span's attributes from the sampler's result.
    provider = TracerProvider(sampler=ParentBasedSessionIdRatio(RATIO))
    with spanstamp.using_session(_pick(True)):
        span = provider.get_tracer("t").start_span("with-attributes", attributes={"k": "v", "n": 3})
    span.end()
    assert dict(span.attributes or {}) == {"k": "v", "n": 3}


def test_odd_session_ids_never_break_span_creation() -> None:
    provider = TracerProvider(sampler=ParentBasedSessionIdRatio(0.5))
    tracer = provider.get_tracer("t")
    for session_id in ("é" * 200, "12345"):
        with spanstamp.using_session(session_id):
            first = _sampled(tracer)
            assert all(_sampled(tracer) is first for _ in range(10))
    # A lone surrogate is no id (UTF-8 cannot carry it): left out, so spans are decided
    # by trace id, and still start.
    with spanstamp.using_session("\ud800 lone surrogate"):
        assert spanstamp.current_session_id() is None
        decisions = {_sampled(tracer) for _ in range(64)}
    assert decisions == {True, False}


# --- the ratio ------------------------------------------------------------------------------------


def test_description_and_ratio() -> None:
    assert SessionIdRatioBased(0.25).get_description() == "SessionIdRatioBased{0.25}"
    assert SessionIdRatioBased(1).ratio == 1.0
    assert ParentBasedSessionIdRatio(0.1).ratio == 0.1
    assert "root:SessionIdRatioBased{0.1}" in ParentBasedSessionIdRatio(0.1).get_description()


@pytest.mark.parametrize(
    ("ratio", "error", "problem"),
    [
        (1.5, ValueError, "got one above 1"),
        (-0.1, ValueError, "got one below 0"),
        (float("nan"), ValueError, "got NaN"),
        ("0.5", TypeError, "got a str of 3 characters"),
        (True, TypeError, "got a value of type bool"),
        (None, TypeError, "got a value of type NoneType"),
    ],
)
def test_a_bad_ratio_warns_and_keeps_everything_or_raises_in_strict_mode(
    ratio: object, error: type[Exception], problem: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="spanstamp"):
        sampler = SessionIdRatioBased(ratio)  # type: ignore[arg-type]
    assert sampler.ratio == 1.0
    (message,) = [r.getMessage() for r in caplog.records if r.name == "spanstamp"]
    assert message == (
        f"SessionIdRatioBased(ratio): expected a number from 0.0 to 1.0, {problem}; "
        "using ratio 1.0 (every session is kept)"
    )
    spanstamp.configure_rules(strict=True)
    with pytest.raises(error, match=r"^SessionIdRatioBased\(ratio\): expected a number from 0.0 to 1.0"):
        ParentBasedSessionIdRatio(ratio)  # type: ignore[arg-type]


# --- other processes ------------------------------------------------------------------------------


def _decide_elsewhere(session_ids: list[str], env: dict[str, str], instrument: bool = False) -> dict[str, object]:
    command = [sys.executable, str(APPS / "sampling_decisions.py"), str(RATIO)]
    if instrument:
        command.insert(0, str(BIN / "opentelemetry-instrument"))
    done = subprocess.run(
        command, input=json.dumps(session_ids), capture_output=True, text=True, timeout=120, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    result["stderr"] = done.stderr
    return result


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SPANSTAMP_", "PYTHONHASHSEED"))}
    env.update(extra)
    return env


def test_separate_processes_make_the_same_decisions_for_the_same_sessions() -> None:
    sessions = [spanstamp.new_session_id() for _ in range(1_000)]
    here = {s: SessionIdRatioBased(RATIO).keeps_session(s) for s in sessions}
    # Different hash seeds: a decision that used Python's salted hash() would differ.
    first = _decide_elsewhere(sessions, _clean_env(PYTHONHASHSEED="1"))
    second = _decide_elsewhere(sessions, _clean_env(PYTHONHASHSEED="2"))
    assert first["decisions"] == second["decisions"] == here
    assert 100 < sum(here.values()) < 400


def test_otel_traces_sampler_selects_it_under_opentelemetry_instrument() -> None:
    sessions = [spanstamp.new_session_id() for _ in range(200)]
    env = _clean_env(
        OTEL_TRACES_SAMPLER="spanstamp_parentbased_sessionidratio",
        OTEL_TRACES_SAMPLER_ARG=str(RATIO),
        OTEL_TRACES_EXPORTER="none",
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
    )
    result = _decide_elsewhere(sessions, env, instrument=True)
    assert str(result["sampler"]).startswith("ParentBased{root:SessionIdRatioBased{0.25},")
    assert result["decisions"] == {s: _documented_keep(s, RATIO) for s in sessions}


def test_a_bad_sampler_argument_names_the_variable_and_keeps_everything() -> None:
    env = _clean_env(
        OTEL_TRACES_SAMPLER="spanstamp_sessionidratio",
        OTEL_TRACES_SAMPLER_ARG="a quarter",
        OTEL_TRACES_EXPORTER="none",
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
    )
    sessions = [_pick(False)]
    result = _decide_elsewhere(sessions, env, instrument=True)
    assert result["sampler"] == "SessionIdRatioBased{1.0}"
    assert result["decisions"] == {sessions[0]: True}
    assert (
        "OTEL_TRACES_SAMPLER_ARG: expected a number from 0.0 to 1.0, got a str of 9 characters; "
        "using ratio 1.0 (every session is kept)" in str(result["stderr"])
    )
