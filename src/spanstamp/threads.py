"""Carrying the current scopes into threads and thread pools.

asyncio tasks, ``gather`` and ``asyncio.to_thread`` carry the Context by themselves;
``ThreadPoolExecutor.submit`` and ``threading.Thread`` start from an empty one::

    with using_session(conversation_id):
        pool.submit(carry_context(retrieve), query)
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


def carry_context(func: Callable[P, R]) -> Callable[P, R]:
    """Return ``func`` bound to the context current now (all context variables, OTel's too).

    Each call runs in its own copy of that context, so one wrapped function may run in
    many threads at once (``pool.map(carry_context(f), items)``)::

        threading.Thread(target=carry_context(worker), args=(job,)).start()
    """
    snapshot = contextvars.copy_context()

    @functools.wraps(func)
    def run_in_snapshot(*args: P.args, **kwargs: P.kwargs) -> R:
        return snapshot.copy().run(func, *args, **kwargs)

    return run_in_snapshot
