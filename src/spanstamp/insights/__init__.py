"""Session and user insights from exported traces (the ``insights`` extra: DuckDB).

from spanstamp.insights import analyze
result = analyze(["spans.jsonl"])
"""

from spanstamp.insights.api import analyze

__all__ = ["analyze"]
