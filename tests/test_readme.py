"""The README stays true: its commands are the ones CI and the examples run, its code compiles."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def _bash_lines() -> list[str]:
    return [line for block in re.findall(r"```bash\n(.*?)```", README, re.S) for line in block.splitlines()]


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    (test_command,) = [line for line in _bash_lines() if "pytest" in line and "phoenix" not in line]
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test_command in ci_lines


def test_the_phoenix_command_is_the_one_the_phoenix_test_documents() -> None:
    (phoenix_command,) = [line for line in _bash_lines() if "pytest" in line and "phoenix" in line]
    assert phoenix_command.endswith("-m phoenix_e2e")
    # The test's docstring wraps the command with a backslash continuation.
    documented = re.sub(r" *\\\\\n *", " ", (ROOT / "tests" / "test_phoenix.py").read_text())
    assert phoenix_command in documented


def test_the_quickstart_command_runs_the_tested_example() -> None:
    (quickstart,) = [line for line in _bash_lines() if "quickstart" in line]
    assert quickstart.endswith(".venv/bin/python examples/quickstart.py")
    assert ".[examples]" in quickstart
    assert (ROOT / "examples" / "quickstart.py").is_file()


def test_every_python_block_in_the_readme_compiles() -> None:
    blocks = re.findall(r"```python\n(.*?)```", README, re.S)
    assert len(blocks) >= 5
    for block in blocks:
        # Snippets may use `...` bodies and names defined by the reader's app.
        compile(block, "README.md", "exec")
