"""Scope semantics: values in the Context, nesting, exceptions, decorators of every kind."""

from __future__ import annotations

import asyncio
import inspect
import json
import threading
from collections.abc import AsyncIterator, Iterator

import pytest
from opentelemetry import context as otel_context
from opentelemetry import propagate
from opentelemetry.context import get_current

import spanstamp
from spanstamp import (
    current_session_id,
    current_user_id,
    from_arg,
    get_attributes_from_context,
    using_attributes,
    using_metadata,
    using_prompt_template,
    using_session,
    using_tags,
    using_user,
)
from support import Tracing


@pytest.fixture
def tracing() -> Tracing:
    return Tracing()


def test_ids_are_stamped_on_spans_started_inside_and_not_outside(tracing: Tracing) -> None:
    with using_session("s-1"), using_user("u-1"):
        tracing.record("inside")
    tracing.record("outside")
    assert tracing.attrs("inside") == {"session.id": "s-1", "user.id": "u-1"}
    assert tracing.attrs("outside") == {}


def test_using_attributes_puts_every_field_into_the_context(tracing: Tracing) -> None:
    with using_attributes(
        session_id="s",
        user_id="u",
        metadata={"tier": "pro", "n": 3},
        tags=["a", "b"],
        prompt_template="Hello {name}",
        prompt_template_version="v2",
        prompt_template_variables={"name": "Ada"},
    ):
        tracing.record("span")
    attrs = tracing.attrs("span")
    assert attrs["session.id"] == "s"
    assert attrs["user.id"] == "u"
    assert json.loads(attrs["metadata"]) == {"tier": "pro", "n": 3}
    assert attrs["tag.tags"] == ("a", "b")
    assert attrs["llm.prompt_template.template"] == "Hello {name}"
    assert attrs["llm.prompt_template.version"] == "v2"
    assert json.loads(attrs["llm.prompt_template.variables"]) == {"name": "Ada"}


def test_none_values_are_quiet_no_ops(tracing: Tracing, caplog: pytest.LogCaptureFixture) -> None:
    before = get_current()
    with using_session(None), using_user(None), using_attributes(), using_tags([]), using_metadata({}):
        assert get_current() is before
        tracing.record("span")
    assert tracing.attrs("span") == {}
    assert caplog.records == []


def test_inner_scope_overrides_ids_and_exit_restores_the_outer_values() -> None:
    with using_session("outer"), using_user("outer-user"):
        with using_session("inner"):
            assert current_session_id() == "inner"
            assert current_user_id() == "outer-user"
        assert current_session_id() == "outer"
    assert current_session_id() is None


def test_metadata_merges_key_by_key_inner_wins() -> None:
    with using_metadata({"a": 1, "b": 1}), using_metadata({"b": 2, "c": 3}):
        assert json.loads(str(dict(get_attributes_from_context())["metadata"])) == {"a": 1, "b": 2, "c": 3}
    with using_metadata({"a": 1}):
        with using_metadata({"b": 2}):
            pass
        assert json.loads(str(dict(get_attributes_from_context())["metadata"])) == {"a": 1}


def test_tags_accumulate_deduplicated_in_first_seen_order() -> None:
    with using_tags(["a", "b"]), using_tags(["c", "a"]), using_attributes(tags=["d", "b"]):
        assert dict(get_attributes_from_context())["tag.tags"] == ["a", "b", "c", "d"]


def test_inner_prompt_template_replaces_the_outer_one_whole() -> None:
    with using_prompt_template(template="outer {x}", version="v1", variables={"x": 1}):
        with using_prompt_template(template="inner"):
            attrs = dict(get_attributes_from_context())
            assert attrs["llm.prompt_template.template"] == "inner"
            assert "llm.prompt_template.version" not in attrs
            assert "llm.prompt_template.variables" not in attrs
        assert dict(get_attributes_from_context())["llm.prompt_template.version"] == "v1"


def test_exit_restores_the_outer_values_when_the_body_raises(tracing: Tracing) -> None:
    def fail_inside() -> None:
        with using_session("inner"):
            tracing.record("before-raise")
            raise RuntimeError("boom")

    with using_session("outer"):
        with pytest.raises(RuntimeError):
            fail_inside()
        assert current_session_id() == "outer"
    assert current_session_id() is None
    assert tracing.attrs("before-raise")["session.id"] == "inner"


def test_one_scope_object_can_be_reentered_nested_with_itself() -> None:
    scope = using_session("same")
    with scope:
        with using_session("middle"), scope:
            assert current_session_id() == "same"
        assert current_session_id() == "same"
        with scope:
            pass
    assert current_session_id() is None
    assert get_current() == {}


def test_an_outer_scope_exited_first_finds_its_own_entry_under_an_inner_one(caplog: pytest.LogCaptureFixture) -> None:
    outer, inner = using_session("outer"), using_user("inner")
    outer.__enter__()
    inner.__enter__()
    outer.__exit__(None, None, None)  # out of order: back to before the outer scope
    assert get_current() == {}
    with caplog.at_level("DEBUG", logger="spanstamp"):
        inner.__exit__(None, None, None)  # its entry went with the outer one: nothing to undo
    assert get_current() == {}
    assert "exited in a context it was not entered in" in caplog.text


def test_exit_also_drops_what_the_body_attached_and_never_detached() -> None:
    from opentelemetry.context import attach, set_value

    with using_session("s"):
        attach(set_value("leaked", 1))
    assert get_current() == {}


def test_async_with() -> None:
    async def main() -> tuple[str | None, str | None]:
        async with using_session("async-s"):
            inside = current_session_id()
        return inside, current_session_id()

    assert asyncio.run(main()) == ("async-s", None)


# --- decorators ---------------------------------------------------------------------


def test_decorated_function_runs_inside_the_scope_and_keeps_its_identity(tracing: Tracing) -> None:
    @using_session("deco")
    def handler(question: str, *, loud: bool = False) -> str:
        """Answer a question."""
        tracing.record("handler")
        return question.upper() if loud else question

    assert handler("hi", loud=True) == "HI"
    assert current_session_id() is None
    assert tracing.attrs("handler")["session.id"] == "deco"
    assert handler.__name__ == "handler"
    assert handler.__doc__ == "Answer a question."
    assert str(inspect.signature(handler)) == "(question: 'str', *, loud: 'bool' = False) -> 'str'"


def test_decorated_function_restores_context_when_it_raises() -> None:
    @using_user("u")
    def fails() -> None:
        raise ValueError("no")

    with pytest.raises(ValueError, match="no"):
        fails()
    assert get_current() == {}


def test_decorated_coroutine_function() -> None:
    @using_session("co")
    async def answer() -> str | None:
        await asyncio.sleep(0)
        return current_session_id()

    assert inspect.iscoroutinefunction(answer)

    async def main() -> tuple[str | None, str | None]:
        return await answer(), current_session_id()

    assert asyncio.run(main()) == ("co", None)


def test_decorated_generator_holds_the_scope_for_every_step_and_not_between() -> None:
    @using_session("gen")
    def stream(n: int) -> Iterator[str | None]:
        for _ in range(n):
            yield current_session_id()

    assert inspect.isgeneratorfunction(stream)
    seen_by_consumer = []
    chunks = []
    for chunk in stream(3):
        chunks.append(chunk)
        seen_by_consumer.append(current_session_id())
    assert chunks == ["gen", "gen", "gen"]
    assert seen_by_consumer == [None, None, None]
    assert get_current() == {}


def test_generator_partially_consumed_then_closed_runs_its_cleanup_inside_the_scope(tracing: Tracing) -> None:
    cleanup: list[str | None] = []

    @using_session("gen")
    def stream() -> Iterator[int]:
        try:
            yield from range(10)
        finally:
            cleanup.append(current_session_id())
            tracing.record("cleanup")

    gen = stream()
    assert next(gen) == 0
    assert next(gen) == 1
    gen.close()
    assert cleanup == ["gen"]
    assert tracing.attrs("cleanup")["session.id"] == "gen"
    assert get_current() == {}


def test_generator_that_raises_releases_the_scope_and_passes_return_value() -> None:
    @using_session("gen")
    def failing() -> Iterator[int]:
        yield 1
        raise KeyError("bad chunk")

    @using_session("gen")
    def returning() -> Iterator[int]:
        yield 1
        return 42

    gen = failing()
    assert next(gen) == 1
    with pytest.raises(KeyError):
        next(gen)
    assert get_current() == {}

    def delegate() -> Iterator[int]:
        result = yield from returning()
        yield result

    assert list(delegate()) == [1, 42]


def test_generator_send_and_throw_reach_the_body() -> None:
    @using_session("gen")
    def echo() -> Iterator[object]:
        received: object = None
        while True:
            try:
                received = yield (received, current_session_id())
            except ValueError as exc:
                received = f"caught {exc}"

    gen = echo()
    assert next(gen) == (None, "gen")
    assert gen.send("x") == ("x", "gen")
    assert gen.throw(ValueError("v")) == ("caught v", "gen")
    gen.close()


def test_span_opened_across_a_yield_stays_current_for_the_body_only(tracing: Tracing) -> None:
    @using_session("gen")
    def stream() -> Iterator[int]:
        with tracing.tracer.start_as_current_span("stream"):
            for i in range(2):
                yield i
                tracing.record("chunk")

    for _ in stream():
        tracing.record("consumer")
    stream_span = tracing.span("stream")
    assert stream_span.attributes is not None
    chunk_parents = {s.parent.span_id for s in tracing.spans() if s.name == "chunk" and s.parent}
    assert chunk_parents == {stream_span.context.span_id}
    assert all(s.parent is None for s in tracing.spans() if s.name == "consumer")
    assert all("session.id" not in (s.attributes or {}) for s in tracing.spans() if s.name == "consumer")


def test_decorated_async_generator_partially_consumed_then_closed(tracing: Tracing) -> None:
    cleanup: list[str | None] = []

    @using_session("agen")
    async def stream() -> AsyncIterator[str | None]:
        try:
            for _ in range(10):
                await asyncio.sleep(0)
                yield current_session_id()
        finally:
            cleanup.append(current_session_id())

    assert inspect.isasyncgenfunction(stream)

    async def main() -> list[tuple[str | None, str | None]]:
        seen = []
        agen = stream()
        async for chunk in agen:
            seen.append((chunk, current_session_id()))
            if len(seen) == 2:
                break
        await agen.aclose()
        return seen

    assert asyncio.run(main()) == [("agen", None), ("agen", None)]
    assert cleanup == ["agen"]


def test_decorated_methods_classmethods_and_staticmethods() -> None:
    class Bot:
        @using_session("method")
        def reply(self, text: str) -> tuple[str, str | None]:
            return text, current_session_id()

        @using_session(from_arg("conversation"))
        def reply_in(self, conversation: str) -> str | None:
            return current_session_id()

        @classmethod
        @using_user(from_arg("user"))
        def for_user(cls, user: str) -> str | None:
            return current_user_id()

        @staticmethod
        @using_user(from_arg("user"))
        def static(user: str) -> str | None:
            return current_user_id()

    bot = Bot()
    assert bot.reply("hi") == ("hi", "method")
    assert bot.reply_in("c-1") == "c-1"
    assert Bot.reply_in(bot, "c-2") == "c-2"
    assert Bot.for_user("u-1") == "u-1"
    assert Bot.static("u-2") == "u-2"
    assert str(inspect.signature(bot.reply)) == "(text: 'str') -> 'tuple[str, str | None]'"


def test_decorators_on_async_generator_and_async_generator_methods() -> None:
    class Bot:
        @using_session(from_arg("conversation"))
        async def answer(self, conversation: str) -> str | None:
            await asyncio.sleep(0)
            return current_session_id()

        @using_session(from_arg("conversation"))
        def words(self, conversation: str) -> Iterator[str | None]:
            yield current_session_id()
            yield current_session_id()

        @using_session(from_arg("conversation"))
        async def stream(self, conversation: str) -> AsyncIterator[str | None]:
            yield current_session_id()
            await asyncio.sleep(0)
            yield current_session_id()

    bot = Bot()

    async def main() -> tuple[str | None, list[str | None]]:
        return await bot.answer("c-async"), [s async for s in bot.stream("c-agen")]

    assert asyncio.run(main()) == ("c-async", ["c-agen", "c-agen"])
    assert list(bot.words("c-gen")) == ["c-gen", "c-gen"]
    assert list(Bot.words(bot, conversation="c-kw")) == ["c-kw", "c-kw"]
    assert inspect.iscoroutinefunction(bot.answer)
    assert inspect.isgeneratorfunction(bot.words)
    assert inspect.isasyncgenfunction(bot.stream)


def test_from_arg_on_a_bound_method_reads_the_named_argument() -> None:
    class Bot:
        def reply(self, text: str, conversation: str) -> tuple[str, str | None]:
            return text, current_session_id()

    bot = Bot()
    reply = using_session(from_arg("conversation"))(bot.reply)
    assert reply("hi", "c-1") == ("hi", "c-1")
    assert reply("hi", conversation="c-2") == ("hi", "c-2")
    text_as_session = using_session(from_arg("text"))(bot.reply)
    assert text_as_session("t-1", "c-3") == ("t-1", "t-1")


def test_a_scope_written_above_classmethod_or_staticmethod() -> None:
    class Bot:
        @using_session("cls")
        @classmethod
        async def answer(cls) -> str | None:
            await asyncio.sleep(0)
            return current_session_id()

        @using_session("cls-gen")
        @classmethod
        def words(cls) -> Iterator[str | None]:
            yield current_session_id()

        @using_session("static")
        @staticmethod
        async def static_answer() -> str | None:
            await asyncio.sleep(0)
            return current_session_id()

        @using_session(from_arg("conversation"))
        @classmethod
        def pick(cls, conversation: str) -> tuple[type, str | None]:
            return cls, current_session_id()

    assert asyncio.run(Bot.answer()) == "cls"
    assert list(Bot.words()) == ["cls-gen"]
    assert asyncio.run(Bot.static_answer()) == "static"
    assert asyncio.run(Bot().static_answer()) == "static"
    assert Bot.pick("c-1") == (Bot, "c-1")
    assert Bot().pick(conversation="c-2") == (Bot, "c-2")
    assert inspect.iscoroutinefunction(Bot.answer)
    assert inspect.isgeneratorfunction(Bot.words)
    assert str(inspect.signature(Bot.pick)) == "(conversation: 'str') -> 'tuple[type, str | None]'"


def test_leaving_restores_the_outer_values_when_the_body_left_a_context_of_its_own() -> None:
    # A body that attaches a Context built from scratch (as attach(extract(headers))
    # does) and never detaches it: leaving still restores what was there before.
    before = get_current()
    with using_session("outer"):
        with using_session("inner"):
            otel_context.attach(propagate.extract({}))
            assert current_session_id() is None
        assert current_session_id() == "outer"
    assert get_current() is before


def test_a_scope_shared_by_threads_exits_in_each_its_own_entry() -> None:
    scope = using_session("shared")
    entered = threading.Barrier(2)
    seen: list[str | None] = []

    def work() -> None:
        before = get_current()
        with scope:
            entered.wait(timeout=10)
            seen.append(current_session_id())
            entered.wait(timeout=10)
        seen.append("restored" if get_current() is before else "leaked")

    threads = [threading.Thread(target=work) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert sorted(map(str, seen)) == ["restored", "restored", "shared", "shared"]


# --- ids from the call ---------------------------------------------------------------


def test_from_arg_reads_positional_keyword_and_default_arguments() -> None:
    @using_attributes(session_id=from_arg("conversation_id"), user_id=from_arg("user_id"))
    def handle(text: str, conversation_id: str, user_id: str = "anonymous") -> tuple[str | None, str | None]:
        return current_session_id(), current_user_id()

    assert handle("hi", "c-1") == ("c-1", "anonymous")
    assert handle("hi", conversation_id="c-2", user_id="u-2") == ("c-2", "u-2")
    assert handle(text="hi", user_id="u-3", conversation_id="c-3") == ("c-3", "u-3")


def test_from_arg_with_getter_and_with_none_value() -> None:
    class Request:
        def __init__(self, headers: dict[str, str]) -> None:
            self.headers = headers

    @using_session(from_arg("request", get=lambda r: r.headers.get("x-session-id")))
    def handle(request: Request) -> str | None:
        return current_session_id()

    assert handle(Request({"x-session-id": "from-header"})) == "from-header"
    assert handle(Request({})) is None


def test_from_arg_in_async_and_generator_functions_and_var_keyword() -> None:
    @using_session(from_arg("cid"))
    async def answer(cid: str) -> str | None:
        return current_session_id()

    @using_session(from_arg("cid"))
    def stream(cid: str) -> Iterator[str | None]:
        yield current_session_id()

    @using_session(from_arg("cid"))
    def loose(**kwargs: str) -> str | None:
        return current_session_id()

    assert asyncio.run(answer("a-1")) == "a-1"
    assert list(stream("g-1")) == ["g-1"]
    assert loose(cid="k-1") == "k-1"


def test_from_arg_values_follow_the_input_rules(caplog: pytest.LogCaptureFixture) -> None:
    @using_session(from_arg("cid"))
    def handle(cid: object) -> str | None:
        return current_session_id()

    assert handle(12) == "12"
    assert handle("   ") is None
    assert "using_session(session_id): got an empty or blank str" in caplog.text


def test_a_failing_getter_is_reported_and_the_call_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    @using_session(from_arg("request", get=lambda r: r["missing"]))
    def handle(request: dict[str, str]) -> str:
        return "answered"

    assert handle({}) == "answered"
    assert "reading the value raised KeyError" in caplog.text


def test_from_arg_naming_no_parameter_is_reported_at_decoration(caplog: pytest.LogCaptureFixture) -> None:
    @using_session(from_arg("conversation_id"))
    def handle(text: str) -> str | None:
        return current_session_id()

    assert "from_arg('conversation_id') names no parameter of" in caplog.text
    assert handle("hi") is None


def test_from_arg_in_a_with_block_is_reported_and_ignored(caplog: pytest.LogCaptureFixture) -> None:
    with using_attributes(session_id=from_arg("x"), user_id="u"):
        assert current_session_id() is None
        assert current_user_id() == "u"
    assert "from_arg() values only apply when the scope decorates a function" in caplog.text


def test_new_session_id_is_a_fresh_uuid4() -> None:
    import uuid

    first, second = spanstamp.new_session_id(), spanstamp.new_session_id()
    assert first != second
    assert uuid.UUID(first).version == 4


def test_stacked_decorators_on_generators_keep_every_scope() -> None:
    @spanstamp.using_session(spanstamp.from_arg("session_id"))
    @spanstamp.using_user(spanstamp.from_arg("user_id"))
    @spanstamp.using_tags(["stream"])
    def stream(session_id: str, user_id: str) -> Iterator[dict[str, object]]:
        yield dict(spanstamp.get_attributes_from_context())

    @spanstamp.using_session(spanstamp.from_arg("session_id"))
    @spanstamp.using_user(spanstamp.from_arg("user_id"))
    async def astream(session_id: str, user_id: str) -> AsyncIterator[dict[str, object]]:
        yield dict(spanstamp.get_attributes_from_context())

    async def first_async() -> dict[str, object]:
        async for item in astream("s-2", "u-2"):
            return item
        raise AssertionError("no item")

    with spanstamp.using_tags(["outer"]):
        (seen,) = list(stream("s-1", "u-1"))
    assert seen == {"session.id": "s-1", "user.id": "u-1", "tag.tags": ["outer", "stream"]}
    assert asyncio.run(first_async()) == {"session.id": "s-2", "user.id": "u-2"}
    assert dict(spanstamp.get_attributes_from_context()) == {}
