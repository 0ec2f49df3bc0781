"""Scopes: put session, user, metadata, tags and prompt template into the Context.

One class, :class:`Scope`, does all the work; ``using_session``, ``using_user``,
``using_metadata``, ``using_tags``, ``using_prompt_template`` and ``using_attributes``
only choose which of its fields to fill. A scope is a context manager, an async
context manager and a decorator (sync and async functions, generators, async
generators, methods)::

    with using_session(conversation_id), using_user(user_id):
        client.chat.completions.create(...)

A decorator can take a value from each call instead of a constant::

    @using_session(from_arg("conversation_id"))
    def handle(conversation_id: str, text: str) -> str: ...
"""

from __future__ import annotations

import inspect
import json
from collections.abc import AsyncGenerator, Callable, Generator, Mapping, Sequence
from typing import Any, Final, TypeVar, cast

import wrapt
from opentelemetry.context import Context, attach, detach, get_current

from spanstamp import attributes as attr
from spanstamp import rules

F = TypeVar("F", bound=Callable[..., Any])

_Values = dict[str, object]


# --- How each kind of value lands in the Context -------------------------------------
#
# Each function gets the new context's values (a plain dict, copied from the outer
# context) and one checked value, and updates the dict in place.


def _set_session(values: _Values, value: Any) -> None:
    values[attr.SESSION_ID] = value


def _set_user(values: _Values, value: Any) -> None:
    values[attr.USER_ID] = value


def _merge_metadata(values: _Values, value: Any) -> None:
    # Nested metadata merges key by key, the inner scope winning.
    outer = _outer_mapping(values.get(attr.METADATA))
    values[attr.METADATA] = rules.dumps({**outer, **value.data}) if outer else value.text


def _add_tags(values: _Values, value: Any) -> None:
    # Nested tags accumulate: outer first, deduplicated, in first-seen order.
    outer = values.get(attr.TAG_TAGS)
    if isinstance(outer, (list, tuple)) and outer:
        value = tuple(dict.fromkeys([*(t for t in outer if isinstance(t, str)), *value]))
    values[attr.TAG_TAGS] = value


def _set_template(values: _Values, value: Any) -> None:
    # A template replaces the outer one whole: the outer version and variables
    # belong to the outer template, so they go too.
    values[attr.PROMPT_TEMPLATE] = value
    values.pop(attr.PROMPT_TEMPLATE_VERSION, None)
    values.pop(attr.PROMPT_TEMPLATE_VARIABLES, None)


def _set_version(values: _Values, value: Any) -> None:
    values[attr.PROMPT_TEMPLATE_VERSION] = value


def _set_variables(values: _Values, value: Any) -> None:
    values[attr.PROMPT_TEMPLATE_VARIABLES] = value.text


def _outer_mapping(outer: object) -> dict[str, Any]:
    # Outer metadata is JSON text, ours or OpenInference's; anything else is ignored.
    if isinstance(outer, str):
        try:
            decoded = json.loads(outer)
        except ValueError:
            return {}
        return decoded if isinstance(decoded, dict) else {}
    return {}


_Check = Callable[[object, str], Any]
_Apply = Callable[[_Values, Any], None]


class _Field:
    """How one argument is checked and applied; ``requires`` names a field it belongs to."""

    __slots__ = ("apply", "check", "requires")

    def __init__(self, check: _Check, apply: _Apply, requires: _Field | None = None) -> None:
        self.check = check
        self.apply = apply
        self.requires = requires


SESSION: Final = _Field(rules.check_id, _set_session)
USER: Final = _Field(rules.check_id, _set_user)
METADATA: Final = _Field(rules.check_mapping, _merge_metadata)
TAGS: Final = _Field(rules.check_tags, _add_tags)
TEMPLATE: Final = _Field(rules.check_template, _set_template)
# A version or variables without their template would be read as describing an outer
# template they do not belong to. The template is applied first, as it clears them.
VERSION: Final = _Field(rules.check_id, _set_version, requires=TEMPLATE)
VARIABLES: Final = _Field(rules.check_mapping, _set_variables, requires=TEMPLATE)


# --- Values taken from the decorated call --------------------------------------------


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


class _ArgReader:
    """Reads one argument of a call, found once in the decorated function's signature."""

    __slots__ = ("default", "get", "name", "position")

    def __init__(self, spec: from_arg, position: int | None, default: object) -> None:
        self.name = spec.name
        self.get = spec.get
        self.position = position
        self.default = default

    def read(self, instance: object, args: tuple[Any, ...], kwargs: dict[str, Any]) -> object:
        value = kwargs.get(self.name, _MISSING)
        if value is _MISSING and self.position is not None:
            # wrapt hands methods their args without self/cls: shift by one.
            index = self.position - (instance is not None)
            value = args[index] if 0 <= index < len(args) else _MISSING
        if value is _MISSING:
            value = self.default
        if value is _MISSING:
            return None
        return value if self.get is None else self.get(value)


def _arg_reader(spec: from_arg, func: Callable[..., Any], where: str) -> _ArgReader | None:
    try:
        parameters = inspect.signature(func).parameters
    except (TypeError, ValueError):  # builtins without a signature: keywords only
        return _ArgReader(spec, None, _MISSING)
    param = parameters.get(spec.name)
    if param is None or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
        if any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
            return _ArgReader(spec, None, _MISSING)
        name = getattr(func, "__qualname__", repr(func))
        rules.reject(where, f"{spec!r} names no parameter of {name}()", TypeError)
        return None
    positional = param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD)
    position = list(parameters).index(spec.name) if positional else None
    default = _MISSING if param.default is param.empty else param.default
    return _ArgReader(spec, position, default)


# --- The scope -----------------------------------------------------------------------

# The current context of an entered ``with`` scope holds its entry under this private
# key, so that ``__exit__`` finds its own token even when one scope object is
# entered by many threads and tasks at once, or re-entered (nested with itself).
_ENTRY_KEY: Final = "spanstamp.scope-entry"


class _Entry:
    __slots__ = ("outer", "scope", "token")

    def __init__(self, scope: Scope, outer: object) -> None:
        self.scope = scope
        self.outer = outer if isinstance(outer, _Entry) else None
        self.token: object = None


class Scope:
    """Values to put into the OpenTelemetry Context while a block or a call runs.

    Build one with ``using_session``, ``using_user``, ``using_metadata``,
    ``using_tags``, ``using_prompt_template`` or ``using_attributes``::

        with using_attributes(session_id="s-1", user_id="u-1"):
            ...
    """

    __slots__ = ("_deferred", "_fixed", "_name")

    def __init__(self, name: str, fields: Sequence[tuple[_Field, str, object]]) -> None:
        """Check each (field, argument name, value) once; ``None`` values are skipped."""
        fixed: list[tuple[_Apply, Any]] = []
        deferred: list[tuple[_Field, str, from_arg]] = []
        accepted: set[_Field] = set()
        for field, arg, value in fields:
            if value is None:
                continue
            where = f"{name}({arg})"
            if field.requires is not None and field.requires not in accepted:
                rules.reject(where, "given without a valid template")
                continue
            if isinstance(value, from_arg):
                deferred.append((field, arg, value))
            else:
                checked = field.check(value, where)
                if checked is None:
                    continue
                fixed.append((field.apply, checked))
            accepted.add(field)
        self._name = name
        self._fixed = tuple(fixed)
        self._deferred = tuple(deferred)

    def __repr__(self) -> str:
        return f"<spanstamp {self._name} scope>"

    def _context(self, base: Context, extra: Sequence[tuple[_Apply, Any]] = ()) -> Context:
        values: _Values = dict(base)
        for apply, value in self._fixed:
            apply(values, value)
        for apply, value in extra:
            apply(values, value)
        return Context(values)

    # --- with / async with ---

    def __enter__(self) -> Scope:
        if self._deferred:
            rules.reject(self._name, "from_arg() values only apply when the scope decorates a function")
        if not self._fixed:
            return self
        current = get_current()
        entry = _Entry(self, current.get(_ENTRY_KEY))
        values: _Values = dict(current)
        for apply, value in self._fixed:
            apply(values, value)
        values[_ENTRY_KEY] = entry
        entry.token = attach(Context(values))
        return self

    def __exit__(self, *exc_info: object) -> None:
        if not self._fixed:
            return
        entry = get_current().get(_ENTRY_KEY)
        while isinstance(entry, _Entry) and entry.scope is not self:
            entry = entry.outer
        if isinstance(entry, _Entry):
            # Resetting to the value before our entry also drops anything the body
            # attached and never detached.
            detach(cast(Any, entry.token))
        else:
            rules.logger.debug("%r exited in a context it was not entered in", self)

    async def __aenter__(self) -> Scope:
        return self.__enter__()

    async def __aexit__(self, *exc_info: object) -> None:
        self.__exit__(*exc_info)

    # --- decorator ---

    def __call__(self, func: F) -> F:
        """Run every call of ``func`` inside this scope (wrapt keeps its signature)."""
        readers = tuple(
            (field, f"{self._name}({arg})", reader)
            for field, arg, spec in self._deferred
            if (reader := _arg_reader(spec, func, f"{self._name}({arg})")) is not None
        )

        def context_for_call(instance: object, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Context:
            current = get_current()
            if not readers:
                return self._context(current)
            extra = []
            for field, where, reader in readers:
                try:
                    raw = reader.read(instance, args, kwargs)
                except Exception as exc:  # the user's get= failed: the call itself goes on
                    rules.reject(where, f"reading the value raised {type(exc).__name__}")
                    continue
                value = field.check(raw, where)
                if value is not None:
                    extra.append((field.apply, value))
            return self._context(current, extra)

        if inspect.isasyncgenfunction(func):

            @wrapt.decorator
            def async_gen_wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
                return _scoped_async_generator(wrapped(*args, **kwargs), context_for_call(instance, args, kwargs))

            return cast(F, async_gen_wrapper(func))

        if inspect.isgeneratorfunction(func):

            @wrapt.decorator
            def gen_wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
                return _scoped_generator(wrapped(*args, **kwargs), context_for_call(instance, args, kwargs))

            return cast(F, gen_wrapper(func))

        if inspect.iscoroutinefunction(func):

            @wrapt.decorator
            def async_wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
                async def run() -> Any:
                    # Attached inside the coroutine, so in the task that awaits it.
                    token = attach(context_for_call(instance, args, kwargs))
                    try:
                        return await wrapped(*args, **kwargs)
                    finally:
                        detach(token)

                return run()

            return cast(F, async_wrapper(func))

        @wrapt.decorator
        def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            token = attach(context_for_call(instance, args, kwargs))
            try:
                return wrapped(*args, **kwargs)
            finally:
                detach(token)

        return cast(F, wrapper(func))


# --- Generators: the scope holds for every step, and never leaks between steps --------
#
# A generator's body runs in its consumer's context, a step at a time. Each step runs
# with the body's own context attached and detached again before the value goes out,
# so the consumer never sees the scope and the body keeps what it attached (a span
# started across a ``yield``) from one step to the next.


class _BodyContext:
    __slots__ = ("context",)

    def __init__(self, context: Context) -> None:
        self.context = context

    def step(self, func: Callable[..., Any], *args: Any) -> Any:
        token = attach(self.context)
        try:
            return func(*args)
        finally:
            self.context = get_current()
            detach(token)

    async def astep(self, awaitable: Any) -> Any:
        token = attach(self.context)
        try:
            return await awaitable
        finally:
            self.context = get_current()
            detach(token)


def _scoped_generator(body: Generator[Any, Any, Any], context: Context) -> Generator[Any, Any, Any]:
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


async def _scoped_async_generator(body: AsyncGenerator[Any, Any], context: Context) -> AsyncGenerator[Any, Any]:
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


# --- The public fronts ---------------------------------------------------------------

IdValue = str | int | from_arg | None
MappingValue = Mapping[str, Any] | from_arg | None


def using_session(session_id: IdValue) -> Scope:
    """Everything inside belongs to this session (``session.id``); ``None`` does nothing.

    with using_session(request.headers.get("x-session-id")):
        answer = client.chat.completions.create(...)
    """
    return Scope("using_session", ((SESSION, "session_id", session_id),))


def using_user(user_id: IdValue) -> Scope:
    """Everything inside is done for this end user (``user.id``); ``None`` does nothing.

    @using_user(from_arg("user_id"))
    def handle(user_id: str, text: str) -> str: ...
    """
    return Scope("using_user", ((USER, "user_id", user_id),))


def using_metadata(metadata: MappingValue) -> Scope:
    """Add metadata (JSON under ``metadata``); nested scopes merge key by key, inner wins.

    with using_metadata({"tier": "pro", "experiment": "b"}):
        ...
    """
    return Scope("using_metadata", ((METADATA, "metadata", metadata),))


def using_tags(tags: Sequence[str] | from_arg | None) -> Scope:
    """Add tags (``tag.tags``); nested scopes accumulate them, without duplicates.

    with using_tags(["beta", "rag"]):
        ...
    """
    return Scope("using_tags", ((TAGS, "tags", tags),))


def using_prompt_template(
    *,
    template: str | from_arg | None,
    version: IdValue = None,
    variables: MappingValue = None,
) -> Scope:
    """Record the prompt template, its version and variables; replaces an outer template.

    with using_prompt_template(template="Answer: {q}", version="v3", variables={"q": q}):
        ...
    """
    return Scope(
        "using_prompt_template",
        ((TEMPLATE, "template", template), (VERSION, "version", version), (VARIABLES, "variables", variables)),
    )


def using_attributes(
    *,
    session_id: IdValue = None,
    user_id: IdValue = None,
    metadata: MappingValue = None,
    tags: Sequence[str] | from_arg | None = None,
    prompt_template: str | from_arg | None = None,
    prompt_template_version: IdValue = None,
    prompt_template_variables: MappingValue = None,
) -> Scope:
    """All of the above in one scope; arguments left as ``None`` do nothing.

    with using_attributes(session_id=conversation_id, user_id=user_id, tags=["web"]):
        ...
    """
    return Scope(
        "using_attributes",
        (
            (SESSION, "session_id", session_id),
            (USER, "user_id", user_id),
            (METADATA, "metadata", metadata),
            (TAGS, "tags", tags),
            (TEMPLATE, "prompt_template", prompt_template),
            (VERSION, "prompt_template_version", prompt_template_version),
            (VARIABLES, "prompt_template_variables", prompt_template_variables),
        ),
    )
