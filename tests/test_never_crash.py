"""Issue 10: one test (or a few) per finding; each failed on main before the issue's fixes.

Which test covers which finding:

1. Exceptions reach the application: ``test_finding_1_*`` (hostile values as scope
   arguments, in default and strict mode, and foreign values in the Context read by
   the readers). tests/test_fuzz.py generates many more.
2. A lone surrogate crashes outgoing calls: ``test_finding_2_*``.
3. Hashing at the wrong layer: ``test_finding_3_*`` here (the Context and OpenInference's
   ``get_attributes_from_context``); tests/test_privacy_openinference.py end to end.
4. Metadata's ``user_id`` exported raw when ``user.id`` is not stamped: ``test_finding_4_*``.
5. A typo in ``SPANSTAMP_HASH_USER_IDS`` fails open and the warning echoes it: ``test_finding_5_*``.
6. ``SPANSTAMP_ATTRIBUTES`` with only empty entries: ``test_finding_6_*``.
7. Decorated functions cannot be pickled: ``test_finding_7_*`` (a real ``spawn`` pool).
8. A fork pool forked inside a scope keeps it: ``test_finding_8_*`` (a real ``fork`` pool).
9. Never-ended spans stay referenced: ``test_finding_9_*`` (tracemalloc).
10. W3C baggage properties in the id: ``test_finding_10_*`` (OpenTelemetry's propagator).
"""

from __future__ import annotations

import gc
import json
import logging
import multiprocessing
import os
import pickle
import subprocess
import sys
import textwrap
import tracemalloc
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import baggage, context, propagate, trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import hostile
import spanstamp
from spanstamp import (
    SessionSpanProcessor,
    get_attributes_from_context,
    using_attributes,
    using_metadata,
    using_session,
    using_user,
)
from support import Tracing, strict_mode
from threads import run_in_threads

APPS = Path(__file__).parent / "apps"
KEY = "k3y-for-never-crash-tests-0123456789"
RAW_USER = "raw-user-ada@example.com"


@pytest.fixture
def pool_tasks(monkeypatch: pytest.MonkeyPatch) -> Any:
    # On sys.path, so that spawned workers (which get the parent's sys.path) import it
    # under the same name the parent pickles.
    monkeypatch.syspath_prepend(str(APPS))
    import pool_tasks

    return pool_tasks


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="spanstamp")
    return caplog


def _all_log_text(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(
        f"{record.getMessage()}\n{record.exc_text or ''}\n{getattr(record, 'stack_info', '') or ''}"
        for record in caplog.records
    )


# --- Finding 1: no value breaks a scope or a reader ----------------------------------
#
# Each case failed on main: the exception reached the caller in default mode (and in
# strict mode was not the rules' TypeError / ValueError). tests/test_fuzz.py finds more.

_BAD_ARGUMENTS = [
    ("using_session", ("mock", "str")),  # check_id: str.strip(Mock(spec=str)) -> TypeError
    ("using_user", ("mock", "int")),  # check_id: int.__repr__(Mock(spec=int)) -> TypeError
    ("using_user", ("mock", "noncallable-str")),
    ("using_tags", ("list", "__iter__")),  # check_tags iterates the user's list
    ("using_tags", ("mock", "list")),
    ("using_tags", ("container", "list-of-hostile")),  # a tag whose strip() raises
    ("using_metadata", ("bad-pairs", "non-pairs")),  # items() yields non-pairs
    ("using_metadata", ("bad-pairs", "triples")),
    ("using_metadata", ("container", "dict-hostile-keys")),  # a key whose __hash__ raises
    ("using_metadata", ("str", "__len__")),  # describe() calls len() on the user's str
    ("using_metadata", ("mock", "str")),
    ("using_prompt_template", ("str", "strip")),  # check_template calls the user's strip()
    ("using_prompt_template", ("str", "__str__")),
]


def _scope_with(front: str, value: Any) -> Any:
    import spanstamp

    if front == "using_prompt_template":
        return spanstamp.using_prompt_template(template=value)
    return getattr(spanstamp, front)(value)


@pytest.mark.parametrize(("front", "kind"), _BAD_ARGUMENTS, ids=lambda v: v if isinstance(v, str) else "-".join(v))
def test_finding_1_a_hostile_argument_never_raises_in_default_mode(front: str, kind: tuple[str, str]) -> None:
    tracing = Tracing()

    @_scope_with(front, hostile.make(*kind))
    def handler() -> str:
        tracing.record("inside")
        return "ran"

    with _scope_with(front, hostile.make(*kind)):
        tracing.record("with")
    assert handler() == "ran"
    assert {span.name for span in tracing.spans()} == {"with", "inside"}


@pytest.mark.parametrize(("front", "kind"), _BAD_ARGUMENTS, ids=lambda v: v if isinstance(v, str) else "-".join(v))
def test_finding_1_strict_mode_raises_only_the_rules_errors(front: str, kind: tuple[str, str]) -> None:
    def enter() -> None:
        with _scope_with(front, hostile.make(*kind)):
            pass

    with strict_mode():
        raised = _raised(enter)
    if raised is not None:  # rejected: the rules' own error (TypeError / ValueError), no value shown
        assert isinstance(raised, (TypeError, ValueError)), f"{type(raised).__name__}: {raised}"
        assert not isinstance(raised, UnicodeError), f"an encoder's error, not the rules': {raised}"
        assert str(raised).startswith(f"{front}("), f"not the rules' message: {raised}"
        assert hostile.MARK not in str(raised)


def _raised(action: Any) -> BaseException | None:
    try:
        action()
    except Exception as exc:
        return exc
    return None


_FOREIGN = [
    ("session.id", ("mock", "str"), "get_attributes_from_context"),
    ("session.id", ("mock", "int"), "current_session_id"),
    ("user.id", ("mock", "str"), "current_user_id"),
    ("user.id", ("mock", "noncallable-str"), "get_attributes_from_context"),
    ("tag.tags", ("container", "deep-dict"), "get_attributes_from_context"),  # returned as is, not an attribute value
    ("metadata", ("mock", "str"), "using_metadata"),  # the merge reads the outer metadata
    ("tag.tags", ("list", "__iter__"), "using_tags"),  # the merge iterates the outer tags
    ("tag.tags", ("list", "__len__"), "using_tags"),
]


@pytest.mark.parametrize(("key", "kind", "reader"), _FOREIGN, ids=lambda v: v if isinstance(v, str) else "-".join(v))
def test_finding_1_foreign_values_in_the_context_break_no_reader(key: str, kind: tuple[str, str], reader: str) -> None:
    import spanstamp

    tracing = Tracing(downstream=None)
    token = context.attach(Context({key: hostile.make(*kind)}))
    try:
        if reader == "using_metadata":
            with spanstamp.using_metadata({"k": "v"}):
                found = dict(get_attributes_from_context())
        elif reader == "using_tags":
            with spanstamp.using_tags(["t"]):
                found = dict(get_attributes_from_context())
        else:
            result = getattr(spanstamp, reader)()
            found = dict(result) if reader == "get_attributes_from_context" else {"value": result}
        tracing.record("foreign")
    finally:
        context.detach(token)
    for value in found.values():
        # An attribute value: None, a plain scalar, or a list / tuple of plain str (tags).
        plain = value is None or type(value) in (str, bool, int, float)
        tags = isinstance(value, (list, tuple)) and all(type(item) is str for item in value)
        assert plain or tags, f"a {type(value).__name__} read"
    assert tracing.spans()


# --- Finding 2: text UTF-8 cannot encode never reaches the Context --------------------


def test_finding_2_a_lone_surrogate_session_id_does_not_break_outgoing_calls() -> None:
    session_id = hostile.lone_surrogate("s-abc")  # json.loads('"s-abc\\ud800"')
    headers: dict[str, str] = {}
    with using_session(session_id, propagate=True):
        propagate.inject(headers)  # what every instrumented HTTP client calls
        in_context = spanstamp.current_session_id()
    assert in_context is None or in_context.encode("utf-8")
    assert "baggage" not in headers or "\ud800" not in headers["baggage"]


@pytest.mark.parametrize("front", ["using_session", "using_user", "using_tags", "using_metadata", "template"])
def test_finding_2_no_value_in_the_context_is_text_utf8_cannot_encode(front: str) -> None:
    bad = hostile.lone_surrogate()
    scopes = {
        "using_session": lambda: using_session(bad),
        "using_user": lambda: using_user(bad),
        "using_tags": lambda: spanstamp.using_tags(["ok", bad]),
        "using_metadata": lambda: using_metadata({"k": bad, bad: "v"}),
        "template": lambda: spanstamp.using_prompt_template(template=bad, version=bad),
    }
    with scopes[front]():
        found = dict(get_attributes_from_context())
    # Rejected or made safe (the lead decides which): either way UTF-8 encodes it all.
    json.dumps(found, ensure_ascii=False).encode("utf-8")


def test_finding_2_strict_mode_rejects_a_lone_surrogate_with_a_value_error() -> None:
    with strict_mode(), pytest.raises(ValueError, match=r"^using_session\(session_id\): "):
        using_session(hostile.lone_surrogate(), propagate=True)


# --- Findings 3, 4, 5: user-id hashing (each in a fresh process: hashing is process-wide)


def _isolated(code: str, **environ: str) -> dict[str, Any]:
    """Run ``code`` in a fresh interpreter; it prints one JSON line, returned here."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPANSTAMP_")}
    env.update(environ)
    prelude = textwrap.dedent(
        """
        import json, logging, sys
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        import spanstamp
        logs = []
        class Keep(logging.Handler):
            def emit(self, record):
                logs.append(record.getMessage())
        logging.getLogger("spanstamp").addHandler(Keep(logging.DEBUG))
        logging.getLogger("spanstamp").setLevel(logging.DEBUG)
        exporter = InMemorySpanExporter()
        def provider_with(**options):
            provider = TracerProvider()
            provider.add_span_processor(SimpleSpanProcessor(exporter))
            spanstamp.install(provider, **options)
            return provider
        def exported():
            return [dict(span.attributes) for span in exporter.get_finished_spans()]
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_finding_3_with_hashing_on_the_context_holds_only_the_pseudonym() -> None:
    # OpenInference's tracer copies the Context's user.id and metadata onto its spans
    # after spanstamp stamped them: the Context itself must hold only the pseudonym.
    result = _isolated(
        f"""
        from openinference.instrumentation import get_attributes_from_context as openinference_reads
        provider = provider_with(hash_user_ids={KEY!r})
        with spanstamp.using_user({RAW_USER!r}), spanstamp.using_metadata({{"user_id": {RAW_USER!r}}}):
            seen = dict(openinference_reads())
            ours = dict(spanstamp.get_attributes_from_context())
            current = spanstamp.current_user_id()
            provider.get_tracer("t").start_span("s").end()
        result = {{"openinference": seen, "ours": ours, "current": current, "spans": exported(), "logs": logs}}
        print(json.dumps(result))
        """
    )
    pseudonym = spanstamp.pseudonymize(RAW_USER, key=KEY)
    assert result["openinference"]["user.id"] == pseudonym
    assert RAW_USER not in json.dumps(result)
    assert result["spans"][0]["user.id"] == pseudonym


def test_finding_3_the_environment_option_hashes_at_entry_too() -> None:
    result = _isolated(
        f"""
        from openinference.instrumentation import get_attributes_from_context as openinference_reads
        provider = provider_with()
        with spanstamp.using_attributes(user_id={RAW_USER!r}, metadata={{"user_id": {RAW_USER!r}}}):
            seen = dict(openinference_reads())
        print(json.dumps({{"openinference": seen, "logs": logs}}))
        """,
        SPANSTAMP_HASH_USER_IDS="1",
        SPANSTAMP_USER_ID_KEY=KEY,
    )
    assert result["openinference"]["user.id"] == spanstamp.pseudonymize(RAW_USER, key=KEY)
    assert RAW_USER not in json.dumps(result)


def test_finding_4_metadata_user_ids_are_hashed_when_user_id_is_not_stamped() -> None:
    result = _isolated(
        f"""
        provider = provider_with(attributes=["session.id", "metadata"], hash_user_ids={KEY!r})
        with spanstamp.using_session("s-1"), spanstamp.using_metadata({{"user_id": {RAW_USER!r}, "tier": "pro"}}):
            provider.get_tracer("t").start_span("s").end()
        print(json.dumps({{"spans": exported(), "logs": logs}}))
        """
    )
    (span,) = result["spans"]
    assert span["session.id"] == "s-1"
    assert json.loads(span["metadata"])["tier"] == "pro"
    assert RAW_USER not in json.dumps(result)


@pytest.mark.parametrize("setting", ["ture", KEY])  # a typo, and the key itself put there
def test_finding_5_an_unparsable_hashing_setting_fails_closed_and_is_not_echoed(setting: str) -> None:
    result = _isolated(
        f"""
        provider = provider_with()
        with spanstamp.using_user({RAW_USER!r}), spanstamp.using_metadata({{"user_id": {RAW_USER!r}}}):
            provider.get_tracer("t").start_span("s").end()
        print(json.dumps({{"spans": exported(), "current": spanstamp.current_user_id(), "logs": logs}}))
        """,
        SPANSTAMP_HASH_USER_IDS=setting,
        SPANSTAMP_USER_ID_KEY=KEY,
    )
    assert RAW_USER not in json.dumps(result["spans"])  # left out or hashed, never raw
    warnings = [line for line in result["logs"] if "SPANSTAMP_HASH_USER_IDS" in line]
    assert warnings, f"no warning names the variable: {result['logs']}"
    assert not any(setting in line for line in result["logs"]), "a warning echoes the setting's value"


# --- Finding 6: a list variable with only empty or unknown entries keeps the default --


@pytest.mark.parametrize("value", [",,", "x,,", " , ", "nonsense"])
def test_finding_6_an_empty_or_unknown_attributes_list_keeps_the_default_and_names_the_variable(
    value: str, monkeypatch: pytest.MonkeyPatch, logs: pytest.LogCaptureFixture
) -> None:
    from spanstamp.attributes import CONTEXT_ATTRIBUTES

    monkeypatch.setenv("SPANSTAMP_ATTRIBUTES", value)
    processor = SessionSpanProcessor()
    assert processor.attributes == CONTEXT_ATTRIBUTES
    assert any("SPANSTAMP_ATTRIBUTES" in record.getMessage() for record in logs.records), [
        record.getMessage() for record in logs.records
    ]
    tracing = Tracing()
    with using_session("s-6"):
        tracing.record("six")
    assert tracing.attrs("six")["session.id"] == "s-6"


# --- Finding 7: decorated functions pickle by reference, and keep their scope ---------


def test_finding_7_decorated_functions_and_methods_pickle_by_reference(pool_tasks: Any) -> None:
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        assert pickle.loads(pickle.dumps(pool_tasks.scoped_task, protocol)) is pool_tasks.scoped_task
        assert pickle.loads(pickle.dumps(pool_tasks.task_for_session, protocol)) is pool_tasks.task_for_session
        bound = pickle.loads(pickle.dumps(pool_tasks.Handler("h").handle, protocol))
        assert bound.__self__.name == "h"
        # Unpickled, they still run in their scope, with the call unchanged.
        assert pickle.loads(pickle.dumps(pool_tasks.scoped_task, protocol))("x")["session"] == "spawned-session"
        assert bound("y")["session"] == "spawned-method-session"


def test_finding_7_a_task_decorated_function_pickles_by_reference_and_still_runs(pool_tasks: Any) -> None:
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        unpickled = pickle.loads(pickle.dumps(pool_tasks.answer_task, protocol))
        assert unpickled is pool_tasks.answer_task
        assert unpickled("why?") == "answer to why?"


def test_finding_7_a_local_function_fails_to_pickle_as_a_plain_local_function_does() -> None:
    def make() -> Any:
        @using_session("s")
        def local() -> None: ...

        return local

    with pytest.raises((pickle.PicklingError, AttributeError), match="local"):
        pickle.dumps(make())


def test_finding_7_a_spawn_pool_runs_decorated_functions_in_their_scope(pool_tasks: Any) -> None:
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        constant = pool.submit(pool_tasks.scoped_task, "c").result(timeout=120)
        from_call = pool.submit(pool_tasks.task_for_session, "s-from-call").result(timeout=60)
        method = pool.submit(pool_tasks.Handler("h-1").handle, "m").result(timeout=60)
        coroutine = pool.submit(pool_tasks.run_coroutine, pool_tasks.async_scoped_task, "a").result(timeout=60)
        mapped = list(pool.map(pool_tasks.task_for_session, ["s-a", "s-b"], timeout=60))
    assert constant["session"] == "spawned-session"
    assert constant["user"] == "spawned-user"
    assert constant["attributes"] == {"session.id": "spawned-session", "user.id": "spawned-user"}
    assert from_call["attributes"] == {"session.id": "s-from-call"}
    assert method["attributes"] == {"session.id": "spawned-method-session"}
    assert method["handler"] == "h-1"
    assert coroutine["attributes"] == {"session.id": "spawned-async-session"}
    assert [m["session"] for m in mapped] == ["s-a", "s-b"]
    # A worker process, not this one.
    import os

    assert constant["pid"] != os.getpid()


# --- Finding 8: a fork pool forked inside a scope keeps that scope --------------------

_NO_FORK = "fork" not in multiprocessing.get_all_start_methods()


@pytest.mark.skipif(_NO_FORK, reason="this platform cannot fork")
def test_finding_8_a_pool_forked_inside_a_scope_keeps_it_in_its_workers_for_good(pool_tasks: Any) -> None:
    # The hazard docs/limits-more.md describes: fork copies the forking thread's context
    # variables, and ProcessPoolExecutor forks its workers on the first submit.
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("fork")) as pool:
        with using_attributes(session_id="first", user_id="u-first"):
            first = pool.submit(pool_tasks.plain_task, 1).result(timeout=60)
        with using_session("second"):
            later = pool.submit(pool_tasks.plain_task, 2).result(timeout=60)
        outside = pool.submit(pool_tasks.plain_task, 3).result(timeout=60)
        # The safe pattern: the ids are passed, and the scope is opened in the worker.
        safe = pool.submit(pool_tasks.task_in_its_own_scope, "second", "u-second").result(timeout=60)
    assert first["pid"] == later["pid"] == outside["pid"] == safe["pid"]
    assert first["attributes"] == {"session.id": "first", "user.id": "u-first"}
    # Submitted from another scope, or from none: still stamped with the first one.
    assert later["attributes"] == {"session.id": "first", "user.id": "u-first"}
    assert outside["attributes"] == {"session.id": "first", "user.id": "u-first"}
    assert safe["attributes"] == {"session.id": "second", "user.id": "u-second"}


@pytest.mark.skipif(_NO_FORK, reason="this platform cannot fork")
def test_finding_8_a_pool_forked_outside_any_scope_carries_no_ids(pool_tasks: Any) -> None:
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("fork")) as pool:
        pool.submit(pool_tasks.plain_task, 0).result(timeout=60)  # forks the worker here, outside
        with using_session("s-1"):
            plain = pool.submit(pool_tasks.plain_task, 1).result(timeout=60)
            safe = pool.submit(pool_tasks.task_in_its_own_scope, "s-1", "u-1").result(timeout=60)
    # A process pool never carries the caller's Context: the scope opens in the worker.
    assert plain["attributes"] == {}
    assert safe["attributes"] == {"session.id": "s-1", "user.id": "u-1"}


# --- Finding 10: W3C baggage properties are not part of the id ------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("session.id=s;k=v", {"session.id": "s"}),
        ("session.id=s-1;prop1=a;prop2", {"session.id": "s-1"}),
        ("session.id = s-2 ; k=v ,user.id=u-2;ttl=60", {"session.id": "s-2", "user.id": "u-2"}),
        ("session.id=;k=v", {}),  # properties only: no id
        ("session.id=s-3", {"session.id": "s-3"}),
    ],
)
def test_finding_10_baggage_properties_are_stripped_from_inbound_ids(header: str, expected: dict[str, str]) -> None:
    tracing = Tracing(trust_baggage=True)
    inbound = W3CBaggagePropagator().extract({"baggage": header}, context=Context())
    assert baggage.get_all(inbound)  # OpenTelemetry keeps the properties in the value
    # Older propagators (SDK 1.26, the lowest supported) refuse an entry with spaces around
    # "=" outright: spanstamp cannot stamp what never reached the Context.
    expected = {key: value for key, value in expected.items() if key in baggage.get_all(inbound)}
    token = context.attach(inbound)
    try:
        tracing.record("inbound")
        assert dict(get_attributes_from_context()) == {}  # inbound ids are the processor's, opt-in
    finally:
        context.detach(token)
    assert tracing.attrs("inbound") == expected


def test_finding_10_an_id_with_a_semicolon_cannot_travel_through_baggage() -> None:
    # OpenTelemetry's propagator decodes %3B before anyone reads the value, so a ';' that
    # was part of the id reads as the start of properties: the id arrives cut there.
    # docs/limits-more.md says so; spanstamp's own ids (new_session_id()) have none.
    outbound = baggage.set_baggage("session.id", "conv-7;turn=2", Context())
    headers: dict[str, str] = {}
    W3CBaggagePropagator().inject(headers, outbound)
    assert "%3B" in headers["baggage"]
    tracing = Tracing(trust_baggage=True)
    token = context.attach(W3CBaggagePropagator().extract(headers, context=Context()))
    try:
        tracing.record("inbound")
    finally:
        context.detach(token)
    assert tracing.attrs("inbound") == {"session.id": "conv-7"}


# --- Finding 9: what the processor keeps per open span is bounded in bytes ------------


@pytest.mark.parametrize("label", ["stamp_local_root", "downstream"])
def test_finding_9_never_ended_spans_the_app_dropped_are_not_kept(label: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Trace filling (where the processor has it) holds a trace whose root is open by its
    # own bounds (traces, bytes, age): this measures what the processor itself keeps.
    monkeypatch.setenv("SPANSTAMP_FILL_TRACES", "0")
    options: dict[str, Any] = (
        {"stamp_local_root": True}
        if label == "stamp_local_root"
        else {"downstream": SimpleSpanProcessor(InMemorySpanExporter())}
    )
    provider = TracerProvider()
    processor = SessionSpanProcessor(**options)
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("leaks")
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        with using_session("s-1"), using_metadata({"note": "x" * 2000}):
            for _ in range(5_000):
                tracer.start_span("never-ended")  # started, dropped, never ended
        gc.collect()
        retained = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    # On main: about 14 MiB (stamp_local_root: the Span objects) or 1.2 MiB (downstream).
    assert retained < 256 * 1024, f"{label}: {retained} bytes kept for spans nobody references"


def test_finding_9_spans_kept_alive_without_ending_cost_at_most_the_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    from spanstamp import processor as processor_module

    budget = 512 * 1024
    monkeypatch.setattr(processor_module, "_MAX_OPEN_BYTES", budget)
    monkeypatch.setattr(processor_module, "_MAX_GUARDED_BYTES", budget)
    provider = TracerProvider()
    processor = SessionSpanProcessor(stamp_local_root=True, downstream=SimpleSpanProcessor(InMemorySpanExporter()))
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("kept")
    kept = []
    tracemalloc.start()
    try:
        with using_session("s-1"), using_metadata({"note": "y" * 500}):
            # The app keeps every span (a leak of its own); spanstamp's part stays bounded.
            kept = [tracer.start_span(f"kept-{i}") for i in range(4_000)]
        snapshot = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    ours = snapshot.filter_traces([tracemalloc.Filter(True, "*spanstamp*_open_spans.py")])
    measured = sum(stat.size for stat in ours.statistics("filename"))
    assert processor._open is not None
    assert processor._guarded is not None
    assert processor._open.nbytes <= budget
    assert processor._guarded.nbytes <= budget
    assert measured <= 2 * budget, f"{measured} bytes allocated for {len(kept)} open spans"
    # The newest spans are still tracked: entering a scope stamps the current one.
    latest = kept[-1]
    with trace.use_span(latest), using_user("u-late"):
        pass
    assert latest.attributes is not None
    assert latest.attributes.get("user.id") == "u-late"
    # The oldest were forgotten to stay within the budget: a scope entered later leaves them as they were.
    with trace.use_span(kept[0]), using_user("u-late"):
        pass
    assert kept[0].attributes is not None
    assert "user.id" not in kept[0].attributes
    for span in kept:
        span.end()
    assert len(processor._open) == 0
    assert len(processor._guarded) == 0


def test_finding_8_the_docs_describe_the_fork_hazard_and_the_safe_pattern() -> None:
    page = (Path(__file__).parent.parent / "docs" / "limits-more.md").read_text()
    assert "Fork hazard" in page
    assert "pass the ids, open the scope in the worker" in page


def test_finding_9_the_tables_stay_consistent_under_threads() -> None:
    provider = TracerProvider()
    processor = SessionSpanProcessor(stamp_local_root=True, downstream=SimpleSpanProcessor(InMemorySpanExporter()))
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("threads")

    def work(number: int) -> None:
        with using_session(f"s-{number}"):
            for i in range(500):
                with tracer.start_as_current_span("parent"):
                    child = tracer.start_span("child")
                    if i % 2:
                        child.end()  # the other half is dropped without ending
                del child

    errors = run_in_threads(work, range(4))
    gc.collect()
    assert not errors
    assert processor._open is not None
    assert processor._guarded is not None
    # Ended spans left at their end, dropped ones when they were collected.
    assert len(processor._open) == 0
    assert len(processor._guarded) == 0
