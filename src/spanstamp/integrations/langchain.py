"""LangChain and LangGraph runs: the session and user a run's config names reach every span.

LangChain keeps the config of the run whose body is running (``metadata``,
``configurable``) in the context variable
``langchain_core.runnables.config.var_child_runnable_config``; LangGraph sets it for
every node. :class:`~spanstamp.SessionSpanProcessor` reads it when a span starts, so
the openai-v2 and httpx spans under a run carry the run's ids, not only the spans of
OpenInference's LangChain tracer::

    chain.invoke(question, config={"metadata": {"session_id": "s-1", "user_id": "u-1"}})
    graph.invoke(state, config={"configurable": {"thread_id": "t-1"}})

The ids are looked up with the keys a scope's metadata uses
(:data:`~spanstamp.attributes.METADATA_SESSION_KEYS`, then ``user_id``), first in
``metadata``, then in ``configurable``, and are held to the id rules. They count as
ids a scope's metadata names: they fill ``session.id`` / ``user.id`` only where no
scope (spanstamp's or OpenInference's) set them, and where no spanstamp metadata scope
named them. This module never imports LangChain: it reads the variable only once the
application has imported ``langchain_core``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any, Final

import wrapt
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.util.types import AttributeValue

from spanstamp import attributes as attr
from spanstamp.checks import coerce_id

#: The module that holds LangChain's run config; until it is imported there is no run.
CONFIG_MODULE: Final = "langchain_core.runnables.config"
_VARIABLE_NAME: Final = "var_child_runnable_config"
_SOURCES: Final = ("metadata", "configurable")
# (private key the ids wait under, span attribute, config keys naming it in precedence order)
_NAMED: Final = (
    (attr.SESSION_FROM_METADATA, attr.SESSION_ID, attr.METADATA_SESSION_KEYS),
    (attr.USER_FROM_METADATA, attr.USER_ID, attr.METADATA_USER_KEYS),
)
_IDS: Final = (attr.SESSION_ID, attr.USER_ID)

_variable: ContextVar[Any] | None = None

#: Whether LangChain's run config module was imported: set by a post-import hook (wrapt's,
#: as for the models in langchain_models.py) that the first processor registers with
#: :func:`watch_import`. Span start and end read this attribute, not ``sys.modules``
#: (~240 instructions, a fifth of what a span with nothing to stamp costs the processor).
loaded = False
_watched = False


def _was_imported(module: object) -> None:
    global loaded
    loaded = True


def watch_import() -> None:
    """Have :data:`loaded` set once LangChain's run config module is imported (idempotent).

    watch_import(); ...; if langchain.loaded: ...
    """
    global _watched
    if not _watched:
        _watched = True
        wrapt.register_post_import_hook(_was_imported, CONFIG_MODULE)


def _run_variable() -> ContextVar[Any] | None:
    """LangChain's run-config variable once ``langchain_core`` defines it, else ``None``."""
    global _variable
    if _variable is None:
        # A module still being imported may not define the name yet: try again next span.
        found = getattr(sys.modules.get(CONFIG_MODULE), _VARIABLE_NAME, None)
        if isinstance(found, ContextVar):
            _variable = found
    return _variable


def run_ids(config: object) -> dict[str, str]:
    """The session and user a LangChain run config names, by span attribute; never raises.

    run_ids({"metadata": {"thread_id": "t-1"}})      # -> {"session.id": "t-1"}
    run_ids({"configurable": {"user_id": 7}})        # -> {"user.id": "7"}
    """
    found: dict[str, str] = {}
    if not isinstance(config, Mapping):
        return found
    try:
        for source in _SOURCES:
            values = config.get(source)
            # LangGraph's metadata is a ChainMap: any Mapping will do.
            if not isinstance(values, Mapping) or not values:
                continue
            for _, target, names in _NAMED:
                if target not in found:
                    for name in names:
                        value = coerce_id(values.get(name))
                        if value is not None:
                            found[target] = value
                            break
    except Exception:  # an odd Mapping (a failing __getitem__): the run names nothing
        return {}
    return found


def with_run_ids(current: Context) -> tuple[Context, dict[str, str] | None]:
    """``current`` with the running LangChain run's ids as ids a metadata scope names.

    Returns the Context to read the span's values from and the run's ids (``None``
    outside a run). Ids a spanstamp metadata scope already names in ``current`` stay::

        current, run = with_run_ids(get_current())
    """
    variable = _run_variable()
    if variable is None:
        return current, None
    config = variable.get(None)
    if not config:
        return current, None
    ids = run_ids(config)
    if not ids:
        return current, None
    missing = {key: ids[target] for key, target, _ in _NAMED if target in ids and current.get(key) is None}
    if not missing:
        return current, ids
    return Context({**current, **missing}), ids


def scoped_ids(found: Mapping[str, AttributeValue], run: Mapping[str, str] | None) -> tuple[str, ...]:
    """The id attributes in ``found`` that a scope set, not the LangChain run.

    An instrumentor may write the run's id over them when the span ends (OpenInference's
    LangChain tracer does); the processor puts these back (a scope wins)::

        scoped_ids({"session.id": "s-1"}, {"session.id": "t-1"})  # -> ("session.id",)
    """
    return tuple(key for key in _IDS if key in found and (run is None or found[key] != run.get(key)))


#: The instrumentation scope of OpenInference's LangChain tracer, whose spans are the runs.
TRACER_SCOPE: Final = "openinference.instrumentation.langchain"
# What a run's own span learns from the spans started in its body.
_LEARNED: Final = (attr.SESSION_ID, attr.USER_ID, attr.GEN_AI_CONVERSATION_ID)
# Run spans that never end must not grow the map without bound.
_MAX_RUNS: Final = 65_536


def is_run_span(span: ReadableSpan) -> bool:
    """Whether ``span`` is one of OpenInference's LangChain spans (one per run).

    is_run_span(span)  # -> True for "RunnableSequence", "LangGraph", "ChatOpenAI", ...
    """
    scope = span.instrumentation_scope
    return scope is not None and scope.name == TRACER_SCOPE


def note_run(
    runs: dict[int, dict[str, AttributeValue]], span: ReadableSpan, found: Mapping[str, AttributeValue]
) -> None:
    """Remember, for the run span above the run span ``span``, the ids ``span`` was stamped with.

    A run's own span starts before LangChain sets the config for its body, so it may lack
    ids its body's spans have; :func:`ended_run` hands it these when it ends::

        note_run(runs, span, {"session.id": "t-1", "user.id": "u-1"})
    """
    parent = span.parent
    if parent is None or parent.is_remote or not is_run_span(span):
        return
    ids = {key: found[key] for key in _LEARNED if key in found}
    if ids:
        if len(runs) >= _MAX_RUNS:
            del runs[next(iter(runs))]
        runs.setdefault(parent.span_id, ids)


def ended_run(
    runs: dict[int, dict[str, AttributeValue]], span: ReadableSpan, final: tuple[str, ...] = ()
) -> tuple[dict[str, str], dict[str, AttributeValue]] | None:
    """For a run span that ends: the ids its run's metadata names, and those it learned.

    The first are the ids the ``metadata`` OpenInference wrote on the span names, read
    with spanstamp's key order (raw, for the processor's options to pass through): ids the
    span lacks, and a session OpenInference wrote by its own order (``session_id``,
    ``conversation_id``, ``thread_id``) over another, unless a scope set it (``final``).
    The second are the ids its body's spans were stamped with (:func:`note_run`) that it
    lacks; they also pass on to the run span above it::

        named, learned = ended_run(runs, span)   # -> ({"user.id": "u-1"}, {})
    """
    context = span.context
    learned = runs.pop(context.span_id, None) if runs and context is not None else None
    if not is_run_span(span):
        return None
    present = span.attributes or {}
    named: dict[str, str] = {}
    metadata = present.get(attr.METADATA)
    if type(metadata) is str and any(f'"{name}"' in metadata for name in _NAMES):
        for key, value in run_ids({"metadata": _decoded(metadata)}).items():
            if key not in present or (key == attr.SESSION_ID and key not in final and present[key] != value):
                named[key] = value
    if learned is not None:
        parent = span.parent
        if parent is not None and not parent.is_remote:
            runs.setdefault(parent.span_id, {**learned, **named})
        learned = {key: value for key, value in learned.items() if key not in present and key not in named}
    if not named and not learned:
        return None
    return named, learned or {}


_NAMES: Final = (*attr.METADATA_SESSION_KEYS, *attr.METADATA_USER_KEYS)


def _decoded(text: str) -> object:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # not JSON, or nested too deep to decode
        return None
