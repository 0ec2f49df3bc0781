"""The README stays true: its commands are the ones CI and the examples run, its quickstart works.

Every Python block of README.md and docs/ also runs in the suite itself (Sybil, see
conftest.py at the root); here the quickstart runs once more, as a user would run it: alone,
in a fresh interpreter, with nothing but the environment a user sets.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from sybil import Sybil
from sybil.parsers.markdown import CodeBlockParser

from llm_stack import serve_stub
from otlp_receiver import OtlpHttpReceiver

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
PHOENIX_PAGE = (ROOT / "docs" / "phoenix.md").read_text()


def _bash_lines(text: str) -> list[str]:
    return [line for block in re.findall(r"```bash\n(.*?)```", text, re.S) for line in block.splitlines()]


def _python_blocks(path: Path) -> list[str]:
    # The blocks exactly as Sybil finds and runs them.
    document = Sybil(parsers=[CodeBlockParser("python")]).parse(path)
    return [str(example.parsed) for example in document.examples()]


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    (test_command,) = [line for line in _bash_lines(README) if "pytest" in line]
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test_command in ci_lines


def test_the_phoenix_command_is_the_one_the_phoenix_test_documents() -> None:
    (phoenix_command,) = [line for line in _bash_lines(PHOENIX_PAGE) if "pytest" in line]
    assert phoenix_command.endswith("-m phoenix_e2e")
    # The test's docstring wraps the command with a backslash continuation.
    documented = re.sub(r" *\\\\\n *", " ", (ROOT / "tests" / "test_phoenix.py").read_text())
    assert phoenix_command in documented


def test_the_quickstart_command_runs_the_tested_example() -> None:
    (quickstart,) = [line for line in _bash_lines(README) if "quickstart" in line]
    assert quickstart.endswith(".venv/bin/python examples/quickstart.py")
    assert ".[examples]" in quickstart
    assert (ROOT / "examples" / "quickstart.py").is_file()


def test_the_quickstart_snippet_as_written_exports_spans_with_session_and_user(
    http_receiver: OtlpHttpReceiver, tmp_path: Path
) -> None:
    quickstart = _python_blocks(ROOT / "README.md")[0]
    assert "spanstamp.configure(" in quickstart  # the README's first block is the quickstart
    script = tmp_path / "quickstart.py"
    script.write_text(quickstart)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "OPENAI_", "SPANSTAMP_"))}
    with serve_stub() as base_url:
        # What a user sets; the stub stands in for the LLM, the receiver for the backend.
        env |= {
            "OPENAI_BASE_URL": base_url,
            "OPENAI_API_KEY": "offline",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": http_receiver.traces_url,
        }
        result = subprocess.run(
            [sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env
        )
    assert result.returncode == 0, result.stderr
    # The batch processor is flushed at exit: the spans are in once the process is gone.
    spans = http_receiver.spans
    assert "ChatCompletion" in [span.name for span in spans]  # OpenInference's span of the OpenAI call
    (session_id,) = {span.attributes.get("session.id") for span in spans}
    assert re.fullmatch(r"[0-9a-f-]{36}", session_id)
    assert {span.attributes.get("user.id") for span in spans} == {"user-42"}
    assert {span.resource["service.name"] for span in spans} == {"chatbot"}
