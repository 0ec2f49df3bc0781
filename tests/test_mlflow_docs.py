"""docs/mlflow.md stays true: its test command is the one tests/test_mlflow.py documents and runs.

Runs in the default suite, where tests/test_mlflow.py itself is skipped without ``mlflow``.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGE = (ROOT / "docs" / "mlflow.md").read_text()


def test_the_mlflow_command_is_the_one_the_mlflow_test_documents() -> None:
    lines = [line for block in re.findall(r"```bash\n(.*?)```", PAGE, re.S) for line in block.splitlines()]
    (command,) = [line for line in lines if "pytest" in line]
    assert command.endswith("-m mlflow_e2e")
    assert '".[test,mlflow]"' in command
    # The test's docstring wraps the command with a backslash continuation.
    documented = re.sub(r" *\\\\\n *", " ", (ROOT / "tests" / "test_mlflow.py").read_text())
    assert command in documented


def test_the_marker_and_the_extra_the_command_needs_exist() -> None:
    # Read as text: tomllib is Python 3.11+, and the suite runs on 3.10 too.
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'^    "mlflow_e2e: ', pyproject, re.M)
    assert re.search(r'^mlflow = \[\n    "mlflow>=', pyproject, re.M)
