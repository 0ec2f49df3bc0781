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

import contextlib
import inspect
import weakref
from collections.abc import AsyncGenerator, Callable, Generator, Mapping, Sequence
from contextvars import Token
from typing import TYPE_CHECKING, Any, Final, TypeVar, cast

import wrapt
from opentelemetry.baggage import get_baggage, remove_baggage, set_baggage
from opentelemetry.context import Context

from spanstamp import attributes as attr
from spanstamp import privacy, propagation, rules
from spanstamp._runtime import attach, detach, get_current, try_detach
from spanstamp.context import stampable

F = TypeVar("F", bound=Callable[..., Any])

_Values = dict[str, object]


# --- How each kind of value lands in the Context -------------------------------------
#
# Ids go in as checked, under their key (``_Field.key``). For the other kinds, each
# function writes one checked value into ``changes``, the keys the new context sets on
# top of ``outer``. ``None`` in ``changes`` hides an outer value: every reader
# (ours and OpenInference's) treats a ``None`` value as absent.


def _hide_metadata(value: rules.JsonObject, where: str) -> rules.JsonObject | None:
    hidden = privacy.hide_metadata_users(value.data, where)
    return value if hidden is value.data else (rules.JsonObject(hidden) if hidden else None)


def _merge_metadata(changes: _Values, outer: Context, value: Any) -> None:
    # Nested metadata merges key by key, the inner scope winning.
    outer_text = outer.get(attr.METADATA)
    merged = rules.decode_mapping(outer_text) if outer_text is not None else {}
    hashing = _privacy.hash_user_ids
    if merged and hashing and outer.get(_PSEUDONYMOUS_METADATA) is not outer_text:
        # Another library's metadata (or ours from before hashing was on) may name a raw user.
        merged = privacy.hide_metadata_users(merged)
    data = {**merged, **value.data} if merged else value.data
    text = changes[attr.METADATA] = rules.dumps(data) if merged else value.text
    if hashing:
        changes[_PSEUDONYMOUS_METADATA] = text
    # Ids the metadata names (``session_id``, ``user_id``, ...) wait under private keys;
    # the readers use them only where no scope sets the id itself.
    for key, names in _NAMED_IDS:
        named = next((found for name in names if (found := rules.coerce_id(data.get(name))) is not None), None)
        if named is not None:
            changes[key] = named
            if hashing and key == attr.USER_FROM_METADATA:
                changes[_PSEUDONYMOUS_NAMED_USER] = named


_privacy: Final = privacy._settings
_PSEUDONYMOUS_METADATA: Final = attr.PSEUDONYMOUS[attr.METADATA]
_PSEUDONYMOUS_NAMED_USER: Final = attr.PSEUDONYMOUS[attr.USER_FROM_METADATA]


def _add_tags(changes: _Values, outer: Context, value: Any) -> None:
    # Nested tags accumulate: outer first, deduplicated, in first-seen order.
    outer_tags = outer.get(attr.TAG_TAGS)
    if outer_tags is not None:
        # Outer tags may be another library's: held to the rules as any reader takes them.
        clean = stampable(attr.TAG_TAGS, outer_tags)
        if isinstance(clean, list):
            value = rules.Tags(dict.fromkeys([*clean, *value]))
    changes[attr.TAG_TAGS] = value


def _set_template(changes: _Values, outer: Context, value: Any) -> None:
    # A template replaces the outer one whole: the outer version and variables
    # belong to the outer template, so they are hidden too.
    changes[attr.PROMPT_TEMPLATE] = value
    changes[attr.PROMPT_TEMPLATE_VERSION] = None
    changes[attr.PROMPT_TEMPLATE_VARIABLES] = None


def _set_variables(changes: _Values, outer: Context, value: Any) -> None:
    changes[attr.PROMPT_TEMPLATE_VARIABLES] = value.text


_NAMED_IDS: Final = (
    (attr.SESSION_FROM_METADATA, attr.METADATA_SESSION_KEYS),
    (attr.USER_FROM_METADATA, attr.METADATA_USER_KEYS),
)


_Check = Callable[[object, str], Any]
_Apply = Callable[[_Values, Context, Any], None]


class _Field:
    """How one argument is checked and applied.

    ``key`` (ids): the checked value goes into the Context as it is, under this key.
    ``apply`` writes anything else. ``static``: the result does not depend on the outer
    context, so a scope computes it once. ``requires``: a field this one belongs to,
    which must be given too. ``hide``: with user-id hashing on, what the checked value
    becomes (its pseudonym, say; ``None`` leaves it out); a key field also writes the
    result under ``marker``, so readers know it is hashed already.
    """

    __slots__ = ("apply", "check", "hide", "key", "marker", "requires", "static")

    def __init__(
        self,
        check: _Check,
        apply: _Apply | None = None,
        *,
        key: str | None = None,
        static: bool = True,
        requires: _Field | None = None,
        hide: Callable[[Any, str], Any] | None = None,
    ) -> None:
        self.check = check
        self.key = key
        self.apply: _Apply = self._write_key if apply is None else apply
        self.static = static
        self.requires = requires
        self.hide = hide
        self.marker = attr.PSEUDONYMOUS.get(key) if key is not None and hide is not None else None

    def _write_key(self, changes: _Values, outer: Context, value: Any) -> None:
        changes[cast(str, self.key)] = value
        if self.marker is not None and _privacy.hash_user_ids:
            changes[self.marker] = value

    def accept(self, value: object, where: str) -> Any:
        """The checked (and, with hashing on, hidden) value, or ``None`` when it is left out."""
        checked = self.check(value, where)
        if checked is not None and self.hide is not None and _privacy.hash_user_ids:
            return self.hide(checked, where)
        return checked


SESSION: Final = _Field(rules.check_id, key=attr.SESSION_ID)
USER: Final = _Field(rules.check_id, key=attr.USER_ID, hide=privacy.hide_user_id)
METADATA: Final = _Field(rules.check_mapping, _merge_metadata, static=False, hide=_hide_metadata)
TAGS: Final = _Field(rules.check_tags, _add_tags, static=False)
TEMPLATE: Final = _Field(rules.check_template, _set_template)
# A version or variables without their template would be read as describing an outer
# template they do not belong to. The template is applied first, as it hides them.
VERSION: Final = _Field(rules.check_id, key=attr.PROMPT_TEMPLATE_VERSION, requires=TEMPLATE)
VARIABLES: Final = _Field(rules.check_mapping, _set_variables, requires=TEMPLATE)

_NO_CONTEXT: Final = Context()


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

    __slots__ = ("bound", "default", "get", "name", "position")

    def __init__(self, spec: from_arg, position: int | None, default: object, bound: bool = False) -> None:
        self.name = spec.name
        self.get = spec.get
        self.position = position
        self.default = default
        # A bound method's signature already leaves out self/cls.
        self.bound = bound

    def read(self, instance: object, args: tuple[Any, ...], kwargs: dict[str, Any]) -> object:
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
    return _ArgReader(spec, position, default, bound=inspect.ismethod(func))


# --- Entering: attach, then tell whoever stamps the enclosing spans ------------------
#
# A processor that stamps the span a scope is entered in (and its local root) registers
# a weak callback here. With none registered, entering costs one truth test more.

_entered_hooks: list[weakref.WeakMethod[Callable[[], None]]] = []


def add_entered_hook(callback: Callable[[], None]) -> None:
    """Call ``callback()`` (a bound method, held weakly) each time a scope is entered.

    add_entered_hook(processor._on_scope_entered)
    """
    _entered_hooks.append(weakref.WeakMethod(callback))


def _attach(context: Context) -> Token[Context]:
    token = attach(context)
    if _entered_hooks:
        _run_entered_hooks()
    return token


def _run_entered_hooks() -> None:
    for ref in list(_entered_hooks):
        callback = ref()
        if callback is None:
            with contextlib.suppress(ValueError):  # another thread pruned it first
                _entered_hooks.remove(ref)
            continue
        try:
            callback()
        except Exception:  # the hook's owner reports its own failures; never the app's
            rules.logger.debug("a scope-entry hook failed", exc_info=True)


# --- The scope -----------------------------------------------------------------------


# The current context of an entered ``with`` scope holds its entry under this private
# key: ``[scope, token, outer context]``. ``__exit__`` finds its own token there even when
# one scope object is entered by many threads and tasks at once, or nested with itself.
_ENTRY_KEY: Final = "spanstamp.scope-entry"

# Read on every entry: whether baggage may need writing or clearing at all.
_propagation: Final = propagation._settings


def _left_in(current: Context, token: Token[Context]) -> bool:
    """Whether ``current`` is a Context the body left behind, not one from before the entry.

    When an outer scope was left first, it already restored a Context from before ours:
    one that our entry's outer contexts lead to. Then there is nothing to undo.
    """
    outer = getattr(token, "old_value", None)
    if outer is None:  # not a ContextVar token (another runtime context): cannot tell
        return False
    while isinstance(outer, Context):
        if outer is current:
            return False
        entry = outer.get(_ENTRY_KEY)
        outer = entry[2] if type(entry) is list else None
    return True


class Scope:
    """Values to put into the OpenTelemetry Context while a block or a call runs.

    Build one with ``using_session``, ``using_user``, ``using_metadata``,
    ``using_tags``, ``using_prompt_template`` or ``using_attributes``::

        with using_attributes(session_id="s-1", user_id="u-1"):
            ...
    """

    __slots__ = ("_dynamic", "_from_call", "_last", "_name", "_plan", "_propagate", "_static")

    def __init__(
        self,
        name: str,
        fields: Sequence[tuple[_Field, str]],
        values: Sequence[object],
        propagate: bool | None = None,
    ) -> None:
        """Check each value once against its (field, where); ``None`` values are skipped.

        ``where`` names the argument in messages, e.g. ``"using_session(session_id)"``.
        ``propagate`` (``None``: the process-wide setting) also puts the session id and
        the pseudonymized user id into W3C baggage for downstream services.
        """
        if propagate is not None and not isinstance(propagate, bool):
            rules.reject(f"{name}(propagate)", f"expected a bool, got {rules.describe(propagate)}", TypeError)
            propagate = None
        plan: list[tuple[_Field, str, object]] = []
        static: _Values = {}
        dynamic: list[tuple[_Apply, Any]] = []
        from_call = False
        index = -1
        for value in values:
            # A counter, not enumerate(): most arguments are None, and skipping them
            # is most of the loop's work.
            index += 1
            if value is None:
                continue
            field, where = fields[index]
            if field.requires is not None and not any(given is field.requires for given, _, _ in plan):
                rules.reject(where, "given without a valid template")
                continue
            if type(value) is from_arg:
                from_call = True
            else:
                # field.accept(), inlined: most fields have no hide step.
                value = field.check(value, where)
                if value is not None and field.hide is not None and _privacy.hash_user_ids:
                    value = field.hide(value, where)
                if value is None:
                    continue
                if field.key is not None:  # an id, written without a call
                    static[field.key] = value
                    if field.marker is not None and _privacy.hash_user_ids:
                        static[field.marker] = value
                elif field.static:
                    field.apply(static, _NO_CONTEXT, value)
                else:
                    dynamic.append((field.apply, value))
            plan.append((field, where, value))
        self._name = name
        self._plan = plan
        self._static = static
        self._dynamic = dynamic
        self._from_call = from_call
        self._propagate = propagate
        self._last: Token[Context] | None = None

    def __repr__(self) -> str:
        return f"<spanstamp {self._name} scope>"

    def _context(self, outer: Context, changes: _Values) -> Context:
        """The Context a decorated call runs in: ``outer`` with ``changes`` (and baggage)."""
        context = Context(outer, **changes)
        propagate = self._propagate
        if propagate or _propagation.sent or (propagate is None and _propagation.enabled):
            context = self._baggage(context, changes)
        return context

    def _baggage(self, context: Context, changes: _Values) -> Context:
        """``context`` with this scope's ids in baggage if it propagates, and stale ones out."""
        propagate = self._propagate
        sent: dict[str, str] = {}
        if propagate or (propagate is None and _propagation.enabled):
            sent = propagation.outbound_baggage(changes, where=f"{self._name}(propagate)")
            for key, value in sent.items():
                context = set_baggage(key, value, context)
        # An id this scope replaces locally but does not send must not leave with the
        # outer scope's value: downstream would stamp an id this call does not have.
        for key in propagation.DEFAULT_TRUSTED_KEYS:
            if key in changes and key not in sent and get_baggage(key, context) is not None:
                context = remove_baggage(key, context)
        return context

    def _changes(self, outer: Context) -> _Values:
        """What this scope's constant values set on top of ``outer``."""
        if not self._dynamic:
            return self._static
        changes = dict(self._static)
        for apply, value in self._dynamic:
            apply(changes, outer, value)
        return changes

    # --- with / async with ---

    def __enter__(self) -> Scope:
        if self._from_call:
            rules.reject(self._name, "from_arg() values only apply when the scope decorates a function")
        if not (self._static or self._dynamic):
            return self
        # The body of _context and _attach, inlined: this runs on every ``with``.
        current = get_current()
        entry: list[Any] = [self, None, current]
        changes = self._changes(current) if self._dynamic else self._static
        context = Context({**current, **changes, _ENTRY_KEY: entry})
        propagate = self._propagate
        if propagate or _propagation.sent or (propagate is None and _propagation.enabled):
            context = self._baggage(context, changes)
        entry[1] = self._last = attach(context)
        if _entered_hooks:
            _run_entered_hooks()
        return self

    def __exit__(self, exc_type: object, exc: object, traceback: object) -> None:
        if not (self._static or self._dynamic):
            return
        current = get_current()
        entry = current.get(_ENTRY_KEY)
        while type(entry) is list and entry[0] is not self:
            entry = entry[2].get(_ENTRY_KEY)
        if type(entry) is list:
            # Resetting to the value before our entry also drops anything the body
            # attached and never detached.
            token = entry[1]
            if self._last is token:
                self._last = None  # holds the outer Context: not kept past the exit
            detach(token)
        elif (token := self._last) is not None and _left_in(current, token) and try_detach(token):
            # The body attached a Context built from scratch (``attach(extract(headers))``)
            # and left it there: our entry is not in it, but our last entry's token, made
            # in this same context, restores the outer values all the same.
            self._last = None
        else:
            rules.logger.debug("%r exited in a context it was not entered in", self)

    async def __aenter__(self) -> Scope:
        return self.__enter__()

    async def __aexit__(self, exc_type: object, exc: object, traceback: object) -> None:
        self.__exit__(exc_type, exc, traceback)

    # --- decorator ---

    def __call__(self, func: F) -> F:
        """Run every call of ``func`` inside this scope (wrapt keeps its signature)."""
        if isinstance(func, (classmethod, staticmethod)):
            # Written above @classmethod / @staticmethod: scope the function inside, so
            # that its kind (coroutine, generator) and signature are seen, and keep the
            # descriptor around it.
            return cast(F, type(func)(self(func.__func__)))
        readers = {
            id(value): _arg_reader(value, func, where) for _, where, value in self._plan if isinstance(value, from_arg)
        }

        def context_for_call(instance: object, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Context:
            current = get_current()
            if not self._from_call:
                return self._context(current, self._changes(current))
            # Values from the call: apply everything in the order given, so that a
            # template still comes before its version.
            changes: _Values = {}
            for field, where, value in self._plan:
                if type(value) is from_arg:
                    reader = readers[id(value)]
                    if reader is None:
                        continue
                    try:
                        raw = reader.read(instance, args, kwargs)
                    except Exception as exc:  # the user's get= failed: the call itself goes on
                        rules.reject(where, f"reading the value raised {type(exc).__name__}")
                        continue
                    value = field.accept(raw, where)
                    if value is None:
                        continue
                field.apply(changes, current, value)
            return self._context(current, changes)

        if inspect.isasyncgenfunction(func):

            def async_gen_wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
                context = context_for_call(instance, args, kwargs)
                return _scoped_async_generator(_create_in(context, wrapped, args, kwargs), context)

            return cast(F, _ScopedFunction(func, async_gen_wrapper))

        if inspect.isgeneratorfunction(func):

            def gen_wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
                context = context_for_call(instance, args, kwargs)
                return _scoped_generator(_create_in(context, wrapped, args, kwargs), context)

            return cast(F, _ScopedFunction(func, gen_wrapper))

        if inspect.iscoroutinefunction(func):

            def async_wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
                async def run() -> Any:
                    # Attached inside the coroutine, so in the task that awaits it.
                    token = _attach(context_for_call(instance, args, kwargs))
                    try:
                        return await wrapped(*args, **kwargs)
                    finally:
                        detach(token)

                return run()

            return cast(F, _ScopedFunction(func, async_wrapper))

        def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            token = _attach(context_for_call(instance, args, kwargs))
            try:
                return wrapped(*args, **kwargs)
            finally:
                detach(token)

        return cast(F, _ScopedFunction(func, wrapper))


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


class _ScopedFunction(_Wrapper):
    """The function a scope decorates, wrapped: pickles by its module and qualified name.

    pickle.dumps(handle)  # a module-level @using_session(...) function, by reference
    """

    __bound_function_wrapper__ = _BoundScopedFunction

    def __reduce_ex__(self, protocol: object) -> str:
        # A str tells pickle to store a reference to the global of that (qualified) name,
        # which it checks is this very object, as it does for plain functions.
        return self.__qualname__

    def __copy__(self) -> _ScopedFunction:
        return self  # like a plain function, which copy returns as it is

    def __deepcopy__(self, memo: object) -> _ScopedFunction:
        return self


# --- Generators: the scope holds for every step, and never leaks between steps --------
#
# A generator's body runs in its consumer's context, a step at a time. Each step runs
# with the body's own context attached and detached again before the value goes out,
# so the consumer never sees the scope and the body keeps what it attached (a span
# started across a ``yield``) from one step to the next.


def _create_in(context: Context, function: Callable[..., Any], args: Any, kwargs: Any) -> Any:
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
        return _attach(self.context)

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
#
# Each front is a table of (field, where) and the values it was called with; the
# tables are built once, so a call builds nothing but the value tuple.

_SESSION_ARGS: Final = ((SESSION, "using_session(session_id)"),)
_USER_ARGS: Final = ((USER, "using_user(user_id)"),)
_METADATA_ARGS: Final = ((METADATA, "using_metadata(metadata)"),)
_TAGS_ARGS: Final = ((TAGS, "using_tags(tags)"),)
_TEMPLATE_ARGS: Final = (
    (TEMPLATE, "using_prompt_template(template)"),
    (VERSION, "using_prompt_template(version)"),
    (VARIABLES, "using_prompt_template(variables)"),
)
_ATTRIBUTES_ARGS: Final = (
    (SESSION, "using_attributes(session_id)"),
    (USER, "using_attributes(user_id)"),
    (METADATA, "using_attributes(metadata)"),
    (TAGS, "using_attributes(tags)"),
    (TEMPLATE, "using_attributes(prompt_template)"),
    (VERSION, "using_attributes(prompt_template_version)"),
    (VARIABLES, "using_attributes(prompt_template_variables)"),
)

IdValue = str | int | from_arg | None
MappingValue = Mapping[str, Any] | from_arg | None


def using_session(session_id: IdValue, *, propagate: bool | None = None) -> Scope:
    """Everything inside belongs to this session (``session.id``); ``None`` does nothing.

    ``propagate=True`` also sends it downstream as W3C baggage (``None``: the
    process-wide setting, off unless ``SPANSTAMP_PROPAGATE=1``).

    with using_session(request.headers.get("x-session-id")):
        answer = client.chat.completions.create(...)
    """
    return Scope("using_session", _SESSION_ARGS, (session_id,), propagate)


def using_user(user_id: IdValue, *, propagate: bool | None = None) -> Scope:
    """Everything inside is done for this end user (``user.id``); ``None`` does nothing.

    ``propagate=True`` sends its pseudonym downstream as W3C baggage, never the raw id
    (without a ``SPANSTAMP_USER_ID_KEY`` it is not propagated).

    @using_user(from_arg("user_id"))
    def handle(user_id: str, text: str) -> str: ...
    """
    return Scope("using_user", _USER_ARGS, (user_id,), propagate)


def using_metadata(metadata: MappingValue) -> Scope:
    """Add metadata (JSON under ``metadata``); nested scopes merge key by key, inner wins.

    with using_metadata({"tier": "pro", "experiment": "b"}):
        ...
    """
    return Scope("using_metadata", _METADATA_ARGS, (metadata,))


def using_tags(tags: Sequence[str] | from_arg | None) -> Scope:
    """Add tags (``tag.tags``); nested scopes accumulate them, without duplicates.

    with using_tags(["beta", "rag"]):
        ...
    """
    return Scope("using_tags", _TAGS_ARGS, (tags,))


def using_prompt_template(
    *,
    template: str | from_arg | None = None,
    version: IdValue = None,
    variables: MappingValue = None,
) -> Scope:
    """Record the prompt template, its version and variables; replaces an outer template.

    with using_prompt_template(template="Answer: {q}", version="v3", variables={"q": q}):
        ...
    """
    return Scope("using_prompt_template", _TEMPLATE_ARGS, (template, version, variables))


def using_attributes(
    *,
    session_id: IdValue = None,
    user_id: IdValue = None,
    metadata: MappingValue = None,
    tags: Sequence[str] | from_arg | None = None,
    prompt_template: str | from_arg | None = None,
    prompt_template_version: IdValue = None,
    prompt_template_variables: MappingValue = None,
    propagate: bool | None = None,
) -> Scope:
    """All of the above in one scope; arguments left as ``None`` do nothing.

    ``propagate`` applies to the session and user ids as in ``using_session`` / ``using_user``.

    with using_attributes(session_id=conversation_id, user_id=user_id, tags=["web"]):
        ...
    """
    return Scope(
        "using_attributes",
        _ATTRIBUTES_ARGS,
        (
            session_id,
            user_id,
            metadata,
            tags,
            prompt_template,
            prompt_template_version,
            prompt_template_variables,
        ),
        propagate,
    )
