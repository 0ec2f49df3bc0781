"""The session lifecycle: start (or resume) a session, and record that it ended.

``session()`` is a scope like ``using_attributes`` (session and user) that makes a fresh
id when given none; ``end_session()`` records OTel's ``session.end`` event. Each event
goes on a short span of its own, a root without ``session.id`` as a span attribute, so
that it never counts as a turn of the session in Phoenix (whose session view reads the
root spans of the session's traces)::

    with session(user_id=user) as s:
        ...                     # s.id: keep it to resume the session later
    end_session(s.id, reason="user_closed_chat")
"""

from __future__ import annotations

import threading
from typing import Any, Final

from opentelemetry.context import Context

from spanstamp import attributes as attr
from spanstamp import checks, phoenix_annotations, rules, task_ids
from spanstamp._runtime import attach, detach
from spanstamp.calls import from_arg
from spanstamp.context import new_session_id
from spanstamp.fields import SESSION, USER, IdValue
from spanstamp.scope import Scope
from spanstamp.turn_values import check_text

_SCOPE_ARGS: Final = ((SESSION, "session(session_id)"), (USER, "session(user_id)"))
#: The Phoenix session annotation ``end_session`` writes when a Phoenix server is named.
PHOENIX_END_ANNOTATION: Final = "session_end"
_EMPTY: Final = Context()


class Session(Scope):
    """A session scope with its id (``.id``); built by :func:`session`.

    with session(user_id="u-1") as s:
        print(s.id)
    """

    __slots__ = ("_start_lock", "_start_pending", "id", "previous_id")

    def __init__(self, session_id: IdValue, user_id: IdValue, previous_id: str | int | None) -> None:
        given = session_id if type(session_id) is from_arg else checks.check_id(session_id, "session(session_id)")
        fresh = given is None
        chosen: Any = new_session_id() if fresh else given
        previous = checks.check_id(previous_id, "session(previous_id)")
        if previous is not None and previous == chosen:
            rules.reject("session(previous_id)", "is the session's own id (a continuation has a new id)")
            previous = None
        super().__init__("session", _SCOPE_ARGS, (chosen, user_id))
        #: The session id (str); ``None`` only when it comes from each call (``from_arg``).
        self.id: str | None = chosen if isinstance(chosen, str) else None
        #: The session this one continues, recorded in its ``session.start`` event.
        self.previous_id = previous
        # A new session (a fresh id, or a continuation) records session.start once, when
        # first entered; resuming an existing one records nothing.
        self._start_pending = self.id is not None and (fresh or previous is not None)
        self._start_lock = threading.Lock()

    def __repr__(self) -> str:
        return "<spanstamp session scope>"

    def __enter__(self) -> Session:
        if self._start_pending:
            with self._start_lock:
                start, self._start_pending = self._start_pending, False
            if start and self.id is not None:
                event = {attr.SESSION_ID: self.id}
                if self.previous_id is not None:
                    event[attr.SESSION_PREVIOUS_ID] = self.previous_id
                record_event(attr.SESSION_START_EVENT, event)
        super().__enter__()
        return self

    async def __aenter__(self) -> Session:
        return self.__enter__()


def session(session_id: IdValue = None, *, user_id: IdValue = None, previous_id: str | int | None = None) -> Session:
    """Start a session (a fresh id when ``session_id`` is ``None``) or resume one by its id.

    ``previous_id`` names the session this one continues under a new id. A new session
    records OTel's ``session.start`` event when first entered::

        with session(user_id=user) as s:
            answer(question)
    """
    return Session(session_id, user_id, previous_id)


def end_session(session_id: str | int, *, reason: str | None = None) -> None:
    """Record that the session ended (OTel's ``session.end`` event), e.g. the user closed the chat.

    end_session(conversation_id, reason="user_closed_chat")
    """
    checked = checks.check_id(session_id, "end_session(session_id)")
    why = check_text(reason, "end_session(reason)")
    if checked is None:
        return
    event: dict[str, Any] = {attr.SESSION_ID: checked}
    if why is not None:
        event[attr.SESSION_END_REASON] = why
    record_event(attr.SESSION_END_EVENT, event)
    phoenix_annotations.send(
        phoenix_annotations.SESSION_ANNOTATIONS,
        {
            "session_id": checked,
            "name": PHOENIX_END_ANNOTATION,
            "annotator_kind": "CODE",
            "result": {"label": why or "ended"},
            "identifier": "spanstamp",
        },
    )


def record_event(name: str, event: dict[str, Any]) -> None:
    """A span named ``name`` carrying one event of that name: a root with no scope values on it.

    record_event("session.end", {"session.id": "s-1"})
    """
    # Started in an empty Context: no parent, and no scope's session, user, metadata or
    # tags stamped on it (the ids are in the event, where OTel puts them).
    token = attach(_EMPTY)
    try:
        span = task_ids.tracer().start_span(name, context=_EMPTY)
        span.add_event(name, event)
        span.end()
    except Exception:  # nothing on the span path raises into the application
        rules.logger.debug("recording a session event failed", exc_info=True)
    finally:
        detach(token)
