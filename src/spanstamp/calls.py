"""Decorating a function: values taken from each call, wrappers that pickle, generator steps.

What a scope (and ``task()``) needs to run a decorated function's calls inside it:
:class:`from_arg` and the readers that find its argument, wrapt wrappers that pickle by
reference, and the stepping that keeps a generator's scope for each step only::

    @using_session(from_arg("conversation_id"))
    def handle(conversation_id: str, text: str) -> str: ...
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncGenerator, Callable, Generator
from contextvars import Token
from typing import TYPE_CHECKING, Any, Final, cast

import wrapt
from opentelemetry.context import Context

from spanstamp import rules
from spanstamp._runtime import attach, detach, get_current
from spanstamp.hooks import attach_entered


class from_arg:  # noqa: N801 - reads as a function at the call site
    """Take a scope's value from an argument of each call to the decorated function.

    ``get`` (optional) turns the argument into the value, e.g. reads a header.
    Only meaningful when the scope decorates a function::

        @using_attributes(session_id=from_arg("conversation_id"),
                          user_id=from_arg("request", get=lambda r: r.headers.get("x-user")))
        async def chat(request, conversation_id: str): ...
    """

    __slots__ = ("get", "name")

    def __init__(self, name: str, *, get: Callable[[Any], object] | None = None) -> None:
        if not isinstance(name, str) or not name.isidentifier():
            raise TypeError("from_arg(name) must be a parameter name (a str)")
        if get is not None and not callable(get):
            raise TypeError("from_arg(get=...) must be callable")
        self.name = name
        self.get = get

    def __repr__(self) -> str:
        return f"from_arg({self.name!r})"


_MISSING: Final = object()


class ArgReader:
    """Reads one argument of a call, found once in the decorated function's signature."""

    __slots__ = ("bound", "default", "get", "name", "position")

    def __init__(self, spec: from_arg, position: int | None, default: object, bound: bool = False) -> None:
        self.name = spec.name
        self.get = spec.get
        self.position = position
        self.default = default
        # A bound method's signature already leaves out self/cls.
        self.bound = bound

    def read(self, instance: object, args: tuple[Any, ...], kwargs: dict[str, Any]) -> object:
        """The argument as this call passed it (its default if left out), through ``get=``."""
        value = kwargs.get(self.name, _MISSING)
        if value is _MISSING and self.position is not None:
            # wrapt hands a method called on its instance or class its args without
            # self/cls, which its signature counts: shift by one.
            index = self.position - (instance is not None and not self.bound)
            value = args[index] if 0 <= index < len(args) else _MISSING
        if value is _MISSING:
            value = self.default
        if value is _MISSING:
            return None
        return value if self.get is None else self.get(value)

    def take(self, instance: object, args: tuple[Any, ...], kwargs: dict[str, Any], where: str, check: Any) -> Any:
        """This argument's value for one call, through ``check``; ``None`` when it is left out.

        A ``get=`` that raises is a rejected value (``where`` names it), never the call's failure::

            value = reader.take(instance, args, kwargs, "using_session(session_id)", checks.check_id)
        """
        try:
            raw = self.read(instance, args, kwargs)
        except Exception as exc:  # the user's get= failed: the call itself goes on
            rules.reject(where, f"reading the value raised {type(exc).__name__}")
            return None
        return check(raw, where)


def arg_reader(spec: from_arg, func: Callable[..., Any], where: str) -> ArgReader | None:
    """The reader of ``spec``'s argument in ``func``'s signature; ``None`` (rejected) if it names none.

    reader = arg_reader(from_arg("user_id"), handle, "using_user(user_id)")
    """
    try:
        parameters = inspect.signature(func).parameters
    except (TypeError, ValueError):  # builtins without a signature: keywords only
        return ArgReader(spec, None, _MISSING)
    param = parameters.get(spec.name)
    if param is None or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
        if any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
            return ArgReader(spec, None, _MISSING)
        name = getattr(func, "__qualname__", repr(func))
        rules.reject(where, f"{spec!r} names no parameter of {name}()", TypeError)
        return None
    positional = param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD)
    position = list(parameters).index(spec.name) if positional else None
    default = _MISSING if param.default is param.empty else param.default
    return ArgReader(spec, position, default, bound=inspect.ismethod(func))


# --- Decorated functions: wrapt's wrappers, pickled by reference ----------------------
#
# wrapt's proxies refuse to pickle, but process pools and task queues ship functions by
# pickle, by reference: the module and qualified name, looked up again on the other
# side, where the module's own decorator has already built the same wrapper.


if TYPE_CHECKING:
    _BoundWrapper = wrapt.BoundFunctionWrapper[..., Any]
    _Wrapper = wrapt.FunctionWrapper[..., Any]
else:  # wrapt's classes take type arguments at run time only since wrapt 2
    _BoundWrapper = wrapt.BoundFunctionWrapper
    _Wrapper = wrapt.FunctionWrapper


class _BoundScopedFunction(_BoundWrapper):
    """A scoped method bound to an instance or a class: pickles as that attribute of it.

    pickle.loads(pickle.dumps(handler.handle))  # -> handler's copy, .handle, still scoped
    """

    def __reduce_ex__(self, protocol: object) -> tuple[Any, ...]:
        owner = self._self_instance if self._self_instance is not None else self._self_owner
        return getattr, (owner, self.__name__)


class ScopedFunction(_Wrapper):
    """The function a scope decorates, wrapped: pickles by its module and qualified name.

    pickle.dumps(handle)  # a module-level @using_session(...) function, by reference
    """

    __bound_function_wrapper__ = _BoundScopedFunction

    def __reduce_ex__(self, protocol: object) -> str:
        # A str tells pickle to store a reference to the global of that (qualified) name,
        # which it checks is this very object, as it does for plain functions.
        return self.__qualname__

    def __copy__(self) -> ScopedFunction:
        return self  # like a plain function, which copy returns as it is

    def __deepcopy__(self, memo: object) -> ScopedFunction:
        return self


def scoped_function(func: Callable[..., Any], wrapper: Callable[[Any, Any, Any, Any], Any]) -> ScopedFunction:
    """``func`` wrapped by ``wrapper(wrapped, instance, args, kwargs)``, as wrapt calls it.

    scoped = scoped_function(handle, wrapper)   # handle(...) now runs wrapper(handle, None, args, kwargs)
    """
    scoped = ScopedFunction(func, wrapper)
    if getattr(scoped, "_self_binding", None) != "function" or getattr(func, "__self__", None) is not None:
        return scoped
    # Called directly, wrapt first looks for ``__self__`` on a plain function, and the
    # AttributeError that lookup raises and clears is about half a decorated call's cost
    # (~350 ns of ~1,300 measured). A plain function has no ``__self__``, so wrapt then calls
    # ``wrapper(func, None, args, kwargs)``: this class's ``__call__`` does exactly that. It is
    # a class of its own because a proxy's attributes are slow to read: the call reads none.
    # Bound to an instance or a class, the wrapper is wrapt's bound one, as before.

    def call(self: object, /, *args: Any, **kwargs: Any) -> Any:
        return wrapper(func, None, args, kwargs)

    direct = type("ScopedFunction", (ScopedFunction,), {"__slots__": (), "__call__": call, "__module__": __name__})
    return cast(ScopedFunction, direct(func, wrapper))


# --- Generators: the scope holds for every step, and never leaks between steps --------
#
# A generator's body runs in its consumer's context, a step at a time. Each step runs
# with the body's own context attached and detached again before the value goes out,
# so the consumer never sees the scope and the body keeps what it attached (a span
# started across a ``yield``) from one step to the next.


def create_in(context: Context, function: Callable[..., Any], args: Any, kwargs: Any) -> Any:
    """Call ``function`` (a generator function) with ``context`` attached, to create the generator.

    body = create_in(context, wrapped, args, kwargs)
    """
    # A plain generator runs nothing when created, but a stacked scope decorator computes
    # its context then: it must see this scope, or the inner scope would hide it.
    token = attach(context)
    try:
        return function(*args, **kwargs)
    finally:
        detach(token)


class _BodyContext:
    __slots__ = ("context", "entered")

    def __init__(self, context: Context) -> None:
        self.context = context
        self.entered = False

    def _attach(self) -> Token[Context]:
        if self.entered:
            return attach(self.context)
        self.entered = True  # the scope is entered at the first step, once
        return attach_entered(self.context)

    def step(self, func: Callable[..., Any], *args: Any) -> Any:
        token = self._attach()
        try:
            return func(*args)
        finally:
            self.context = get_current()
            detach(token)

    async def astep(self, awaitable: Any) -> Any:
        token = self._attach()
        try:
            return await awaitable
        finally:
            self.context = get_current()
            detach(token)


def scoped_generator(body: Generator[Any, Any, Any], context: Context) -> Generator[Any, Any, Any]:
    """``body``, each of its steps run with ``context`` attached (the scope's first entry runs the hooks).

    return scoped_generator(create_in(context, wrapped, args, kwargs), context)
    """
    run = _BodyContext(context)
    try:
        item = run.step(body.send, None)
        while True:
            try:
                sent = yield item
            except GeneratorExit:
                run.step(body.close)
                raise
            except BaseException as exc:
                item = run.step(body.throw, exc)
            else:
                item = run.step(body.send, sent)
    except StopIteration as stop:
        return stop.value


async def scoped_async_generator(body: AsyncGenerator[Any, Any], context: Context) -> AsyncGenerator[Any, Any]:
    """``body``, each of its steps run with ``context`` attached, as :func:`scoped_generator`.

    return scoped_async_generator(create_in(context, wrapped, args, kwargs), context)
    """
    run = _BodyContext(context)
    try:
        item = await run.astep(body.asend(None))
        while True:
            try:
                sent = yield item
            except GeneratorExit:
                await run.astep(body.aclose())
                raise
            except BaseException as exc:
                item = await run.astep(body.athrow(exc))
            else:
                item = await run.astep(body.asend(sent))
    except StopAsyncIteration:
        return
