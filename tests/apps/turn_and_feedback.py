"""Two roles, run as two processes: one answers turns, the other gives feedback later.

    python turn_and_feedback.py turns <traces url>             # prints the task ids as JSON
    python turn_and_feedback.py feedback <traces url> <ids JSON>

Both export over OTLP/HTTP to the given URL (the test's receiver). The feedback process
knows nothing but the ids it is given.
"""

from __future__ import annotations

import json
import sys

from opentelemetry import trace

import spanstamp


def turns() -> dict[str, str]:
    tracer = trace.get_tracer("app")
    ids = {}
    # The common web setup: the turn inside a server's request span (a foreign trace id).
    with tracer.start_as_current_span("POST /chat"), spanstamp.task(input="hi", session_id="s-1") as t:
        t.set_output("hello")
    ids["generated_in_request"] = t.id
    # A caller's own id on a turn that starts its trace: both ids are seeded from it.
    with spanstamp.task(input="again", session_id="s-1", task_id="message-7") as t:
        t.set_output("hello again")
    ids["caller_at_root"] = t.id
    # A caller's own id inside a request span: only the span id can be seeded.
    with tracer.start_as_current_span("POST /chat"), spanstamp.task(input="third", task_id="message-8") as t:
        t.set_output("third answer")
    ids["caller_in_request"] = t.id
    return ids


def give_feedback(ids: dict[str, str]) -> None:
    for case, task_id in ids.items():
        spanstamp.feedback(task_id, score=1, label="thumbs_up", explanation=case, session_id="s-1", user_id="u-1")


def main() -> None:
    role, url = sys.argv[1], sys.argv[2]
    provider = spanstamp.configure(service_name=f"app-{role}", endpoint=url, batch=False)
    try:
        if role == "turns":
            print(json.dumps(turns()))
        else:
            give_feedback(json.loads(sys.argv[3]))
    finally:
        provider.shutdown()


if __name__ == "__main__":
    main()
