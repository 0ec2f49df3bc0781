"""The scope: values put into the OpenTelemetry Context while a block or a call runs.

One class, :class:`Scope`, does all the work of every ``using_*`` front (scopes.py),
``session()`` and ``task()``: it checks each value once as it is built (fields.py), enters
as a context manager or async context manager (one Context copy, shared safely by many
threads and tasks, re-entrant), and decorates functions, coroutines, generators and
methods (scope_calls.py); the common scopes are built by scope_builders.py::

    scope = Scope("using_session", ((SESSION, "using_session(session_id)"),), ("s-1",))
    with scope: ...
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextvars import Token
from typing import Any, Final, TypeVar

from opentelemetry.baggage import get_baggage, remove_baggage, set_baggage
from opentelemetry.context import Context

from spanstamp import privacy, propagation, rules
from spanstamp._runtime import attach, detach, get_current, reset, try_detach
from spanstamp.calls import from_arg
from spanstamp.fields import Apply, Changes, Field
from spanstamp.hooks import registered as _entered_hooks
from spanstamp.hooks import run_entered_hooks
from spanstamp.scope_calls import decorate

F = TypeVar("F", bound=Callable[..., Any])

_Values = Changes
_NO_CONTEXT: Final = Context()
# Read as a scope is built: whether user ids go in as pseudonyms.
_privacy: Final = privacy._settings


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

    __slots__ = ("_dynamic", "_from_call", "_last", "_name", "_plan", "_propagate", "_simple", "_static")

    def __init__(
        self,
        name: str,
        fields: Sequence[tuple[Field, str]],
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
        plan: list[tuple[Field, str, object]] = []
        static: _Values = {}
        dynamic: list[tuple[Apply, Any]] = []
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
            elif (value := _accept(field, where, value, static, dynamic)) is None:
                continue
            plan.append((field, where, value))
        self._name = name
        # The values in order, kept only where a call supplies some (``from_arg``).
        self._plan: Sequence[tuple[Field, str, object]] = plan if from_call else ()
        self._static = static
        self._dynamic: Sequence[tuple[Apply, Any]] = dynamic
        self._from_call = from_call
        self._propagate = propagate
        # Values to set, none from a call, and no baggage of its own: entered without the general tests.
        self._simple = bool(static or dynamic) and not from_call and propagate is None
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

    def _call_context(self) -> Context:
        """The Context a decorated call with constant values runs in (``_context``, inlined)."""
        current = get_current()
        changes = self._changes(current) if self._dynamic else self._static
        context = Context(current, **changes)
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
        if self._simple and not (_propagation.sent or _propagation.enabled):
            # The general entry below, for no baggage and no from_arg(): this runs on every
            # ``with``, and the tests it skips were a fifth of an entry and exit (~170 ns).
            current = get_current()
            entry: list[Any] = [self, None, current]
            values = {**current, **self._static}
            # Without baggage to write, the values that depend on the outer Context go
            # straight in: what _changes() gives, without its dict.
            if self._dynamic:
                for apply, value in self._dynamic:
                    apply(values, current, value)
            values[_ENTRY_KEY] = entry  # a store, not a third {**...}: ~7% of an entry and exit
            entry[1] = self._last = attach(Context(values))
            if _entered_hooks:
                run_entered_hooks()
            return self
        if self._from_call:
            rules.reject(self._name, "from_arg() values only apply when the scope decorates a function")
        if not (self._static or self._dynamic):
            return self
        current = get_current()
        entry = [self, None, current]
        changes = self._changes(current) if self._dynamic else self._static
        values = {**current, **changes}
        values[_ENTRY_KEY] = entry
        context = Context(values)
        propagate = self._propagate
        if propagate or _propagation.sent or (propagate is None and _propagation.enabled):
            context = self._baggage(context, changes)
        entry[1] = self._last = attach(context)
        if _entered_hooks:
            run_entered_hooks()
        return self

    def __exit__(self, exc_type: object, exc: object, traceback: object) -> None:
        current = get_current()
        entry = current.get(_ENTRY_KEY)
        if type(entry) is list and entry[0] is self:
            # The usual case first: our entry is the innermost one.
            token = entry[1]
            if self._last is token:
                self._last = None  # holds the outer Context: not kept past the exit
            try:
                reset(token)  # detach(), inlined: a call fewer on every ``with``
            except Exception:
                detach(token)  # reports it as the API's detach does
            return
        if not (self._static or self._dynamic):
            return
        while type(entry) is list and entry[0] is not self:
            entry = entry[2].get(_ENTRY_KEY)
        if type(entry) is list:
            # Resetting to the value before our entry also drops anything the body
            # attached and never detached.
            token = entry[1]
            if self._last is token:
                self._last = None
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
        return decorate(self, func)


def _accept(field: Field, where: str, value: object, static: _Values, dynamic: list[tuple[Apply, Any]]) -> Any:
    """Check one constant value and file it under ``static`` or ``dynamic``; ``None``: left out."""
    # field.accept(), inlined: most fields have no hide step.
    checked = field.check(value, where)
    if checked is not None and field.hide is not None and _privacy.hash_user_ids:
        checked = field.hide(checked, where)
    if checked is None:
        return None
    if field.key is not None:  # an id, written without a call
        static[field.key] = checked
        if field.marker is not None and _privacy.hash_user_ids:
            static[field.marker] = checked
    elif field.static:
        field.apply(static, _NO_CONTEXT, checked)
    else:
        dynamic.append((field.apply, checked))
    return checked
