"""Every example runs offline, as a newcomer would run it, and shows stamped spans."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from chatbot_run import run_chatbot, sessions_by_user
from otlp_receiver import OtlpHttpReceiver
from servers import clean_env

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
# The last message of each conversation in examples/chatbot.py.
CONVERSATIONS_LAST = {"ada": "What should I pack?", "grace": "Thanks, that's all for today."}


def _run(name: str) -> list[tuple[str, str, str]]:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name)], capture_output=True, text=True, timeout=120, cwd=EXAMPLES.parent
    )
    assert result.returncode == 0, result.stderr
    return re.findall(r"^span '([^']+)'\s+session\.id=(\S+)\s+user\.id=(\S+)$", result.stdout, re.M)


def test_quickstart_stamps_the_instrumented_openai_call_and_the_app_span() -> None:
    spans = _run("quickstart.py")
    assert [name for name, _, _ in spans] == ["ChatCompletion", "turn", "ChatCompletion", "turn"]
    sessions = {session for _, session, _ in spans}
    assert len(sessions) == 1
    assert re.fullmatch(r"[0-9a-f-]{36}", sessions.pop())
    assert {user for _, _, user in spans} == {"user-42"}


def test_decorated_handler_takes_ids_from_each_call() -> None:
    spans = _run("decorated_handler.py")
    assert spans == [
        ("retrieve", "conv-1", "user-a"),
        ("generate", "conv-1", "user-a"),
        ("retrieve", "conv-2", "user-b"),
        ("generate", "conv-2", "user-b"),
    ]


def test_existing_pipeline_gets_stamping_from_one_line() -> None:
    spans = _run("existing_pipeline.py")
    assert spans == [("agent-step", "conv-7", "user-c"), ("outside-any-session", "None", "None")]


def test_chatbot_sends_two_sessions_of_chat_turns_over_otlp(http_receiver: OtlpHttpReceiver) -> None:
    # As in the README's Phoenix section, but exporting to the test's receiver; the LLM is the stub.
    env = clean_env("OTEL_", "OPENAI_", "PHOENIX_")
    env |= {"OTEL_EXPORTER_OTLP_ENDPOINT": http_receiver.url, "PHOENIX_PROJECT_NAME": "chatbot-test"}
    result = run_chatbot(env)
    assert result.returncode == 0, result.stderr
    users = sessions_by_user(result.stdout)
    assert sorted(users) == ["ada", "grace"]
    assert users["ada"] != users["grace"]

    spans = http_receiver.spans
    turns = [span for span in spans if span.name == "chat turn"]
    # One trace per turn, its root the turn span, the instrumented OpenAI call below it.
    assert len(turns) == 7
    assert len({turn.trace_id for turn in turns}) == 7
    assert all(turn.parent_span_id is None for turn in turns)
    for turn in turns:
        others = [span for span in spans if span.trace_id == turn.trace_id and span is not turn]
        (llm,) = [span for span in others if span.name != "feedback"]
        assert (llm.name, llm.parent_span_id) == ("ChatCompletion", turn.span_id)
        for span in (turn, llm):
            assert span.resource["openinference.project.name"] == "chatbot-test"
            assert span.attributes["session.id"] == users[span.attributes["user.id"]]
        assert turn.attributes["openinference.span.kind"] == "CHAIN"
        assert turn.attributes["output.value"] == f"You said: {turn.attributes['input.value']}"
    by_user = {user: [t.attributes["input.value"] for t in turns if t.attributes["user.id"] == user] for user in users}
    assert by_user["ada"][0] == "Hi, I'm Ada. Can you help me plan a weekend trip?"
    assert [len(by_user["ada"]), len(by_user["grace"])] == [3, 4]
    assert by_user["grace"][-1] == "Thanks, that's all for today."

    # Each user's feedback on the last turn: a child of that turn's span, linked to it.
    feedbacks = {span.attributes["user.id"]: span for span in spans if span.name == "feedback"}
    assert sorted(feedbacks) == ["ada", "grace"]
    for user, carrier in feedbacks.items():
        (last,) = [t for t in turns if t.attributes["input.value"] == CONVERSATIONS_LAST[user]]
        assert carrier.links == ((last.trace_id, last.span_id),)
        assert carrier.parent_span_id == last.span_id
        assert carrier.attributes["gen_ai.evaluation.score.label"] == "thumbs_up"
        assert carrier.attributes["session.id"] == users[user]
    # The lifecycle: one session.start and one session.end per session, on spans of their own.
    for name in ("session.start", "session.end"):
        events = sorted(event[1]["session.id"] for span in spans if span.name == name for event in span.events)
        assert events == sorted(users.values())
