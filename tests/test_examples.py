"""Every example runs offline, as a newcomer would run it, and shows stamped spans."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


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
