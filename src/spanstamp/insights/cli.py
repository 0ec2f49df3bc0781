"""``spanstamp insights``: the command line over files, a Phoenix project or ClickHouse.

spanstamp insights spans.jsonl --idle 30m
spanstamp insights traces/ --json > insights.json
spanstamp insights spans.jsonl --html report.html
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from spanstamp import rules

_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([smhd]?)\s*$", re.IGNORECASE)
_UNIT_S = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """Seconds from ``90s``, ``30m``, ``2h``, ``1d`` or plain seconds (``1800``).

    parse_duration("30m")   # 1800.0
    """
    match = _DURATION.match(text)
    if match is None:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (use e.g. 90s, 30m, 2h or seconds)")
    return float(match.group(1)) * _UNIT_S[match.group(2).lower()]


def _top(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"not a count >= 0: {text!r}")
    return value


def build_parser(prog: str = "spanstamp insights") -> argparse.ArgumentParser:
    """The ``insights`` command's arguments.

    args = build_parser().parse_args(["spans.jsonl", "--json"])
    """
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Sessions, turns, users and what ends sessions, from exported OTLP traces.",
    )
    parser.add_argument(
        "paths", nargs="*", metavar="PATH", help="OTLP JSON lines files, directories or globs (.gz too)"
    )
    parser.add_argument(
        "--idle",
        type=parse_duration,
        default=1800.0,
        metavar="DURATION",
        help="idle gap that splits visits and ends sessions: 90s, 30m, 2h or seconds (default 30m)",
    )
    parser.add_argument("--json", action="store_true", help="print the result document as JSON")
    parser.add_argument("--html", type=Path, metavar="FILE", help="also write a self-contained HTML report")
    parser.add_argument("--phoenix", metavar="URL", help="read the spans of a Phoenix project (with --project)")
    parser.add_argument("--project", metavar="NAME", help="the Phoenix project to read")
    parser.add_argument("--clickhouse", metavar="URL", help="run the insights in ClickHouse (table otel_traces)")
    parser.add_argument("--top", type=_top, default=20, metavar="N", help="users listed in users.top (default 20)")
    return parser


def main(argv: Sequence[str] | None = None, prog: str = "spanstamp insights") -> int:
    """Run the command; 0 when spans were read, 1 when nothing could be read, 2 for usage errors.

    raise SystemExit(main(["spans.jsonl", "--json"]))
    """
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    sources = [bool(args.paths), args.phoenix is not None, args.clickhouse is not None]
    if sum(sources) != 1:
        parser.error("give PATH... or --phoenix URL --project NAME or --clickhouse URL (exactly one source)")
    if (args.phoenix is None) != (args.project is None):
        parser.error("--phoenix and --project go together")
    _log_to_stderr()
    try:
        result = _result(args)
    except ImportError as error:
        print(f"spanstamp insights: {error} (pip install 'spanstamp[insights]')", file=sys.stderr)
        return 1
    except (OSError, ValueError, RuntimeError) as error:  # a server or file that cannot be read
        print(f"spanstamp insights: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    if args.html is not None:
        args.html.write_text(_render("report_html", result), encoding="utf-8")
    print(json.dumps(result, indent=2, ensure_ascii=False) if args.json else _render("report_text", result))
    return 0 if result.get("spans") else 1


def _result(args: argparse.Namespace) -> dict[str, Any]:
    from spanstamp.insights.api import analyze

    if args.clickhouse is not None:
        from spanstamp.insights import clickhouse

        result: dict[str, Any] = clickhouse.analyze_clickhouse(args.clickhouse, idle_s=args.idle, top=args.top)
        return result
    if args.phoenix is not None:
        from spanstamp.insights import phoenix

        with tempfile.TemporaryDirectory(prefix="spanstamp-phoenix-") as tmp:
            path = phoenix.download(args.phoenix, args.project, Path(tmp) / "spans.jsonl", progress=True)
            return analyze([path], idle_s=args.idle, top=args.top)
    return analyze(args.paths, idle_s=args.idle, top=args.top)


def _render(module: str, result: dict[str, Any]) -> str:
    # The report modules come from their own helper; until they exist, pretty JSON stands in.
    import importlib

    try:
        report = importlib.import_module(f"spanstamp.insights.{module}")
    except ImportError:
        return json.dumps(result, indent=2, ensure_ascii=False)
    text: str = report.render(result)
    return text


def _log_to_stderr() -> None:
    # The warnings about skipped input go to stderr, each on one line, whatever the app's logging.
    if not rules.logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("warning: %(message)s"))
        rules.logger.addHandler(handler)
