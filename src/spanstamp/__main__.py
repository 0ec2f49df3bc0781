"""``python -m spanstamp insights ...``: the command line (also installed as ``spanstamp``).

python -m spanstamp insights spans.jsonl --json
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

_USAGE = "usage: spanstamp insights PATH... [--idle 30m] [--json] [--html FILE] [--top N]\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch to a subcommand (only ``insights`` exists).

    raise SystemExit(main(["insights", "spans.jsonl"]))
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        sys.stdout.write(_USAGE) if args else sys.stderr.write(_USAGE)
        return 0 if args else 2
    if args[0] != "insights":
        sys.stderr.write(_USAGE + f"spanstamp: unknown command {args[0]!r}\n")
        return 2
    from spanstamp.insights.cli import main as insights

    return insights(args[1:])


if __name__ == "__main__":
    raise SystemExit(main())
