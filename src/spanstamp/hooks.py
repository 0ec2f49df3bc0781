"""Scope-entry hooks: whoever stamps the spans a scope is entered in hears of each entry.

A processor that stamps the span a scope is entered in (and its local root) registers a
weak callback; with none registered, entering costs one truth test more::

    add_entered_hook(processor._on_scope_entered)
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable
from contextvars import Token

from opentelemetry.context import Context

from spanstamp import rules
from spanstamp._runtime import attach

# --- Entering: attach, then tell whoever stamps the enclosing spans ------------------
#
# A processor that stamps the span a scope is entered in (and its local root) registers
# a weak callback here. With none registered, entering costs one truth test more.

#: The callbacks, held weakly; a scope entry runs them when the list is not empty.
registered: list[weakref.WeakMethod[Callable[[], None]]] = []


def add_entered_hook(callback: Callable[[], None]) -> None:
    """Call ``callback()`` (a bound method, held weakly) each time a scope is entered.

    add_entered_hook(processor._on_scope_entered)
    """
    registered.append(weakref.WeakMethod(callback))


def attach_entered(context: Context) -> Token[Context]:
    """Attach ``context`` as a scope's entry, then run the hooks.

    token = attach_entered(context)   # detach(token) when the scope is left
    """
    token = attach(context)
    if registered:
        run_entered_hooks()
    return token


def run_entered_hooks() -> None:
    """Run each registered hook once; a hook that fails is logged at debug level, never raised.

    if registered: run_entered_hooks()
    """
    for ref in list(registered):
        callback = ref()
        if callback is None:
            with contextlib.suppress(ValueError):  # another thread pruned it first
                registered.remove(ref)
            continue
        try:
            callback()
        except Exception:  # the hook's owner reports its own failures; never the app's
            rules.logger.debug("a scope-entry hook failed", exc_info=True)
