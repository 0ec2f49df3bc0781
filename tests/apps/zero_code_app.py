"""An application with no tracing code, run under ``opentelemetry-instrument`` by tests/test_zero_code.py.

It calls the real OpenAI client against the offline stub (examples/stub_llm.py) once
inside a session and user scope and once outside, then prints what the global provider
is as JSON. opentelemetry-instrument supplies the pipeline and the instrumentors::

    SPANSTAMP_AUTO_INSTALL=true opentelemetry-instrument python tests/apps/zero_code_app.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))

from openai import OpenAI
from opentelemetry import trace

import spanstamp
from stub_llm import serve_stub


def main() -> None:
    with serve_stub() as base_url:
        client = OpenAI(base_url=base_url, api_key="offline", max_retries=0)
        with spanstamp.using_session("conv-zero"), spanstamp.using_user("user-zero"):
            client.chat.completions.create(model="stub", messages=[{"role": "user", "content": "inside"}])
        client.chat.completions.create(model="stub", messages=[{"role": "user", "content": "outside"}])
    provider = trace.get_tracer_provider()
    flush = getattr(provider, "force_flush", None)
    flushed = flush() if callable(flush) else None
    print(json.dumps({"provider": type(provider).__name__, "flushed": flushed}))


if __name__ == "__main__":
    main()
