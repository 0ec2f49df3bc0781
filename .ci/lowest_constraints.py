"""Print pip constraints that pin each runtime dependency to its declared lower bound.

    python3 .ci/lowest_constraints.py > lowest.txt     # opentelemetry-api==1.26 ...

Read from pyproject.toml's [project] dependencies, so the bounds tested are the bounds
declared. A dependency without a ">=" lower bound is an error: then there is nothing to test.
Needs Python 3.11+ (tomllib), which runs CI.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import tomllib

_LOWER = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*(?:[^;]*?,\s*)?>=\s*([^,;\s]+)")


def main() -> int:
    """Print one ``name==lower-bound`` line per runtime dependency; 0 when all have a bound."""
    pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
    dependencies = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["dependencies"]
    for requirement in dependencies:
        match = _LOWER.match(requirement)
        if match is None:
            print(f"error: {requirement!r} declares no '>=' lower bound", file=sys.stderr)
            return 1
        print(f"{match.group(1)}=={match.group(2)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
