"""examples/chatbot.py run as a newcomer runs it, and what it prints about its sessions.

A helper module, not a test file: tests/test_examples.py, tests/test_phoenix.py and
tests/test_mlflow.py run the example against their backend and check its output::

    result = run_chatbot(env)
    assert result.returncode == 0, result.stderr
    session_of = sessions_by_user(result.stdout)  # {"ada": "<session id>", "grace": ...}
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_chatbot(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run examples/chatbot.py from the repository root with ``env``; its exit code and output, unchecked.

    Example::

        result = run_chatbot(clean_env("OTEL_") | {"OTEL_EXPORTER_OTLP_ENDPOINT": url})
    """
    return subprocess.run(
        [sys.executable, str(ROOT / "examples" / "chatbot.py")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=env,
    )


def sessions_by_user(stdout: str) -> dict[str, str]:
    """The session id the example printed for each user (its ``session <id> user <user>: N turns`` lines).

    Example::

        assert sorted(sessions_by_user(result.stdout)) == ["ada", "grace"]
    """
    return {user: sid for sid, user in re.findall(r"^session (\S+) user (\S+): \d+ turns$", stdout, re.M)}
