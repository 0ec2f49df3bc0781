"""How a scope decorates a function: each call runs inside it.

Functions, coroutine functions, generators and async generators (each step of a
generator inside the scope, never between steps), methods, and values taken from each
call (``from_arg``). The wrappers are wrapt's, pickled by reference (calls.py)::

    @using_session(from_arg("conversation_id"))
    def handle(conversation_id: str, text: str) -> str: ...
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

from opentelemetry.context import Context

from spanstamp._runtime import attach, detach, get_current
from spanstamp.calls import arg_reader, create_in, from_arg, scoped_async_generator, scoped_function, scoped_generator
from spanstamp.fields import Changes
from spanstamp.hooks import attach_entered, run_entered_hooks
from spanstamp.hooks import registered as _entered_hooks

if TYPE_CHECKING:
    from spanstamp.scope import Scope

F = TypeVar("F", bound=Callable[..., Any])


def decorate(scope: Scope, func: F) -> F:
    """``func``, each of its calls run inside ``scope``: what ``scope(func)`` returns.

    handle = decorate(using_session("s-1"), handle)
    """
    if isinstance(func, (classmethod, staticmethod)):
        # Written above @classmethod / @staticmethod: scope the function inside, so
        # that its kind (coroutine, generator) and signature are seen, and keep the
        # descriptor around it.
        return cast(F, type(func)(scope(func.__func__)))
    readers = {
        id(value): arg_reader(value, func, where) for _, where, value in scope._plan if isinstance(value, from_arg)
    }

    def context_for_call(instance: object, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Context:
        if not scope._from_call:
            return scope._call_context()
        current = get_current()
        # Values from the call: apply everything in the order given, so that a
        # template still comes before its version.
        changes: Changes = {}
        for field, where, value in scope._plan:
            if type(value) is from_arg:
                reader = readers[id(value)]
                if reader is None:
                    continue
                value = reader.take(instance, args, kwargs, where, field.accept)
                if value is None:
                    continue
            field.apply(changes, current, value)
        return scope._context(current, changes)

    if inspect.isasyncgenfunction(func):

        def async_gen_wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            context = context_for_call(instance, args, kwargs)
            return scoped_async_generator(create_in(context, wrapped, args, kwargs), context)

        return cast(F, scoped_function(func, async_gen_wrapper))

    if inspect.isgeneratorfunction(func):

        def gen_wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            context = context_for_call(instance, args, kwargs)
            return scoped_generator(create_in(context, wrapped, args, kwargs), context)

        return cast(F, scoped_function(func, gen_wrapper))

    if inspect.iscoroutinefunction(func):

        def async_wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            async def run() -> Any:
                # Attached inside the coroutine, so in the task that awaits it.
                token = attach_entered(context_for_call(instance, args, kwargs))
                try:
                    return await wrapped(*args, **kwargs)
                finally:
                    detach(token)

            return run()

        return cast(F, scoped_function(func, async_wrapper))

    if not scope._from_call:
        call_context = scope._call_context

        def constant_wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            # attach_entered(context_for_call(...)), inlined: two calls fewer on every call.
            token = attach(call_context())
            if _entered_hooks:
                run_entered_hooks()
            try:
                return wrapped(*args, **kwargs)
            finally:
                detach(token)

        return cast(F, scoped_function(func, constant_wrapper))

    def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        token = attach_entered(context_for_call(instance, args, kwargs))
        try:
            return wrapped(*args, **kwargs)
        finally:
            detach(token)

    return cast(F, scoped_function(func, wrapper))
