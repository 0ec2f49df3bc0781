"""SessionSpanProcessor: where values come from, and that nothing raises into the app."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap

import pytest
from opentelemetry import trace
from opentelemetry.context import Context, attach, detach
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import spanstamp
from spanstamp import SessionSpanProcessor, using_session, using_user
from support import Tracing


def test_parent_context_wins_and_current_fills_what_it_lacks() -> None:
    tracing = Tracing()
    with using_session("captured"):
        captured = spanstamp.scope.get_current()
    with using_session("current"), using_user("current-user"):
        tracing.tracer.start_span("explicit", context=captured).end()
    assert tracing.attrs("explicit") == {"session.id": "captured", "user.id": "current-user"}


def test_explicit_empty_context_still_gets_the_scope_values() -> None:
    """LangChain-style tracers build the parent context from an empty Context()."""
    tracing = Tracing()
    with tracing.tracer.start_as_current_span("root") as root, using_session("s"):
        parent_only = trace.set_span_in_context(root, Context())
        tracing.tracer.start_span("child", context=parent_only).end()
        tracing.tracer.start_span("empty", context=Context()).end()
    assert tracing.attrs("child")["session.id"] == "s"
    assert tracing.attrs("empty")["session.id"] == "s"
    child = tracing.span("child")
    assert child.parent is not None
    assert child.parent.span_id == root.get_span_context().span_id


def test_scope_values_override_attributes_given_at_start() -> None:
    tracing = Tracing()
    with using_session("scope"):
        tracing.tracer.start_span("span", attributes={"session.id": "framework", "other": 1}).end()
    assert tracing.attrs("span") == {"session.id": "scope", "other": 1}


def test_nothing_in_the_context_leaves_spans_untouched() -> None:
    tracing = Tracing()
    tracing.tracer.start_span("span", attributes={"a": 1}).end()
    assert tracing.attrs("span") == {"a": 1}


def test_attributes_option_limits_what_is_stamped() -> None:
    tracing = Tracing(attributes=["user.id"])
    assert tracing.processor.attributes == ("user.id",)
    with using_session("s"), using_user("u"):
        tracing.record("span")
    assert tracing.attrs("span") == {"user.id": "u"}


def test_unknown_attribute_names_are_reported(caplog: pytest.LogCaptureFixture) -> None:
    processor = SessionSpanProcessor(attributes=["session.id", "sesion.id"])
    assert processor.attributes == ("session.id",)
    assert "SessionSpanProcessor(attributes): unknown attribute name (a str of 9 characters)" in caplog.text


def test_a_failure_inside_the_processor_never_reaches_the_app_and_is_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    processor = SessionSpanProcessor()
    not_a_span = object()
    with using_session("s"), caplog.at_level(logging.DEBUG, logger="spanstamp"):
        for _ in range(3):
            processor.on_start(not_a_span)  # type: ignore[arg-type]
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "SessionSpanProcessor failed on a span" in errors[0].getMessage()
    assert errors[0].exc_info is not None


def test_strict_mode_does_not_make_the_span_path_raise() -> None:
    from spanstamp.context import collect
    from support import strict_mode

    tracing = Tracing()
    bad = Context({"session.id": "", "user.id": 3.5})  # as another library might leave them
    with strict_mode():
        tracing.tracer.start_span("span", context=bad).end()
        assert collect(("session.id", "user.id"), bad, Context()) == {}
    assert tracing.attrs("span") == {}


def test_processor_sees_spans_of_every_tracer_on_the_provider() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    spanstamp.install(provider)
    with using_session("s"):
        for name in ("opentelemetry.instrumentation.httpx", "openinference.instrumentation.openai", "my.app"):
            provider.get_tracer(name).start_span(name).end()
    assert {(s.name, (s.attributes or {}).get("session.id")) for s in exporter.get_finished_spans()} == {
        ("opentelemetry.instrumentation.httpx", "s"),
        ("openinference.instrumentation.openai", "s"),
        ("my.app", "s"),
    }


class _Label(str):
    """A str subclass, as another library might store."""


@pytest.mark.parametrize("named_session", [None, "meta-s"])
def test_every_way_of_stamping_takes_the_same_values_as_get_attributes_from_context(
    named_session: str | None,
) -> None:
    """The processor's fast path (no downstream) and collect() agree, value by value."""
    exporter = InMemorySpanExporter()
    fast = TracerProvider()
    fast.add_span_processor(SessionSpanProcessor())
    fast.add_span_processor(SimpleSpanProcessor(exporter))
    guarded = TracerProvider()
    guarded.add_span_processor(SessionSpanProcessor(downstream=SimpleSpanProcessor(exporter)))
    left_by_others: dict[str, object] = {
        "spanstamp.metadata.user.id": "meta-u",  # named by metadata, but a user id is set: ignored
        "session.id": " padded " if named_session is None else "",  # held to the id rules: stripped
        "user.id": 42,  # an int id becomes its decimal string
        "metadata": "",  # an empty str is nothing
        "tag.tags": ("a", "b"),
        "llm.prompt_template.template": _Label("T {x}"),
        "llm.prompt_template.version": _Label(" v2 "),  # a str subclass id: stripped, plain str
        "llm.prompt_template.variables": None,
        "unrelated": "x",
    }
    if named_session is not None:
        left_by_others["spanstamp.metadata.session.id"] = named_session
    token = attach(Context(left_by_others))
    try:
        expected = dict(spanstamp.get_attributes_from_context())
        fast.get_tracer("t").start_span("fast").end()
        fast.get_tracer("t").start_span("fast-parent", context=Context()).end()
        guarded.get_tracer("t").start_span("guarded").end()
    finally:
        detach(token)
    assert expected == {
        "session.id": "padded" if named_session is None else named_session,
        "user.id": "42",
        "tag.tags": ["a", "b"],
        "llm.prompt_template.template": "T {x}",
        "llm.prompt_template.version": "v2",
    }
    for span in exporter.get_finished_spans():
        # The SDK keeps a sequence attribute as a tuple.
        attrs = {k: list(v) if isinstance(v, tuple) else v for k, v in (span.attributes or {}).items()}
        assert attrs == expected, span.name
        assert type(attrs["llm.prompt_template.version"]) is str
        if span.name != "fast-parent":  # without a parent context, also in collect()'s order
            assert list(attrs) == list(expected), span.name


def test_with_a_parent_context_attributes_come_in_the_same_order_in_every_process() -> None:
    # The order of a span's attributes must not depend on PYTHONHASHSEED (sets would).
    script = textwrap.dedent(
        """
        from opentelemetry.context import Context
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        import spanstamp

        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        spanstamp.install(provider)
        with spanstamp.using_attributes(
            session_id="s", user_id="u", metadata={"k": 1}, tags=["t"],
            prompt_template="T", prompt_template_version="v", prompt_template_variables={"x": 1},
        ):
            provider.get_tracer("t").start_span("span", context=Context()).end()
        (span,) = exporter.get_finished_spans()
        print(",".join(span.attributes))
        """
    )
    orders = set()
    for seed in ("0", "1", "2", "3", "4", "5"):
        done = subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "PYTHONHASHSEED": seed},
            check=False,
        )
        assert done.returncode == 0, done.stderr
        orders.add(done.stdout.strip())
    assert orders == {",".join(spanstamp.attributes.CONTEXT_ATTRIBUTES)}


def test_values_another_library_wrote_are_checked_on_every_span_they_differ() -> None:
    tracing = Tracing()
    for raw in (" padded ", "fine"):
        token = attach(Context({"session.id": raw}))
        try:
            tracing.record(raw)
        finally:
            detach(token)
    assert tracing.attrs(" padded ") == {"session.id": "padded"}
    assert tracing.attrs("fine") == {"session.id": "fine"}


class _Exporting(Tracing):
    """A provider whose SessionSpanProcessor exports through downstream=, as configure() builds it."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.processor = SessionSpanProcessor(downstream=SimpleSpanProcessor(self.exporter))
        self.provider.add_span_processor(self.processor)
        self.tracer = self.provider.get_tracer("tests")


@pytest.mark.parametrize("tracing_class", [Tracing, _Exporting], ids=["stamping only", "with downstream"])
def test_the_values_kept_from_the_last_context_are_its_values_under_the_rules_in_force(
    tracing_class: type[Tracing],
) -> None:
    """on_start keeps what it read from a Context for the next span started in it: pinned to collect()."""
    from spanstamp import configure_rules

    tracing = tracing_class()
    tags = ["a"]  # a list another library left: it can change, so it is read again every span
    token = attach(Context({"session.id": "session-0123", "user.id": "u-1", "tag.tags": tags}))
    try:
        expected = dict(spanstamp.get_attributes_from_context())
        tracing.record("first")
        tracing.record("second")  # the same Context
        tags.append("b")
        tracing.record("tags changed")
    finally:
        detach(token)
    assert tracing.attrs("first") == tracing.attrs("second") == {**expected, "tag.tags": ("a",)}
    assert tracing.attrs("tags changed")["tag.tags"] == ("a", "b")
    with using_session("session-0123"), using_user("u-1"):
        tracing.record("kept")
        tracing.record("kept again")
        configure_rules(max_id_length=8)  # the session id is too long now
        expected = dict(spanstamp.get_attributes_from_context())
        tracing.record("shorter limit")
    assert tracing.attrs("kept") == tracing.attrs("kept again") == {"session.id": "session-0123", "user.id": "u-1"}
    assert tracing.attrs("shorter limit") == expected == {"user.id": "u-1"}
    # A new Context, even one equal to the last, is read again: the last one is kept by identity.
    for n in range(3):
        with using_session(f"s-{n}"):
            tracing.record(f"scope {n}")
    assert [tracing.attrs(f"scope {n}") for n in range(3)] == [{"session.id": f"s-{n}"} for n in range(3)]


def test_langchain_imported_after_the_processor_is_still_read() -> None:
    # on_start learns that LangChain was imported from a post-import hook: a fresh interpreter,
    # so that the import really comes after the processor.
    pytest.importorskip("langchain_core")
    script = textwrap.dedent(
        """
        import sys
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        import spanstamp

        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        spanstamp.install(provider)
        tracer = provider.get_tracer("t")
        tracer.start_span("before").end()
        assert "langchain_core.runnables.config" not in sys.modules
        from langchain_core.runnables import RunnableLambda

        def body(_):
            tracer.start_span("in run").end()

        RunnableLambda(body).invoke(1, config={"metadata": {"session_id": "s-run", "user_id": "u-run"}})
        print({span.name: dict(span.attributes) for span in exporter.get_finished_spans()})
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str({"before": {}, "in run": {"session.id": "s-run", "user.id": "u-run"}})


def test_a_context_with_nothing_to_stamp_is_skipped_and_every_new_one_is_read() -> None:
    """on_start keeps the last Context it found nothing in: only that very Context is skipped."""
    tracing = Tracing()
    parent = tracing.tracer.start_span("parent")
    with trace.use_span(parent):
        tracing.record("first child")
        tracing.record("second child")  # the same Context as the first
        with using_session("s-1"):
            tracing.record("in a scope")
        tracing.record("after the scope")  # the parent's Context again
    parent.end()
    for unrelated in ({"unrelated": 1}, {"unrelated": 1}):  # two equal Contexts, read alike
        token = attach(Context(unrelated))
        try:
            tracing.record(f"unrelated {id(unrelated)}")
        finally:
            detach(token)
    token = attach(Context({"unrelated": 1, "session.id": "s-2"}))
    try:
        tracing.record("unrelated and a session")
    finally:
        detach(token)
    assert [tracing.attrs(name) for name in ("first child", "second child", "after the scope")] == [{}, {}, {}]
    assert tracing.attrs("in a scope") == {"session.id": "s-1"}
    assert tracing.attrs("unrelated and a session") == {"session.id": "s-2"}


@pytest.mark.parametrize("tracing_class", [Tracing, _Exporting], ids=["stamping only", "with downstream"])
def test_a_processor_keeps_no_more_than_two_past_contexts_alive(tracing_class: type[Tracing]) -> None:
    """The Contexts on_start keeps for sibling spans are held strongly, two at most: the rest go."""
    import gc
    import weakref

    from opentelemetry.context import get_current

    tracing = tracing_class()
    seen: list[weakref.ref[Context]] = []
    for n in range(40):
        with using_session(f"s-{n}"), using_user("u-1"):
            seen.append(weakref.ref(get_current()))
            tracing.record(f"stamped {n}")
            tracing.record(f"sibling {n}")  # the kept read
        parent = tracing.tracer.start_span(f"parent {n}")
        with trace.use_span(parent):
            seen.append(weakref.ref(get_current()))
            tracing.record(f"nothing to stamp {n}")
        parent.end()
    gc.collect()
    alive = [index for index, ref in enumerate(seen) if ref() is not None]
    assert len(alive) <= 2
    assert all(index >= len(seen) - 2 for index in alive)  # only the last of each kind
    assert tracing.attrs("sibling 39") == tracing.attrs("stamped 39") == {"session.id": "s-39", "user.id": "u-1"}
    assert tracing.attrs("nothing to stamp 39") == {}
