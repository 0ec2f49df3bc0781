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

With user-id hashing on (:func:`~spanstamp.configure_privacy`), the raw id leaves the
process nowhere: the request goes out with its pseudonym in place of the raw value (as
OpenAI recommends: hashed ids), and an instrumentor's span that recorded the raw request
arguments before spanstamp's wrapper ran gets the pseudonym in those attributes instead.
"""

from __future__ import annotations

import importlib
import json
import threading
import weakref
from typing import TYPE_CHECKING, Any, Final

import wrapt
from opentelemetry.sdk.trace import Span
from opentelemetry.trace import get_current_span

from spanstamp import attributes as attr
from spanstamp import privacy, rules
from spanstamp.context import current_user_id
from spanstamp.fields import USER
from spanstamp.scope import Scope

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


def _request_scope(instance: object, kwargs: dict[str, Any]) -> tuple[dict[str, Any], Scope | None]:
    """The request's arguments as they may leave the process, and its user scope (or ``None``)."""
    if not _processors:
        return kwargs, None
    for name in _ARGUMENTS:
        value = kwargs.get(name)
        # openai's own "not given" markers are neither str nor int.
        if not isinstance(value, (str, int)):
            continue
        where = f"openai create({name})"
        scope = Scope(where, ((USER, where),), (value,))
        user = scope._static.get(attr.USER_ID)
        if privacy._settings.hash_user_ids:
            # The scope holds the pseudonym (or nothing, without a key): so does the request.
            kwargs = {key: item for key, item in kwargs.items() if key != name}
            if isinstance(user, str):
                kwargs[name] = user
            _hide_in_outer_span(instance, value, user)
        if not scope._static or current_user_id() is not None:  # a user in force wins
            return kwargs, None
        return kwargs, scope
    return kwargs, None


def _outer_wrapper(instance: object) -> bool:
    # Whether another wrapper sits outside ours on ``instance``'s class: an instrumentor
    # whose span is current now and started (with the request's arguments) before ours ran.
    owner = next((owner for owner in _owners if isinstance(instance, owner)), None)
    return owner is not None and not _is_ours(owner.__dict__.get("create"))


def _hide_in_outer_span(instance: object, raw: str | int, user: object) -> None:
    # OpenInference records the request's arguments (llm.invocation_parameters, input.value)
    # as its span starts, outside our wrapper: the raw id is replaced there while it is open.
    if not _outer_wrapper(instance):
        return
    span = get_current_span()
    if not isinstance(span, Span) or not span.is_recording():
        return
    text = raw.strip() if isinstance(raw, str) else str(raw)
    forms = {text, json.dumps(text)[1:-1]} - {""}
    replacement = user if isinstance(user, str) else ""
    for key, value in dict(span.attributes or {}).items():
        if isinstance(value, str) and any(form in value for form in forms):
            for form in forms:
                value = value.replace(form, replacement)
            span.set_attribute(key, value)


def _stamp_outer_span(instance: object) -> None:
    # If another wrapper sits outside ours, it is an instrumentor whose span is current
    # now and started before our scope: stamp it. Outermost, the current span is the
    # application's own, which the request's user does not describe.
    if _outer_wrapper(instance):
        span = get_current_span()
        for processor in list(_processors):
            if processor._stamp_open(span):
                break


def _sync_wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    kwargs, scope = _request_scope(instance, kwargs)
    if scope is None:
        return wrapped(*args, **kwargs)
    with scope:
        _stamp_outer_span(instance)
        return wrapped(*args, **kwargs)


def _async_wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    async def run() -> Any:
        # Entered inside the coroutine, so in the task that awaits it.
        request, scope = _request_scope(instance, kwargs)
        if scope is None:
            return await wrapped(*args, **request)
        with scope:
            _stamp_outer_span(instance)
            return await wrapped(*args, **request)

    return run()
