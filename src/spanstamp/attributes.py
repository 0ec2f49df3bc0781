"""The names spanstamp reads from the Context and writes on spans.

This is the only module that spells them. The context keys are plain strings equal
to the span attribute names, exactly as OpenInference uses them, so values written
by OpenInference's ``using_*`` are read here and the other way round::

    from spanstamp.attributes import SESSION_ID
    SessionSpanProcessor(attributes=[SESSION_ID])
"""

from __future__ import annotations

from typing import Final

SESSION_ID: Final = "session.id"
USER_ID: Final = "user.id"
METADATA: Final = "metadata"
TAG_TAGS: Final = "tag.tags"
PROMPT_TEMPLATE: Final = "llm.prompt_template.template"
PROMPT_TEMPLATE_VERSION: Final = "llm.prompt_template.version"
PROMPT_TEMPLATE_VARIABLES: Final = "llm.prompt_template.variables"

#: The OTel GenAI attribute for a conversation; written (off by default) as a copy of
#: ``session.id`` when ``SessionSpanProcessor(gen_ai_conversation_id=True)``.
GEN_AI_CONVERSATION_ID: Final = "gen_ai.conversation.id"

#: Every key a scope can put into the Context, in the order the processor stamps them.
CONTEXT_ATTRIBUTES: Final[tuple[str, ...]] = (
    SESSION_ID,
    USER_ID,
    METADATA,
    TAG_TAGS,
    PROMPT_TEMPLATE,
    PROMPT_TEMPLATE_VERSION,
    PROMPT_TEMPLATE_VARIABLES,
)

#: Metadata keys that name the session, in precedence order (LangChain run metadata as
#: Phoenix documents it), and the key that names the user (phospho's convention).
METADATA_SESSION_KEYS: Final = ("session_id", "thread_id", "conversation_id")
METADATA_USER_KEYS: Final = ("user_id",)

# Private context keys for the ids a scope's metadata names. They are stamped as
# ``session.id`` / ``user.id`` only where no scope sets those: explicit scopes win.
SESSION_FROM_METADATA: Final = "spanstamp.metadata.session.id"
USER_FROM_METADATA: Final = "spanstamp.metadata.user.id"
FROM_METADATA: Final = {SESSION_FROM_METADATA: SESSION_ID, USER_FROM_METADATA: USER_ID}

# Beside the metadata JSON text it writes, a scope keeps the dict that text encodes under
# this private key, so a nested scope merges without decoding it again. Readers (ours and
# OpenInference's) read only the text; the dict counts only while the text is that very
# object.
METADATA_DECODED: Final = "spanstamp.metadata.decoded"

# With user-id hashing on, a scope writes each value that holds a pseudonym a second time
# under one of these private keys. A reader compares by identity: the value under the
# public key is already hashed only when it is that very object (another library's raw
# value under ``user.id`` is not, and is hashed as it is read).
PSEUDONYMOUS: Final = {
    USER_ID: "spanstamp.pseudonymous.user.id",
    METADATA: "spanstamp.pseudonymous.metadata",
    USER_FROM_METADATA: "spanstamp.pseudonymous.metadata.user.id",
}

# --- Turns (``task()``), feedback and the session lifecycle ---------------------------
# OpenInference's names for what Phoenix shows of a span: its kind and its input/output.
SPAN_KIND: Final = "openinference.span.kind"
INPUT_VALUE: Final = "input.value"
INPUT_MIME_TYPE: Final = "input.mime_type"
OUTPUT_VALUE: Final = "output.value"
OUTPUT_MIME_TYPE: Final = "output.mime_type"
#: The id of a turn (phospho's task) on the span ``task()`` starts; feedback names it.
TASK_ID: Final = "spanstamp.task.id"
#: phospho's raw data of a turn, as JSON text (no OpenInference or OTel name exists).
TASK_RAW_INPUT: Final = "spanstamp.task.raw_input"
TASK_RAW_OUTPUT: Final = "spanstamp.task.raw_output"
#: phospho's special metadata keys on the turn's span: ``system_prompt`` becomes the OTel
#: GenAI system instructions (a JSON list of text parts), ``version_id`` the version of
#: the application (``service.version``, as a span attribute of the turn).
GEN_AI_SYSTEM_INSTRUCTIONS: Final = "gen_ai.system_instructions"
SERVICE_VERSION: Final = "service.version"
METADATA_SYSTEM_PROMPT_KEY: Final = "system_prompt"
METADATA_VERSION_KEY: Final = "version_id"

# --- Feedback: OTel GenAI evaluation attributes and event, OpenInference's annotation --
GEN_AI_EVALUATION_RESULT: Final = "gen_ai.evaluation.result"  # the event's name
GEN_AI_EVALUATION_NAME: Final = "gen_ai.evaluation.name"
GEN_AI_EVALUATION_SCORE_VALUE: Final = "gen_ai.evaluation.score.value"
GEN_AI_EVALUATION_SCORE_LABEL: Final = "gen_ai.evaluation.score.label"
GEN_AI_EVALUATION_EXPLANATION: Final = "gen_ai.evaluation.explanation"
# OpenInference's post-hoc feedback: one carrier span, one result, flattened at index 0.
ANNOTATION_NAME: Final = "annotations.0.annotation.name"
ANNOTATION_SCORE: Final = "annotations.0.annotation.score"
ANNOTATION_LABEL: Final = "annotations.0.annotation.label"
ANNOTATION_EXPLANATION: Final = "annotations.0.annotation.explanation"
ANNOTATION_ANNOTATOR_KIND: Final = "annotations.0.annotation.annotator_kind"
ANNOTATION_IDENTIFIER: Final = "annotations.0.annotation.identifier"
#: The task id a feedback span judges (the task span itself carries ``spanstamp.task.id``).
FEEDBACK_TASK_ID: Final = "spanstamp.feedback.task_id"

# --- The session lifecycle: OTel's session events, on spans of their own -------------
SESSION_PREVIOUS_ID: Final = "session.previous_id"
SESSION_START_EVENT: Final = "session.start"
SESSION_END_EVENT: Final = "session.end"
#: Why a session ended (``end_session(reason=...)``); OTel defines no name for it.
SESSION_END_REASON: Final = "spanstamp.session.end_reason"

# Values under these keys are identifiers: a str on the span, never anything else.
ID_ATTRIBUTES: Final = frozenset({SESSION_ID, USER_ID, PROMPT_TEMPLATE_VERSION})

__all__ = [
    "ANNOTATION_ANNOTATOR_KIND",
    "ANNOTATION_EXPLANATION",
    "ANNOTATION_IDENTIFIER",
    "ANNOTATION_LABEL",
    "ANNOTATION_NAME",
    "ANNOTATION_SCORE",
    "CONTEXT_ATTRIBUTES",
    "FEEDBACK_TASK_ID",
    "GEN_AI_CONVERSATION_ID",
    "GEN_AI_EVALUATION_EXPLANATION",
    "GEN_AI_EVALUATION_NAME",
    "GEN_AI_EVALUATION_RESULT",
    "GEN_AI_EVALUATION_SCORE_LABEL",
    "GEN_AI_EVALUATION_SCORE_VALUE",
    "GEN_AI_SYSTEM_INSTRUCTIONS",
    "ID_ATTRIBUTES",
    "INPUT_MIME_TYPE",
    "INPUT_VALUE",
    "METADATA",
    "METADATA_SESSION_KEYS",
    "METADATA_SYSTEM_PROMPT_KEY",
    "METADATA_USER_KEYS",
    "METADATA_VERSION_KEY",
    "OUTPUT_MIME_TYPE",
    "OUTPUT_VALUE",
    "PROMPT_TEMPLATE",
    "PROMPT_TEMPLATE_VARIABLES",
    "PROMPT_TEMPLATE_VERSION",
    "SERVICE_VERSION",
    "SESSION_END_EVENT",
    "SESSION_END_REASON",
    "SESSION_ID",
    "SESSION_PREVIOUS_ID",
    "SESSION_START_EVENT",
    "SPAN_KIND",
    "TAG_TAGS",
    "TASK_ID",
    "TASK_RAW_INPUT",
    "TASK_RAW_OUTPUT",
    "USER_ID",
]
