"""Turns: ``task()`` starts one span for a question and its answer, and scopes everything inside.

The span carries what Phoenix and OpenInference read (span kind, input and output with
their mime types) and the task id; session, user, metadata and tags are a
:class:`~spanstamp.scope.Scope`, so they reach every span started inside::

    with task(input=question, session_id=sid, user_id=uid) as t:
        t.set_output(answer)
    feedback(t.id, score=1)

It is also a decorator (functions, coroutines, generators, async generators; how each
call runs as a turn is in :mod:`spanstamp.task_calls`)::

    @task(input=from_arg("question"))
    async def answer(question: str) -> str: ...
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final, TypeVar

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span

from spanstamp import attributes as attr
from spanstamp import checks, rules, task_ids
from spanstamp._runtime import attach, detach, get_current
from spanstamp.calls import from_arg
from spanstamp.fields import METADATA, SESSION, TAGS, USER, IdValue, MappingValue
from spanstamp.scope import Scope
from spanstamp.task_calls import decorate
from spanstamp.task_run import TaskRun, Values
from spanstamp.turn_values import check_kind, check_name, io_value, json_text, special_metadata

F = TypeVar("F", bound=Callable[..., Any])

_SCOPE_ARGS: Final = (
    (SESSION, "task(session_id)"),
    (USER, "task(user_id)"),
    (METADATA, "task(metadata)"),
    (TAGS, "task(tags)"),
)
# The current context of a running ``with task(...)`` holds its run under this key.
_RUN_KEY: Final = "spanstamp.task-run"


class Task:
    """A turn: a span of its own and a scope for everything inside. Build one with :func:`task`.

    with task(input=question) as t:
        t.set_output(answer)
    """

    __slots__ = ("_from_call", "_input", "_kind", "_last", "_name", "_raw_input", "_scope", "_task_id")

    def __init__(
        self,
        input: object,
        name: object,
        scope: Scope,
        raw_input: object,
        task_id: object,
        kind: object,
    ) -> None:
        self._name = check_name(name)
        self._kind = check_kind(kind)
        self._scope = scope
        self._input: Any = input if type(input) is from_arg else io_value(input, "task(input)")
        self._raw_input: Any = raw_input if type(raw_input) is from_arg else json_text(raw_input, "task(raw_input)")
        self._task_id: Any = task_id if type(task_id) is from_arg else checks.check_id(task_id, "task(task_id)")
        self._from_call = any(type(value) is from_arg for value in (input, raw_input, task_id))
        self._last: TaskRun | None = None

    def __repr__(self) -> str:
        return f"<spanstamp task {self._name!r}>"

    def _constants(self) -> Values:
        def constant(value: Any) -> Any:
            return None if type(value) is from_arg else value

        return Values(constant(self._input), constant(self._raw_input), constant(self._task_id))

    def _start(self, values: Values) -> TaskRun:
        """Start the task's span in the current context (the scope is already entered)."""
        outer = get_current()
        attributes: dict[str, Any] = {attr.SPAN_KIND: self._kind}
        if values.input is not None:
            attributes[attr.INPUT_VALUE], attributes[attr.INPUT_MIME_TYPE] = values.input
        if values.raw_input is not None:
            attributes[attr.TASK_RAW_INPUT] = values.raw_input
        attributes.update(special_metadata(outer))
        caller = values.task_id
        if caller is not None:
            attributes[attr.TASK_ID] = caller
        span: Span
        try:
            tracer = task_ids.tracer()
            if caller is not None and task_ids.can_seed(tracer):
                with task_ids.seeded_ids(task_ids.span_context_of(caller)):
                    span = tracer.start_span(self._name, attributes=attributes)
            else:
                span = tracer.start_span(self._name, attributes=attributes)
        except Exception:  # a broken pipeline must not break the turn itself
            rules.logger.debug("starting a task span failed", exc_info=True)
            span = trace.INVALID_SPAN
        task_id = caller
        if task_id is None:
            context = span.get_span_context()
            task_id = task_ids.encode(context.trace_id, context.span_id) if context.is_valid else task_ids.random_id()
            span.set_attribute(attr.TASK_ID, task_id)
        return TaskRun(self, span, task_id, outer)

    # --- with / async with ---

    def __enter__(self) -> TaskRun:
        if self._from_call:
            rules.reject("task", "from_arg() values only apply when the task decorates a function")
        self._scope.__enter__()
        run = self._start(self._constants())
        context = trace.set_span_in_context(run.span, get_current())
        run._token = attach(Context({**context, _RUN_KEY: run}))
        self._last = run
        return run

    def __exit__(self, exc_type: object, exc: BaseException | None, traceback: object) -> None:
        run = get_current().get(_RUN_KEY)
        while isinstance(run, TaskRun) and run._owner is not self:
            run = run._outer.get(_RUN_KEY)
        if not isinstance(run, TaskRun):
            run = self._last  # the body left a Context of its own attached
        if run is not None:
            if self._last is run:
                self._last = None
            detach(run._token)
            run._end(exc)
        self._scope.__exit__(exc_type, exc, traceback)

    async def __aenter__(self) -> TaskRun:
        return self.__enter__()

    async def __aexit__(self, exc_type: object, exc: BaseException | None, traceback: object) -> None:
        self.__exit__(exc_type, exc, traceback)

    # --- decorator ---

    def __call__(self, func: F) -> F:
        """Run every call of ``func`` as a task; its return value (or str chunks) is the output."""
        return decorate(self, func)


def task(
    input: object = None,
    *,
    name: str = "task",
    session_id: IdValue = None,
    user_id: IdValue = None,
    metadata: MappingValue = None,
    tags: Sequence[str] | from_arg | None = None,
    raw_input: object = None,
    task_id: str | int | from_arg | None = None,
    kind: str = "CHAIN",
) -> Task:
    """One turn (phospho's task): a span with its input and output, and a scope for everything inside.

    ``with`` / ``async with`` give a :class:`TaskRun` (``.id``, ``.set_output()``); as a
    decorator the return value is the output. ``task_id`` is the caller's own id (feedback
    can then name it without keeping ours); ``kind`` is the OpenInference span kind::

        with task(input=question, session_id=sid, user_id=uid, metadata={"version_id": "1.4"}) as t:
            t.set_output(answer)
    """
    scope = Scope("task", _SCOPE_ARGS, (session_id, user_id, metadata, tags))
    return Task(input, name, scope, raw_input, task_id, kind)
