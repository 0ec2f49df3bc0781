"""The scope cases bench_overhead.py times: using_attributes, decorators, nested metadata, tags.

Each pairs spanstamp's scope with OpenInference's for the same job; a batch function
runs the operation ``n`` times in a tight loop.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import openinference.instrumentation as oi

import spanstamp
from _bench_cases import SESSION_ID, USER_ID
from _bench_stats import Batch, Case

# Nested metadata: each level names the same three keys (a later level's value wins when
# merged) and one of its own, so the merged metadata grows by one key per level.
DEPTH = 20
METADATA_LEVELS = [
    {"tenant": "acme", "route": "/chat", "step": f"step-{level}", f"level_{level}": level} for level in range(DEPTH)
]
TAGS = [f"tag-{number}" for number in range(100)]


def scope_batch(using_attributes: Callable[..., AbstractContextManager[Any]]) -> Batch:
    def run(n: int) -> None:
        for _ in range(n):
            with using_attributes(session_id=SESSION_ID, user_id=USER_ID):
                pass

    return run


def reused_scope_batch(scope: AbstractContextManager[Any]) -> Batch:
    """Enter and exit one scope object built beforehand: the Context work alone."""

    def run(n: int) -> None:
        for _ in range(n):
            with scope:
                pass

    return run


def nested_metadata_batch(using_metadata: Callable[[dict[str, Any]], Any], depth: int) -> Batch:
    """``depth`` metadata scopes, each built (from a fresh dict, as a literal would be) and
    entered inside the one before, then all left: what ``depth`` nested ``with`` do."""
    levels = METADATA_LEVELS[:depth]

    def run(n: int) -> None:
        for _ in range(n):
            entered = []
            for values in levels:
                scope = using_metadata(dict(values))
                scope.__enter__()
                entered.append(scope)
            for scope in reversed(entered):
                scope.__exit__(None, None, None)

    return run


def tags_batch(using_tags: Callable[[list[str]], AbstractContextManager[Any]]) -> Batch:
    def run(n: int) -> None:
        for _ in range(n):
            with using_tags(list(TAGS)):  # a fresh list each time, as a literal would be
                pass

    return run


def call_batch(func: Callable[[], object]) -> Batch:
    def run(n: int) -> None:
        for _ in range(n):
            func()

    return run


def plain() -> None:
    return None


@spanstamp.using_session(SESSION_ID)
def decorated() -> None:
    return None


@oi.using_session(SESSION_ID)
def oi_decorated() -> None:
    return None


def scope_cases() -> list[Case]:
    return [
        Case(
            "scope_enter_exit",
            "with spanstamp.using_attributes(session, user): pass",
            scope_batch(spanstamp.using_attributes),
        ),
        Case(
            "oi_scope_enter_exit",
            "with openinference using_attributes(session, user): pass",
            scope_batch(oi.using_attributes),
        ),
        Case(
            "scope_reused",
            "with scope: pass, one spanstamp scope built beforehand",
            reused_scope_batch(spanstamp.using_attributes(session_id=SESSION_ID, user_id=USER_ID)),
        ),
        Case(
            "oi_scope_reused",
            "with scope: pass, one openinference scope built beforehand",
            reused_scope_batch(oi.using_attributes(session_id=SESSION_ID, user_id=USER_ID)),
        ),
        Case("decorated_call", "call via @spanstamp.using_session", call_batch(decorated)),
        Case("oi_decorated_call", "call via @openinference using_session", call_batch(oi_decorated)),
        Case("plain_call", "undecorated call", call_batch(plain)),
        Case(
            "metadata_1",
            "spanstamp using_metadata, 1 level",
            nested_metadata_batch(spanstamp.using_metadata, 1),
            scale=2,
        ),
        Case(
            "metadata_10",
            "spanstamp using_metadata, 10 nested (merging)",
            nested_metadata_batch(spanstamp.using_metadata, 10),
            scale=20,
        ),
        Case(
            f"metadata_{DEPTH}",
            f"spanstamp using_metadata, {DEPTH} nested (merging)",
            nested_metadata_batch(spanstamp.using_metadata, DEPTH),
            scale=40,
        ),
        Case(
            "oi_metadata_1",
            "openinference using_metadata, 1 level",
            nested_metadata_batch(oi.using_metadata, 1),
            scale=2,
        ),
        Case(
            f"oi_metadata_{DEPTH}",
            f"openinference using_metadata, {DEPTH} nested (replacing)",
            nested_metadata_batch(oi.using_metadata, DEPTH),
            scale=40,
        ),
        Case("tags_100", "with spanstamp.using_tags(100 tags): pass", tags_batch(spanstamp.using_tags), scale=4),
        Case("oi_tags_100", "with openinference using_tags(100 tags): pass", tags_batch(oi.using_tags), scale=4),
    ]
