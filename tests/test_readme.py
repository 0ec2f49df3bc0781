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


def test_the_insights_commands_run_as_written(tmp_path: Path) -> None:
    # The README's three insights lines, run in a fresh directory: the chatbot example writes its
    # spans to a file (no server anywhere), `spanstamp insights` reads it and writes the page.
    start = README.index("## Insights")
    (install, app, insights, browser) = _bash_lines(README[start : README.index("\n## ", start + 1)])
    assert ".[examples,insights,json-file]" in install
    assert browser.endswith("-m webbrowser report.html")  # opens the page; not run here
    bin_dir = Path(sys.executable).parent
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "OPENAI_", "SPANSTAMP_"))}
    for line in (app, insights):
        command = line.split("#")[0].replace(".venv/bin/", f"{bin_dir}/").replace("examples/", f"{ROOT}/examples/")
        result = subprocess.run(
            command, shell=True, capture_output=True, text=True, timeout=180, cwd=tmp_path, env=env, check=False
        )
        assert result.returncode == 0, (command, result.stderr)
    # The chatbot's two users, one session each, both ended by end_session().
    assert re.search(r"^  sessions +2$", result.stdout, re.M), result.stdout
    assert re.search(r"^  ended +2 ", result.stdout, re.M), result.stdout
    page = (tmp_path / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert page.count("<svg") >= 5
