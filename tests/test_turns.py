"""task(): the turn's span and its scope, in every form, asserted on the exported spans."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

from spanstamp import TaskRun, from_arg, task, using_attributes
from spanstamp.task_ids import is_generated, span_context_of
from support import Tracing, reset_trace_globals, strict_mode


def _hex(span: ReadableSpan) -> tuple[str, str]:
    assert span.context is not None
    return f"{span.context.trace_id:032x}", f"{span.context.span_id:016x}"


def _attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def test_a_with_block_is_one_span_with_input_output_and_the_scope_on_everything_inside(
    global_tracing: Tracing,
) -> None:
    with task(
        input="What is OTel?",
        session_id="s-1",
        user_id="u-1",
        metadata={"tier": "pro"},
        tags=["web"],
        raw_input={"messages": [{"role": "user", "content": "What is OTel?"}]},
    ) as t:
        global_tracing.record("llm call")
        t.set_output("A standard.", raw_output={"choices": [{"text": "A standard."}]})

    turn, llm = global_tracing.span("task"), global_tracing.span("llm call")
    attrs = _attrs(turn)
    assert attrs["openinference.span.kind"] == "CHAIN"
    assert (attrs["input.value"], attrs["input.mime_type"]) == ("What is OTel?", "text/plain")
    assert (attrs["output.value"], attrs["output.mime_type"]) == ("A standard.", "text/plain")
    assert json.loads(attrs["spanstamp.task.raw_input"]) == {"messages": [{"role": "user", "content": "What is OTel?"}]}
    assert json.loads(attrs["spanstamp.task.raw_output"]) == {"choices": [{"text": "A standard."}]}
    for span in (turn, llm):
        assert _attrs(span)["session.id"] == "s-1"
        assert _attrs(span)["user.id"] == "u-1"
        assert json.loads(_attrs(span)["metadata"]) == {"tier": "pro"}
        assert _attrs(span)["tag.tags"] == ("web",)
    assert llm.parent is not None
    assert llm.parent.span_id == turn.context.span_id
    # A generated id spells the span's own context.
    assert isinstance(t, TaskRun)
    assert is_generated(t.id)
    assert attrs["spanstamp.task.id"] == t.id == "-".join(_hex(turn))
    assert turn.parent is None
    assert turn.status.status_code is StatusCode.UNSET


def test_other_json_values_are_json_and_bad_ones_are_left_out_with_a_warning(
    global_tracing: Tracing, caplog: pytest.LogCaptureFixture
) -> None:
    with task(input={"question": "hi", "n": float("nan")}) as t:
        t.set_output([1, 2.5, True])
    with caplog.at_level(logging.WARNING, logger="spanstamp"), task(input=object(), kind="bogus") as t2:
        t2.set_output(object())
    first, second = global_tracing.spans()
    assert _attrs(first)["input.mime_type"] == "application/json"
    assert json.loads(_attrs(first)["input.value"]) == {"question": "hi", "n": "nan"}
    assert (_attrs(first)["output.value"], _attrs(first)["output.mime_type"]) == ("[1, 2.5, true]", "application/json")
    assert "input.value" not in _attrs(second)
    assert "output.value" not in _attrs(second)
    assert _attrs(second)["openinference.span.kind"] == "CHAIN"
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("task(input): expected a str or a JSON-safe value") for m in messages)
    assert any(m.startswith("set_output(output)") for m in messages)
    assert any(m.startswith("task(kind)") for m in messages)
    with strict_mode(), pytest.raises(TypeError, match=r"task\(input\)"):
        task(input=object())


def test_sync_decorator_takes_input_and_ids_from_the_call_and_the_return_value_is_the_output(
    global_tracing: Tracing,
) -> None:
    class Bot:
        @task(input=from_arg("question"), session_id=from_arg("sid"), user_id=from_arg("uid"), name="answer")
        def answer(self, sid: str, uid: str, question: str) -> str:
            global_tracing.record("inner")
            return question.upper()

    assert Bot().answer("s-7", "u-7", question="hello") == "HELLO"
    turn, inner = global_tracing.span("answer"), global_tracing.span("inner")
    assert (_attrs(turn)["input.value"], _attrs(turn)["output.value"]) == ("hello", "HELLO")
    assert _attrs(inner)["session.id"] == _attrs(turn)["session.id"] == "s-7"
    assert _attrs(inner)["user.id"] == _attrs(turn)["user.id"] == "u-7"
    assert inner.parent is not None
    assert inner.parent.span_id == turn.context.span_id


def test_async_decorator_and_async_with(global_tracing: Tracing) -> None:
    @task(input=from_arg("question"), task_id=from_arg("message_id"))
    async def answer(question: str, message_id: str) -> dict[str, str]:
        await asyncio.sleep(0)
        global_tracing.record("inner")
        return {"answer": question[::-1]}

    async def main() -> str:
        result = await answer("abc", message_id="msg-1")
        assert result == {"answer": "cba"}
        async with task(input="second", session_id="s-2") as t:
            await asyncio.sleep(0)
            t.set_output("done")
        return t.id

    second_id = asyncio.run(main())
    first, second = [s for s in global_tracing.spans() if s.name == "task"]
    assert _attrs(first)["spanstamp.task.id"] == "msg-1"
    assert (_attrs(first)["output.value"], _attrs(first)["output.mime_type"]) == (
        '{"answer": "cba"}',
        "application/json",
    )
    assert global_tracing.span("inner").parent.span_id == first.context.span_id  # type: ignore[union-attr]
    assert (_attrs(second)["output.value"], _attrs(second)["session.id"]) == ("done", "s-2")
    assert _attrs(second)["spanstamp.task.id"] == second_id


def test_generators_output_their_str_chunks_joined_and_the_span_covers_every_step(global_tracing: Tracing) -> None:
    @task(input=from_arg("prompt"), session_id="s-g")
    def stream(prompt: str) -> Iterator[str]:
        for word in prompt.split():
            global_tracing.record("chunk")
            yield word + " "

    @task(name="objects")
    def objects() -> Iterator[object]:
        yield "text"
        yield {"delta": 1}

    assert "".join(stream("one two three")) == "one two three "
    # The consumer between steps sees none of the task's scope or span.
    assert trace.get_current_span() is trace.INVALID_SPAN
    assert list(objects()) == ["text", {"delta": 1}]
    early = stream("a b c")
    assert next(early) == "a "
    early.close()

    turns = [s for s in global_tracing.spans() if s.name == "task"]
    assert [_attrs(s)["output.value"] for s in turns] == ["one two three ", "a "]
    assert all(s.status.status_code is StatusCode.UNSET for s in turns)
    chunks = [s for s in global_tracing.spans() if s.name == "chunk"]
    assert {c.parent.span_id for c in chunks[:3]} == {turns[0].context.span_id}  # type: ignore[union-attr]
    assert all(_attrs(c)["session.id"] == "s-g" for c in chunks)
    assert "output.value" not in _attrs(global_tracing.span("objects"))


def test_async_generators(global_tracing: Tracing) -> None:
    @task(input=from_arg("prompt"))
    async def stream(prompt: str) -> AsyncIterator[str]:
        for word in prompt.split():
            await asyncio.sleep(0)
            yield word

    async def main() -> list[str]:
        return [chunk async for chunk in stream("x y")]

    assert asyncio.run(main()) == ["x", "y"]
    assert _attrs(global_tracing.span("task"))["output.value"] == "xy"


def test_a_body_that_raises_marks_the_span_and_the_exception_propagates_unchanged(global_tracing: Tracing) -> None:
    error = ValueError("no answer")

    @task(input="q", name="decorated")
    def fails() -> None:
        raise error

    @task(name="stream")
    def fails_midway() -> Iterator[str]:
        yield "partial"
        raise KeyError("gone")

    with pytest.raises(ValueError, match="no answer") as raised:
        with task(input="q", name="with"):
            raise error
    assert raised.value is error
    with pytest.raises(ValueError, match="no answer") as raised:
        fails()
    assert raised.value is error
    with pytest.raises(KeyError):
        list(fails_midway())

    for name, kind in (("with", "ValueError"), ("decorated", "ValueError"), ("stream", "KeyError")):
        span = global_tracing.span(name)
        assert span.status.status_code is StatusCode.ERROR
        assert span.status.description is not None
        assert span.status.description.startswith(kind)
        (event,) = span.events
        assert event.name == "exception"
        assert (event.attributes or {})["exception.type"] == kind
    assert "output.value" not in _attrs(global_tracing.span("stream"))


def test_nested_tasks_inner_ids_win_metadata_merges_and_the_outer_values_come_back(global_tracing: Tracing) -> None:
    with task(input="outer", name="outer", session_id="s-1", user_id="u-1", metadata={"a": 1, "b": 1}, tags=["x"]):
        with task(input="inner", name="inner", user_id="u-2", metadata={"b": 2}, tags=["y"]) as inner:
            global_tracing.record("deep")
        global_tracing.record("after")

    outer, deep, after = global_tracing.span("outer"), global_tracing.span("deep"), global_tracing.span("inner")
    inner_span = global_tracing.span("inner")
    assert inner_span.parent.span_id == outer.context.span_id  # type: ignore[union-attr]
    assert deep.parent.span_id == inner_span.context.span_id  # type: ignore[union-attr]
    for span in (inner_span, deep):
        assert (_attrs(span)["session.id"], _attrs(span)["user.id"]) == ("s-1", "u-2")
        assert json.loads(_attrs(span)["metadata"]) == {"a": 1, "b": 2}
        assert _attrs(span)["tag.tags"] == ("x", "y")
    after = global_tracing.span("after")
    assert (_attrs(after)["user.id"], json.loads(_attrs(after)["metadata"])) == ("u-1", {"a": 1, "b": 1})
    assert _attrs(inner_span)["spanstamp.task.id"] == inner.id != _attrs(outer)["spanstamp.task.id"]


def test_a_task_inside_using_attributes_and_phosphos_special_metadata_keys(global_tracing: Tracing) -> None:
    with using_attributes(session_id="s-out", metadata={"system_prompt": "Be brief.", "tier": "pro"}):
        with task(input="q", metadata={"version_id": "1.4", "user_id": "u-meta"}):
            global_tracing.record("inside")

    turn = _attrs(global_tracing.span("task"))
    inside = _attrs(global_tracing.span("inside"))
    assert turn["session.id"] == inside["session.id"] == "s-out"
    assert turn["user.id"] == inside["user.id"] == "u-meta"  # phospho's user_id names the user
    assert json.loads(turn["metadata"]) == {
        "system_prompt": "Be brief.",
        "tier": "pro",
        "version_id": "1.4",
        "user_id": "u-meta",
    }
    assert json.loads(turn["gen_ai.system_instructions"]) == [{"type": "text", "content": "Be brief."}]
    assert turn["service.version"] == "1.4"
    assert "service.version" not in inside  # the turn's own attributes stay on the turn


def test_a_callers_task_id_seeds_the_span_id_and_the_trace_id_of_a_root(global_tracing: Tracing) -> None:
    with task(input="root", name="root", task_id="order-42") as root:
        pass
    with global_tracing.tracer.start_as_current_span("request"):
        with task(input="nested", name="nested", task_id=" order-43 ") as nested:
            pass
    assert (root.id, nested.id) == ("order-42", "order-43")
    seeded = span_context_of("order-42")
    assert _hex(global_tracing.span("root")) == (f"{seeded.trace_id:032x}", f"{seeded.span_id:016x}")
    request, nested_span = global_tracing.span("request"), global_tracing.span("nested")
    # Nested in a foreign trace, only the span id is seeded: the trace stays the request's.
    assert nested_span.context.trace_id == request.context.trace_id  # type: ignore[union-attr]
    assert nested_span.context.span_id == span_context_of("order-43").span_id  # type: ignore[union-attr]
    # Other spans of the provider keep their random ids.
    assert request.context.span_id != seeded.span_id  # type: ignore[union-attr]


def test_set_output_after_the_end_is_rejected_and_from_arg_in_a_with_block_too(
    global_tracing: Tracing, caplog: pytest.LogCaptureFixture
) -> None:
    with task(input="q") as t:
        pass
    with caplog.at_level(logging.WARNING, logger="spanstamp"):
        t.set_output("late")
        with task(input=from_arg("q")):
            pass
    assert "output.value" not in _attrs(global_tracing.spans()[0])
    messages = [r.getMessage() for r in caplog.records]
    assert any("set_output(output): the task has already ended" in m for m in messages)
    assert any(m.startswith("task: from_arg() values only apply") for m in messages)


def test_the_tracer_is_looked_up_per_task_so_a_provider_set_later_is_used() -> None:
    reset_trace_globals()
    try:
        with task(input="before any provider") as early:
            pass
        assert is_generated(early.id)  # an id all the same, linking nowhere
        later = Tracing()
        trace.set_tracer_provider(later.provider)
        with task(input="after", task_id="t-after"):
            pass
        (span,) = later.spans()
        assert _attrs(span)["input.value"] == "after"
        assert span.context.span_id == span_context_of("t-after").span_id  # type: ignore[union-attr]
    finally:
        reset_trace_globals()


def test_pydantic_models_and_dataclasses_are_recorded_as_their_fields(global_tracing: Tracing) -> None:
    from dataclasses import dataclass

    from openai.types.chat import ChatCompletionMessage

    @dataclass
    class Question:
        text: str
        lang: str

    @task(input=from_arg("question"))
    def answer(question: Question) -> ChatCompletionMessage:
        return ChatCompletionMessage(role="assistant", content=question.text.upper())

    answer(Question("hi", "en"))
    attrs = _attrs(global_tracing.span("task"))
    assert json.loads(attrs["input.value"]) == {"text": "hi", "lang": "en"}
    assert attrs["output.mime_type"] == "application/json"
    assert json.loads(attrs["output.value"])["content"] == "HI"
