"""spanstamp: say the session and user once; every span started inside carries them.

with using_session(conversation_id), using_user(user_id):
    client.chat.completions.create(...)
"""

from spanstamp.calls import from_arg
from spanstamp.context import current_session_id, current_user_id, get_attributes_from_context, new_session_id
from spanstamp.feedback import feedback
from spanstamp.lifecycle import Session, end_session, session
from spanstamp.phoenix_annotations import configure_phoenix, flush_feedback
from spanstamp.pipeline import configure, install
from spanstamp.privacy import configure_privacy, pseudonymize
from spanstamp.processor import SessionSpanProcessor
from spanstamp.propagation import configure_propagation
from spanstamp.rules import configure_rules
from spanstamp.sampling import ParentBasedSessionIdRatio, SessionIdRatioBased
from spanstamp.scope import Scope
from spanstamp.scopes import (
    using_attributes,
    using_metadata,
    using_prompt_template,
    using_session,
    using_tags,
    using_user,
)
from spanstamp.task_run import TaskRun
from spanstamp.threads import carry_context
from spanstamp.turns import Task, task

__all__ = [
    "ParentBasedSessionIdRatio",
    "Scope",
    "Session",
    "SessionIdRatioBased",
    "SessionSpanProcessor",
    "Task",
    "TaskRun",
    "carry_context",
    "configure",
    "configure_phoenix",
    "configure_privacy",
    "configure_propagation",
    "configure_rules",
    "current_session_id",
    "current_user_id",
    "end_session",
    "feedback",
    "flush_feedback",
    "from_arg",
    "get_attributes_from_context",
    "install",
    "new_session_id",
    "pseudonymize",
    "session",
    "task",
    "using_attributes",
    "using_metadata",
    "using_prompt_template",
    "using_session",
    "using_tags",
    "using_user",
]
