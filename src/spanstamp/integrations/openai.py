"""The end user an OpenAI request already names becomes the user id of that call's spans.

OpenAI requests can carry the end user (``safety_identifier=``, formerly ``user=``).
With ``SessionSpanProcessor(openai_user_ids=True)`` (or ``SPANSTAMP_OPENAI_USER_IDS=1``)
that value is the user id of the call's spans when no user id is in force already: an
explicit ``using_user`` (or a user id a scope's metadata names) wins::

    configure(openai_user_ids=True)
    client.chat.completions.create(model=m, messages=msgs, safety_identifier=user_id)

It wraps ``create`` of chat completions and responses, sync and async. The call runs in
a user scope, so every span started inside it (OpenInference's, httpx's) is stamped. An
instrumentor that wrapped ``create`` after spanstamp did has already started its span
when the scope begins; that span, found as the current one, is stamped too. So either
setup order works.
"""

from __future__ import annotations

import importlib
import threading
import weakref
from typing import TYPE_CHECKING, Any, Final

import wrapt
from opentelemetry.trace import get_current_span

from spanstamp import rules
from spanstamp.context import current_user_id
from spanstamp.scopes import USER, Scope

if TYPE_CHECKING:
    from spanstamp.processor import SessionSpanProcessor

# (module, class, is async): the request methods that take ``safety_identifier`` / ``user``.
_TARGETS: Final = (
    ("openai.resources.chat.completions.completions", "Completions", False),
    ("openai.resources.chat.completions.completions", "AsyncCompletions", True),
    ("openai.resources.responses.responses", "Responses", False),
    ("openai.resources.responses.responses", "AsyncResponses", True),
)
# Newer name first: a request that gives both means the newer one.
_ARGUMENTS: Final = ("safety_identifier", "user")

_processors: weakref.WeakSet[SessionSpanProcessor] = weakref.WeakSet()
_owners: list[type] = []
_lock: Final = threading.Lock()


def take_user_ids(processor: SessionSpanProcessor) -> None:
    """Let ``processor`` stamp the user an OpenAI request names (wraps openai's ``create``).

    take_user_ids(processor)   # what SessionSpanProcessor(openai_user_ids=True) does
    """
    with _lock:
        try:
            _wrap()
        except Exception as exc:  # openai missing, or a layout this version lacks
            rules.reject(
                "SessionSpanProcessor(openai_user_ids)",
                f"cannot wrap the openai client ({type(exc).__name__}: {exc})",
                outcome="request users are not taken",
            )
            return
        _processors.add(processor)


def release_user_ids(processor: SessionSpanProcessor) -> None:
    """Stop taking request users for ``processor`` (its provider shut down).

    release_user_ids(processor)   # what SessionSpanProcessor.shutdown() does
    """
    _processors.discard(processor)


def _wrap() -> None:
    # Wrap each ``create`` that does not hold our wrapper anywhere in its chain: another
    # instrumentor's uninstrument may have unwrapped ours along with its own.
    targets = [
        (getattr(importlib.import_module(module_name), class_name), is_async)
        for module_name, class_name, is_async in _TARGETS
    ]
    for owner, is_async in targets:
        if not _holds_ours(owner.__dict__["create"]):
            owner.create = wrapt.FunctionWrapper(
                owner.__dict__["create"], _async_wrapper if is_async else _sync_wrapper
            )
        if owner not in _owners:
            _owners.append(owner)


def _is_ours(function: object) -> bool:
    return getattr(function, "_self_wrapper", None) in (_sync_wrapper, _async_wrapper)


def _holds_ours(function: object) -> bool:
    while function is not None:
        if _is_ours(function):
            return True
        function = getattr(function, "__wrapped__", None)
    return False


def _request_scope(kwargs: dict[str, Any]) -> Scope | None:
    """A user scope for this request, or ``None`` when there is nothing to take."""
    if not _processors or current_user_id() is not None:
        return None
    for name in _ARGUMENTS:
        value = kwargs.get(name)
        # openai's own "not given" markers are neither str nor int.
        if isinstance(value, (str, int)):
            scope = Scope(f"openai create({name})", ((USER, f"openai create({name})"),), (value,))
            return scope if scope._static else None
    return None


def _stamp_outer_span(instance: object) -> None:
    # If another wrapper sits outside ours, it is an instrumentor whose span is current
    # now and started before our scope: stamp it. Outermost, the current span is the
    # application's own, which the request's user does not describe.
    for owner in _owners:
        if isinstance(instance, owner):
            if not _is_ours(owner.__dict__.get("create")):
                span = get_current_span()
                for processor in list(_processors):
                    if processor._stamp_open(span):
                        break
            return


def _sync_wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    scope = _request_scope(kwargs)
    if scope is None:
        return wrapped(*args, **kwargs)
    with scope:
        _stamp_outer_span(instance)
        return wrapped(*args, **kwargs)


def _async_wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    async def run() -> Any:
        # Entered inside the coroutine, so in the task that awaits it.
        scope = _request_scope(kwargs)
        if scope is None:
            return await wrapped(*args, **kwargs)
        with scope:
            _stamp_outer_span(instance)
            return await wrapped(*args, **kwargs)

    return run()
