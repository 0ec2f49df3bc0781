"""The values of a turn: input and output as OpenInference stores them, kind, name, phospho's keys.

Each check follows the input rules (:mod:`spanstamp.rules`): a bad value is left out
with a warning, or raises in strict mode::

    io_value("hi", "task(input)")        # -> ("hi", "text/plain")
    io_value({"q": 1}, "task(input)")    # -> ('{"q": 1}', "application/json")
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from typing import Any, Final

from opentelemetry.context import Context

from spanstamp import attributes as attr
from spanstamp import checks, rules

TEXT: Final = "text/plain"
JSON: Final = "application/json"
#: OpenInference's span kinds.
KINDS: Final = frozenset(
    {"CHAIN", "LLM", "TOOL", "RETRIEVER", "RERANKER", "EMBEDDING", "AGENT", "GUARDRAIL", "EVALUATOR", "PROMPT"}
)


def io_value(value: object, where: str) -> tuple[str, str] | None:
    """An input or output as OpenInference stores it: ``(text, mime type)``, or ``None`` to leave out.

    A str is text; other JSON-safe values (numbers, bools, mappings, lists) become JSON::

        io_value({"q": "hi"}, "task(input)")  # -> ('{"q": "hi"}', "application/json")
    """
    if value is None:
        return None
    if isinstance(value, str):
        return str.__str__(value), TEXT
    text = json_text(value, where)
    return None if text is None else (text, JSON)


def json_text(value: object, where: str) -> str | None:
    """A JSON-safe value (mapping, list, number, bool, str) as strict JSON text, else rejected.

    Nested values JSON cannot hold go through ``str``, as in metadata. A pydantic model
    (an OpenAI response) or a dataclass counts as its fields::

        json_text([1, 2.5, "x"], "task(raw_input)")  # -> '[1, 2.5, "x"]'
    """
    if value is None:
        return None
    value = _plain(value, where)
    if value is _UNREADABLE:
        return None
    if not isinstance(value, (str, int, float, Mapping, list, tuple)):
        rules.reject(where, f"expected a str or a JSON-safe value, got {rules.describe(value)}", TypeError)
        return None
    if isinstance(value, Mapping) and not value:
        return "{}"
    # The input gate's own JSON rules (str keys, NaN as "nan", str() for the rest).
    checked = checks.check_mapping({"value": value}, where)
    return None if checked is None else json.dumps(checked.data["value"], ensure_ascii=False, allow_nan=False)


def _plain(value: object, where: str) -> object:
    # LLM clients answer with pydantic models (OpenAI's responses); apps use dataclasses.
    try:
        dump = getattr(type(value), "model_dump", None)
        if callable(dump):
            return dump(value, mode="json")
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return dataclasses.asdict(value)
    except Exception as exc:  # a model that cannot dump itself: rejected below
        rules.reject(where, f"cannot be read ({type(exc).__name__})")
        return _UNREADABLE
    return value


_UNREADABLE: Final = object()


def check_kind(kind: object) -> str:
    """An OpenInference span kind (upper case), else CHAIN with a warning.

    check_kind("tool")  # -> "TOOL"
    """
    if isinstance(kind, str) and kind.strip().upper() in KINDS:
        return kind.strip().upper()
    rules.reject(
        "task(kind)", f"expected one of {', '.join(sorted(KINDS))}, got {rules.describe(kind)}", outcome="CHAIN is used"
    )
    return "CHAIN"


def check_name(name: object) -> str:
    """A span name: a non-blank str, else "task" with a warning.

    check_name("answer")  # -> "answer"
    """
    if isinstance(name, str) and name.strip():
        return name.strip()
    rules.reject("task(name)", f"expected a non-blank str, got {rules.describe(name)}", outcome="'task' is used")
    return "task"


def special_metadata(context: Context) -> dict[str, Any]:
    """The turn-span attributes for phospho's special metadata keys in force (merged with outer scopes).

    special_metadata(get_current())  # -> {"service.version": "1.4"} for metadata {"version_id": "1.4"}
    """
    text = context.get(attr.METADATA)
    if not isinstance(text, str) or (
        attr.METADATA_SYSTEM_PROMPT_KEY not in text and attr.METADATA_VERSION_KEY not in text
    ):
        return {}
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return {}
    found: dict[str, Any] = {}
    if isinstance(data, dict):
        prompt = data.get(attr.METADATA_SYSTEM_PROMPT_KEY)
        if isinstance(prompt, str) and prompt:
            # OTel GenAI's shape for system instructions: a list of message parts.
            found[attr.GEN_AI_SYSTEM_INSTRUCTIONS] = json.dumps(
                [{"type": "text", "content": prompt}], ensure_ascii=False
            )
        version = checks.coerce_id(data.get(attr.METADATA_VERSION_KEY))
        if version is not None:
            found[attr.SERVICE_VERSION] = version
    return found


#: Longest name or label (short text) and explanation accepted, in characters.
MAX_SHORT_TEXT: Final = 256
MAX_EXPLANATION: Final = 8192


def check_text(value: object, where: str, max_length: int = MAX_SHORT_TEXT) -> str | None:
    """Text with a cap: a str non-blank after stripping (returned stripped), at most ``max_length``.

    Over the cap it is rejected, not cut: a cut label would count as another label::

        check_text(" thumbs_up ", "feedback(label)")  # -> "thumbs_up"
    """
    if value is None:
        return None
    if not isinstance(value, str):
        rules.reject(where, f"expected a str, got {rules.describe(value)}", TypeError)
        return None
    text = str.strip(value)
    if not text:
        rules.reject(where, "got an empty or blank str")
        return None
    if len(text) > max_length:
        rules.reject(where, f"got {rules.describe(text)}, over the cap of {max_length}")
        return None
    return text


def check_score(value: object, where: str) -> int | float | None:
    """A score: a finite int or float (not a bool), kept as a number.

    check_score(0.8, "feedback(score)")  # -> 0.8
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        rules.reject(where, f"expected a number, got {rules.describe(value)}", TypeError)
        return None
    if isinstance(value, float):
        if not math.isfinite(value):
            rules.reject(where, "got a number that is not finite (NaN or infinity)")
            return None
        return float.__float__(value)
    if abs(value) >= 2**63:  # OTLP integers are 64-bit
        rules.reject(where, "got an int outside the 64-bit range")
        return None
    return int.__int__(value)
