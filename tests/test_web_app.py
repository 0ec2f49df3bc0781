"""A real FastAPI app on uvicorn: every span of every request's trace carries its ids.

The app (tests/web_stack.py) is instrumented by opentelemetry-instrumentation-fastapi (the
server span and ASGI's ``http receive`` / ``http send`` spans); its chat endpoint enters a scope
and a turn's span around the real ``openai`` client, traced by OpenInference's and
OpenTelemetry's openai-v2 instrumentors, against the examples' stub LLM. Spans go out
through ``spanstamp.configure()`` over OTLP/HTTP to the test's receiver. uvicorn runs in
a thread on a free loopback port and is stopped by the test.
"""

from __future__ import annotations

import spanstamp
from llm_stack import OPENAI_V2, OPENINFERENCE, instrumented, serve_stub
from otlp_receiver import OtlpHttpReceiver, ReceivedSpan
from spanstamp.attributes import (
    INPUT_MIME_TYPE,
    INPUT_VALUE,
    OUTPUT_MIME_TYPE,
    OUTPUT_VALUE,
    SESSION_ID,
    TASK_ID,
    USER_ID,
)
from web_stack import Sent, as_global, chat_app, send_all, serve, turns

REQUESTS = 30
SESSIONS = 10
# One request's trace: the server span and ASGI's (outside the handler's scope), the
# turn, OpenInference's and openai-v2's spans of the chat call.
SERVER_SPANS = ["POST /chat", "POST /chat http receive", "POST /chat http send", "POST /chat http send"]
REQUEST_SPANS = sorted([*SERVER_SPANS, "turn", OPENINFERENCE.span_name, OPENAI_V2.span_name])


def run(
    receiver: OtlpHttpReceiver, count: int, *, fill_traces: bool | None = None
) -> tuple[list[Sent], dict[str, list[ReceivedSpan]]]:
    """Send ``count`` concurrent turns through the app; the received spans by trace id."""
    options = {} if fill_traces is None else {"fill_traces": fill_traces}
    provider = spanstamp.configure(
        service_name="fastapi-chatbot",
        endpoint=receiver.traces_url,
        set_global=False,
        **options,  # type: ignore[arg-type]
    )
    try:
        with serve_stub() as stub_url, instrumented([OPENINFERENCE, OPENAI_V2], provider), as_global(provider):
            with serve(chat_app(provider, stub_url)) as base_url:
                sent = send_all(base_url, turns(count, SESSIONS))
        assert provider.force_flush(timeout_millis=20_000)
    finally:
        provider.shutdown()
    traces: dict[str, list[ReceivedSpan]] = {}
    for span in receiver.spans:
        traces.setdefault(span.trace_id, []).append(span)
    return sent, traces


def _turn_of(spans: list[ReceivedSpan]) -> ReceivedSpan:
    (found,) = [span for span in spans if TASK_ID in span.attributes]
    return found


def test_every_span_of_every_request_carries_its_session_and_user(http_receiver: OtlpHttpReceiver) -> None:
    sent, traces = run(http_receiver, REQUESTS)
    assert all(item.answer == f"You said: {item.turn.question}" for item in sent)
    by_task = {item.turn.task_id: item for item in sent}
    assert len(traces) == REQUESTS  # one trace per request, nothing else
    for spans in traces.values():
        item = by_task[_turn_of(spans).attributes[TASK_ID]]
        scopes = {span.scope_name for span in spans}
        assert {"opentelemetry.instrumentation.fastapi", OPENINFERENCE.scope_name, OPENAI_V2.scope_name} <= scopes
        assert sorted(span.name for span in spans) == REQUEST_SPANS
        for span in spans:
            where = f"{span.name!r} from {span.scope_name} in the trace of {item.turn.task_id}"
            assert span.attributes.get(SESSION_ID) == item.turn.session_id, where
            assert span.attributes.get(USER_ID) == item.turn.user_id, where
        # Phoenix reads a turn's input and output from the root: the server span.
        (root,) = [span for span in spans if span.parent_span_id is None]
        assert root.name == "POST /chat"
        assert (root.attributes[INPUT_VALUE], root.attributes[INPUT_MIME_TYPE]) == (item.turn.question, "text/plain")
        assert (root.attributes[OUTPUT_VALUE], root.attributes[OUTPUT_MIME_TYPE]) == (item.answer, "text/plain")


def test_without_filling_the_server_spans_have_no_ids(http_receiver: OtlpHttpReceiver) -> None:
    # The gap the filling closes, measured on the same app: only spans inside the scope have ids.
    _, traces = run(http_receiver, 3, fill_traces=False)
    spans = [span for trace in traces.values() for span in trace]
    bare = [span for span in spans if SESSION_ID not in span.attributes]
    assert {span.scope_name for span in bare} == {"opentelemetry.instrumentation.fastapi"}
    # 4 of the 7 spans of each request: the server span, http receive, both http sends.
    assert sorted(span.name for span in bare) == sorted(3 * SERVER_SPANS)
    assert all(INPUT_VALUE not in span.attributes for span in bare)
