"""One worker function run in several threads at once, its exceptions handed back to the test.

A helper module, not a test file: an exception in a plain thread only reaches pytest as a
warning, so the concurrency tests collect them here and assert there are none::

    errors = run_in_threads(work, range(4))  # work(0) .. work(3), each in its own thread
    assert errors == []
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import TypeVar

T = TypeVar("T")


def run_in_threads(work: Callable[[T], object], args: Iterable[T]) -> list[BaseException]:
    """Start a thread running ``work(arg)`` for each of ``args``, then join them all; what they raised.

    Example::

        assert run_in_threads(lambda n: tracing.record(f"span-{n}"), range(8)) == []
    """
    errors: list[BaseException] = []

    def guarded(arg: T) -> None:
        try:
            work(arg)
        except BaseException as exc:  # reported to the test thread
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(arg,)) for arg in args]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors
