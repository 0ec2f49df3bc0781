"""A LangChain model called on its own is a run too: the spans under it get that run's ids.

LangChain sets its run config variable (see :mod:`spanstamp.integrations.langchain`)
only for the body of a runnable that has steps (a chain, a graph's node), not for a
chat model or LLM called with its own config, as ``model.invoke(...)`` does directly
and ``chain.batch(...)`` does for each input. So the model's entry points
(``generate`` / ``agenerate``, which ``invoke`` and ``batch`` end in, and ``stream`` /
``astream``) run with the ids their run's metadata names in the Context, under the
same keys as ids a metadata scope names, where none is set yet::

    model.invoke("hi", config={"metadata": {"session_id": "s-1"}})   # openai-v2, httpx spans too

The wrappers go in when the application imports LangChain's model modules
(``wrapt``'s post-import hooks), never by importing them from here.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import AsyncGenerator, Generator, Mapping
from typing import Any, Final

import wrapt
from opentelemetry.context import Context

from spanstamp import attributes as attr
from spanstamp import rules
from spanstamp._runtime import attach, detach, get_current
from spanstamp.integrations.langchain import run_ids

# (module, class): the bases every LangChain chat model and LLM derives from.
_TARGETS: Final = (
    ("langchain_core.language_models.chat_models", "BaseChatModel"),
    ("langchain_core.language_models.llms", "BaseLLM"),
)
_KEYS: Final = ((attr.SESSION_FROM_METADATA, attr.SESSION_ID), (attr.USER_FROM_METADATA, attr.USER_ID))

_lock: Final = threading.Lock()
_watching = False


def watch() -> None:
    """Wrap LangChain's model entry points when their modules are imported (now, if they are).

    watch()   # what SessionSpanProcessor() does; later calls do nothing
    """
    global _watching
    with _lock:
        if _watching:
            return
        _watching = True
    for module_name, _ in _TARGETS:
        wrapt.register_post_import_hook(_wrap, module_name)


def _wrap(module: Any) -> None:
    try:
        for module_name, class_name in _TARGETS:
            owner = getattr(module, class_name, None) if module.__name__ == module_name else None
            if owner is None:
                continue
            for name, wrapper in (
                ("generate", _generate),
                ("agenerate", _agenerate),
                ("stream", _stream),
                ("astream", _astream),
            ):
                if callable(owner.__dict__.get(name)) and not _is_ours(owner.__dict__[name]):
                    wrapt.wrap_function_wrapper(owner, name, wrapper)
    except Exception as exc:  # a LangChain layout this version does not know
        rules.logger.warning(
            "spanstamp: cannot wrap LangChain's models (%s); a model called outside a chain "
            "or graph does not pass its run's ids to the spans under it",
            type(exc).__name__,
        )


def _is_ours(function: object) -> bool:
    return getattr(function, "_self_wrapper", None) in (_generate, _agenerate, _stream, _astream)


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _ids(instance: Any, metadata: object, configurable: object = None) -> dict[str, str] | None:
    """The ids the model call's run names, by span attribute, or ``None``; never raises."""
    try:
        # The run's metadata is the call's with the model's own on top, as LangChain merges them.
        merged = {**_mapping(metadata), **_mapping(getattr(instance, "metadata", None))}
        return run_ids({"metadata": merged, "configurable": configurable}) or None
    except Exception:  # never in the model call's way
        return None


def _with(ids: dict[str, str]) -> Context | None:
    """The current Context with the ids it lacks under the metadata-named keys, or ``None``."""
    current = get_current()
    missing = {key: ids[target] for key, target in _KEYS if target in ids and current.get(key) is None}
    return Context({**current, **missing}) if missing else None


def _call(ids: dict[str, str] | None, function: Any, /, *args: Any, **kwargs: Any) -> Any:
    context = None if ids is None else _with(ids)
    if context is None:
        return function(*args, **kwargs)
    token = attach(context)
    try:
        return function(*args, **kwargs)
    finally:
        detach(token)


async def _acall(ids: dict[str, str] | None, awaitable: Any) -> Any:
    context = None if ids is None else _with(ids)
    if context is None:
        return await awaitable
    token = attach(context)
    try:
        return await awaitable
    finally:
        detach(token)


def _stream_ids(instance: Any, args: Any, kwargs: Any) -> dict[str, str] | None:
    """The ids of a ``stream(input, config=None, ...)`` call's run; never raises."""
    try:
        config = _mapping(args[1] if len(args) > 1 else kwargs.get("config"))
        return _ids(instance, config.get("metadata"), config.get("configurable"))
    except Exception:  # an odd config: the call names nothing
        return None


def _generate(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    return _call(_ids(instance, kwargs.get("metadata")), wrapped, *args, **kwargs)


def _agenerate(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    # Entered inside the coroutine, so in the task that awaits it.
    return _acall(_ids(instance, kwargs.get("metadata")), wrapped(*args, **kwargs))


def _stream(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    ids = _stream_ids(instance, args, kwargs)
    body = wrapped(*args, **kwargs)
    return _each_step(body, ids) if ids is not None and inspect.isgenerator(body) else body


def _astream(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    ids = _stream_ids(instance, args, kwargs)
    body = wrapped(*args, **kwargs)
    return _each_step_async(body, ids) if ids is not None and inspect.isasyncgen(body) else body


# Each step of a stream runs in the Context of whoever reads it, with the run's ids added:
# the spans it starts keep the parent they would have had.


def _each_step(body: Generator[Any, Any, Any], ids: dict[str, str]) -> Generator[Any, Any, Any]:
    try:
        item = _call(ids, body.send, None)
        while True:
            try:
                sent = yield item
            except GeneratorExit:
                _call(ids, body.close)
                raise
            except BaseException as exc:
                item = _call(ids, body.throw, exc)
            else:
                item = _call(ids, body.send, sent)
    except StopIteration as stop:
        return stop.value


async def _each_step_async(body: AsyncGenerator[Any, Any], ids: dict[str, str]) -> AsyncGenerator[Any, Any]:
    try:
        item = await _acall(ids, body.asend(None))
        while True:
            try:
                sent = yield item
            except GeneratorExit:
                await _acall(ids, body.aclose())
                raise
            except BaseException as exc:
                item = await _acall(ids, body.athrow(exc))
            else:
                item = await _acall(ids, body.asend(sent))
    except StopAsyncIteration:
        return
