"""Feedback on a turn, given later with only its task id, from any process.

:func:`feedback` emits one span (OpenInference's post-hoc feedback carrier, kind
``EVALUATOR``) that is a child of the task's span and links to it, with the OTel GenAI
evaluation attributes and event and OpenInference's annotation attributes. When a Phoenix
server is named, the same result also becomes a Phoenix span annotation::

    feedback(task_id, score=1, label="thumbs_up")
"""

from __future__ import annotations

from typing import Any, Final

from opentelemetry import trace
from opentelemetry.trace import Link, NonRecordingSpan

from spanstamp import attributes as attr
from spanstamp import checks, phoenix_annotations, rules, task_ids
from spanstamp._runtime import get_current
from spanstamp.fields import SESSION, USER, IdValue
from spanstamp.scope import Scope
from spanstamp.turn_values import MAX_EXPLANATION, check_score, check_text

SPAN_NAME: Final = "feedback"
#: The annotator kinds OpenInference names and Phoenix accepts.
ANNOTATOR_KINDS: Final = frozenset({"HUMAN", "LLM", "CODE"})
#: Phoenix's upsert key is (name, span, identifier): a second feedback of the same name on
#: the same turn replaces the first (a thumbs-up changed to a thumbs-down).
IDENTIFIER: Final = "spanstamp"
_SCOPE_ARGS: Final = ((SESSION, "feedback(session_id)"), (USER, "feedback(user_id)"))


def _check_kind(kind: object) -> str:
    text = check_text(kind, "feedback(kind)")
    if text is not None and text.upper() in ANNOTATOR_KINDS:
        return text.upper()
    if text is not None:
        rules.reject("feedback(kind)", "expected HUMAN, LLM or CODE", outcome="HUMAN is used")
    return "HUMAN"


def feedback(
    task_id: str | int,
    *,
    name: str = "user_feedback",
    score: float | None = None,
    label: str | None = None,
    explanation: str | None = None,
    kind: str = "HUMAN",
    session_id: IdValue = None,
    user_id: IdValue = None,
) -> None:
    """Record feedback (a score, a label and/or an explanation) on the turn ``task_id`` names.

    Nothing waits for the network: the span goes through the configured pipeline and a
    Phoenix annotation, if any, through a background thread::

        feedback(t.id, score=1, label="thumbs_up", explanation="answered my question")
    """
    checked_id = checks.check_id(task_id, "feedback(task_id)")
    checked_name = check_text(name, "feedback(name)")
    result: dict[str, Any] = {}
    if (value := check_score(score, "feedback(score)")) is not None:
        result["score"] = value
    if (text := check_text(label, "feedback(label)")) is not None:
        result["label"] = text
    if (text := check_text(explanation, "feedback(explanation)", MAX_EXPLANATION)) is not None:
        result["explanation"] = text
    annotator = _check_kind(kind)
    if checked_id is None or checked_name is None:
        return  # already reported: without a target or a name there is nothing to record
    if not result:
        rules.reject("feedback", "needs a score, a label or an explanation", outcome="no feedback is recorded")
        return
    target = task_ids.span_context_of(checked_id)
    with Scope("feedback", _SCOPE_ARGS, (session_id, user_id)):
        _emit_span(checked_id, checked_name, result, annotator, target)
    annotation: dict[str, Any] = {
        "span_id": f"{target.span_id:016x}",
        "name": checked_name,
        "annotator_kind": annotator,
        "result": result,
        "identifier": IDENTIFIER,
        "metadata": {"task_id": checked_id},
    }
    phoenix_annotations.send(phoenix_annotations.SPAN_ANNOTATIONS, annotation)


def _emit_span(task_id: str, name: str, result: dict[str, Any], annotator: str, target: trace.SpanContext) -> None:
    evaluation: dict[str, Any] = {attr.GEN_AI_EVALUATION_NAME: name}
    annotation: dict[str, Any] = {attr.ANNOTATION_NAME: name}
    for key, gen_ai, openinference in (
        ("score", attr.GEN_AI_EVALUATION_SCORE_VALUE, attr.ANNOTATION_SCORE),
        ("label", attr.GEN_AI_EVALUATION_SCORE_LABEL, attr.ANNOTATION_LABEL),
        ("explanation", attr.GEN_AI_EVALUATION_EXPLANATION, attr.ANNOTATION_EXPLANATION),
    ):
        if key in result:
            evaluation[gen_ai] = annotation[openinference] = result[key]
    annotation[attr.ANNOTATION_ANNOTATOR_KIND] = annotator
    annotation[attr.ANNOTATION_IDENTIFIER] = IDENTIFIER
    attributes = {attr.SPAN_KIND: "EVALUATOR", **evaluation, **annotation, attr.FEEDBACK_TASK_ID: task_id}
    try:
        # A child of the judged span, so it joins the turn's trace (in Phoenix: no extra
        # trace in the session); the link is what names the target, as OpenInference asks.
        parent = trace.set_span_in_context(NonRecordingSpan(target), get_current())
        span = task_ids.tracer().start_span(SPAN_NAME, context=parent, links=[Link(target)], attributes=attributes)
        span.add_event(attr.GEN_AI_EVALUATION_RESULT, evaluation)
        span.end()
    except Exception:  # nothing on the span path raises into the application
        rules.logger.debug("emitting a feedback span failed", exc_info=True)
