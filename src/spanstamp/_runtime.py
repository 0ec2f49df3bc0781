"""The current OpenTelemetry Context, read and set on the hot paths.

``opentelemetry.context.get_current()``, ``attach()`` and ``detach()`` each wrap one
``ContextVar`` operation in two Python calls, and a scope or a span start makes
several of them. When the API's runtime context is its own
``ContextVarsRuntimeContext`` (the default), these names are that variable's methods;
with any other runtime context (``OTEL_PYTHON_CONTEXT``) they are the public
functions. Either way they share the API's state, so the two can be mixed::

    token = attach(Context({**get_current(), "k": 1}))
    detach(token)
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar, Token
from typing import Final

import opentelemetry.context as _api
from opentelemetry.context import Context
from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext


def _stock_variable() -> ContextVar[Context] | None:
    # The API keeps these private; anything unexpected means: use the public functions.
    runtime = getattr(_api, "_RUNTIME_CONTEXT", None)
    if type(runtime) is not ContextVarsRuntimeContext:
        return None
    variable = getattr(runtime, "_current_context", None)
    return variable if isinstance(variable, ContextVar) else None


_VARIABLE: Final = _stock_variable()

get_current: Callable[[], Context]
attach: Callable[[Context], Token[Context]]
detach: Callable[[Token[Context]], None]

try_detach: Callable[[Token[Context]], bool]
#: ``detach`` without its guard, for hot paths: a token from another context raises here
#: (``ValueError`` / ``RuntimeError``); the caller then calls ``detach`` to have it reported.
reset: Callable[[Token[Context]], None]

if _VARIABLE is None:
    get_current = _api.get_current
    attach = _api.attach
    detach = reset = _api.detach

    def try_detach(token: Token[Context]) -> bool:
        """Restore what ``token`` replaced (a failure is the runtime context's to report)."""
        _api.detach(token)
        return True

else:
    get_current = _VARIABLE.get
    attach = _VARIABLE.set
    _reset = reset = _VARIABLE.reset

    def detach(token: Token[Context]) -> None:
        """Restore the Context ``token`` replaced; never raises, like the API's ``detach``."""
        try:
            _reset(token)
        except Exception:  # a token from another context, or used twice
            # The API's own detach fails the same way and reports it as it always does.
            _api.detach(token)

    def try_detach(token: Token[Context]) -> bool:
        """Restore what ``token`` replaced if it was made in this context; else quietly ``False``."""
        try:
            _reset(token)
        except (ValueError, RuntimeError):  # another thread's or task's token, or used already
            return False
        return True


def is_direct() -> bool:
    """Whether the names above go straight to the API's ``ContextVar``.

    assert is_direct()  # with the default runtime context
    """
    return _VARIABLE is not None
