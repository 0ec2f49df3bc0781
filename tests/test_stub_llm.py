"""The examples' stub LLM holds as many concurrent clients as the web-app tests send it.

Real ``openai`` clients, each in its own thread, all released at once against the stub.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from openai import OpenAI

from llm_stack import STUB_MODEL, serve_stub

CLIENTS = 50


def test_fifty_concurrent_openai_clients_all_get_answers() -> None:
    start = threading.Barrier(CLIENTS)

    def ask(number: int, base_url: str) -> str:
        # A client each, so each opens its own connection; no retries hide a refused one.
        client = OpenAI(base_url=base_url, api_key="offline", max_retries=0)
        try:
            start.wait()
            completion = client.chat.completions.create(
                model=STUB_MODEL, messages=[{"role": "user", "content": f"question {number}"}]
            )
            return completion.choices[0].message.content or ""
        finally:
            client.close()

    with serve_stub() as base_url, ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        answers = list(pool.map(ask, range(CLIENTS), [base_url] * CLIENTS))
    assert answers == [f"You said: question {number}" for number in range(CLIENTS)]
