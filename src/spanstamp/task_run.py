"""A running turn: the span a ``task()`` started and its id, and how a stream's output is kept.

with task(input=question) as run:     # a TaskRun
    run.set_output(answer)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from opentelemetry.context import Context
from opentelemetry.trace import Span, Status, StatusCode

from spanstamp import attributes as attr
from spanstamp import rules
from spanstamp.turn_values import io_value, json_text

if TYPE_CHECKING:
    from spanstamp.turns import Task


class TaskRun:
    """One run of a task: its span and id. ``with task(...) as t`` gives one.

    with task(input=question) as t:
        t.set_output(answer)
    """

    __slots__ = ("_outer", "_owner", "_token", "id", "span")

    def __init__(self, owner: Task, span: Span, task_id: str, outer: Context) -> None:
        self._owner = owner
        self._outer = outer
        self._token: Any = None
        self.span = span
        #: The task id (str): give it to :func:`~spanstamp.feedback` later, from any process.
        self.id = task_id

    def __repr__(self) -> str:
        return "<spanstamp task run>"

    def set_output(self, output: object, raw_output: object = None) -> None:
        """Record the turn's output (text for a str, JSON otherwise) and phospho's raw output.

        t.set_output(answer_text, raw_output=response.model_dump())
        """
        if not self.span.is_recording():
            if getattr(self.span, "end_time", None) is not None:
                rules.reject("set_output(output)", "the task has already ended")
            return
        found = io_value(output, "set_output(output)")
        if found is not None:
            self.span.set_attributes({attr.OUTPUT_VALUE: found[0], attr.OUTPUT_MIME_TYPE: found[1]})
        raw = json_text(raw_output, "set_output(raw_output)")
        if raw is not None:
            self.span.set_attribute(attr.TASK_RAW_OUTPUT, raw)

    def _end(self, error: BaseException | None) -> None:
        span = self.span
        try:
            if error is not None and not isinstance(error, GeneratorExit):
                # As the SDK's own start_as_current_span records a body's exception.
                span.record_exception(error)
                span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
            span.end()
        except Exception:  # nothing on the span path raises into the application
            rules.logger.debug("ending a task span failed", exc_info=True)


class Values:
    """A run's own values: input ``(text, mime type)``, raw input and the caller's task id, checked.

    Values(("hi", "text/plain"), None, "msg-1")
    """

    __slots__ = ("input", "raw_input", "task_id")

    def __init__(self, input: tuple[str, str] | None, raw_input: str | None, task_id: str | None) -> None:
        self.input = input
        self.raw_input = raw_input
        self.task_id = task_id


class Chunks:
    """A stream's str chunks, joined as its output; any other chunk means no output.

    chunks.add("Hel"); chunks.add("lo"); chunks.record(run, None)  # output "Hello"
    """

    __slots__ = ("parts",)

    def __init__(self) -> None:
        self.parts: list[str] | None = []

    def add(self, item: object) -> None:
        """Keep one chunk the stream sent."""
        if self.parts is not None:
            if isinstance(item, str):
                self.parts.append(item)
            else:
                self.parts = None  # not text: nothing is kept, however long the stream

    def record(self, run: TaskRun, error: BaseException | None) -> None:
        """Set the joined text as the turn's output, unless the stream failed."""
        # A stream closed early (GeneratorExit) still shows what it sent.
        if self.parts and (error is None or isinstance(error, GeneratorExit)):
            run.set_output("".join(self.parts))
