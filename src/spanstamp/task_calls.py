"""How a task decorates a function: each call runs as a turn, its return value the output.

Functions, coroutine functions, generators and async generators (a generator's span
starts at its first step and ends with its last; its str chunks, joined, are the output),
methods, and values taken from each call (``from_arg``). The task's scope stays outside
the span, so the span starts inside it and is stamped with it::

    @task(input=from_arg("question"))
    def answer(question: str) -> str: ...
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar, cast

from opentelemetry import trace

from spanstamp import checks
from spanstamp._runtime import attach, detach, get_current
from spanstamp.calls import ScopedFunction, arg_reader, create_in, from_arg, scoped_async_generator, scoped_generator
from spanstamp.task_run import Chunks, TaskRun, Values
from spanstamp.turn_values import io_value, json_text

if TYPE_CHECKING:
    from spanstamp.turns import Task

F = TypeVar("F", bound=Callable[..., Any])


def decorate(turn: Task, func: F) -> F:
    """``func``, each of its calls run as a turn of ``turn``: what ``turn(func)`` returns.

    answer = decorate(task(input=from_arg("question")), answer)
    """
    if isinstance(func, (classmethod, staticmethod)):
        return cast(F, type(func)(turn(func.__func__)))
    values_for = _values_reader(turn, func)
    if inspect.isasyncgenfunction(func):

        def async_gen_wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            return _async_generator(turn, wrapped, args, kwargs, values_for(instance, args, kwargs))

        inner = ScopedFunction(func, async_gen_wrapper)
    elif inspect.isgeneratorfunction(func):

        def gen_wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            return _generator(turn, wrapped, args, kwargs, values_for(instance, args, kwargs))

        inner = ScopedFunction(func, gen_wrapper)
    elif inspect.iscoroutinefunction(func):

        def async_wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            values = values_for(instance, args, kwargs)

            async def run() -> Any:
                return await _coroutine(turn, wrapped, args, kwargs, values)

            return run()

        inner = ScopedFunction(func, async_wrapper)
    else:

        def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            return _call(turn, wrapped, args, kwargs, values_for(instance, args, kwargs))

        inner = ScopedFunction(func, wrapper)
    # The scope outside the span: the span starts inside it, and is stamped with it.
    return cast(F, turn._scope(inner))


def _values_reader(turn: Task, func: Callable[..., Any]) -> Callable[[Any, Any, Any], Values]:
    """What one call's values are: the task's constants, with each ``from_arg`` read from the call."""
    constants = turn._constants()
    if not turn._from_call:
        return lambda instance, args, kwargs: constants
    fields = (
        ("input", turn._input, io_value),
        ("raw_input", turn._raw_input, json_text),
        ("task_id", turn._task_id, checks.check_id),
    )
    readers = [
        (where, arg_reader(spec, func, where), check)
        for name, spec, check in fields
        if type(spec) is from_arg
        for where in (f"task({name})",)
    ]

    def read(instance: Any, args: Any, kwargs: Any) -> Values:
        found: dict[str, Any] = {}
        for where, reader, check in readers:
            if reader is not None:
                found[where] = reader.take(instance, args, kwargs, where, check)
        return Values(
            found.get("task(input)", constants.input),
            found.get("task(raw_input)", constants.raw_input),
            found.get("task(task_id)", constants.task_id),
        )

    return read


@contextmanager
def _running(turn: Task, values: Values) -> Iterator[TaskRun]:
    # One call of a decorated function: its span current while the body runs, ended
    # (as an error, with the exception recorded, if the body raised) when it returns.
    run = turn._start(values)
    token = attach(trace.set_span_in_context(run.span, get_current()))
    error: BaseException | None = None
    try:
        yield run
    except BaseException as exc:
        error = exc
        raise
    finally:
        detach(token)
        run._end(error)


def _call(turn: Task, wrapped: Any, args: Any, kwargs: Any, values: Values) -> Any:
    with _running(turn, values) as run:
        result = wrapped(*args, **kwargs)
        run.set_output(result)
        return result


async def _coroutine(turn: Task, wrapped: Any, args: Any, kwargs: Any, values: Values) -> Any:
    with _running(turn, values) as run:
        result = await wrapped(*args, **kwargs)
        run.set_output(result)
        return result


def _generator(turn: Task, wrapped: Any, args: Any, kwargs: Any, values: Values) -> Any:
    # A generator itself: the span starts at the first step and ends with the last.
    run = turn._start(values)
    context = trace.set_span_in_context(run.span, get_current())
    chunks = Chunks()
    error: BaseException | None = None
    try:
        body = scoped_generator(create_in(context, wrapped, args, kwargs), context)
        item = body.send(None)
        while True:
            chunks.add(item)
            try:
                sent = yield item
            except GeneratorExit:
                body.close()
                raise
            except BaseException as exc:
                item = body.throw(exc)
            else:
                item = body.send(sent)
    except StopIteration as stop:
        return stop.value
    except BaseException as exc:
        error = exc
        raise
    finally:
        chunks.record(run, error)
        run._end(error)


async def _async_generator(turn: Task, wrapped: Any, args: Any, kwargs: Any, values: Values) -> Any:
    run = turn._start(values)
    context = trace.set_span_in_context(run.span, get_current())
    chunks = Chunks()
    error: BaseException | None = None
    try:
        body = scoped_async_generator(create_in(context, wrapped, args, kwargs), context)
        item = await body.asend(None)
        while True:
            chunks.add(item)
            try:
                sent = yield item
            except GeneratorExit:
                await body.aclose()
                raise
            except BaseException as exc:
                item = await body.athrow(exc)
            else:
                item = await body.asend(sent)
    except StopAsyncIteration:
        return
    except BaseException as exc:
        error = exc
        raise
    finally:
        chunks.record(run, error)
        run._end(error)
