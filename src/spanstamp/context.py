"""Reading what the scopes put into the Context.

``get_attributes_from_context`` yields what :class:`~spanstamp.SessionSpanProcessor`
stamps on a span started in that context; both use :func:`collect`::

    with using_session("s-1"):
        assert current_session_id() == "s-1"
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Collection, Iterable, Iterator
from typing import Final

from opentelemetry.context import Context, get_current
from opentelemetry.util.types import AttributeValue

from spanstamp import attributes as attr
from spanstamp import checks, jsontext, privacy, rules
from spanstamp.integrations import langchain as _langchain

_ALL: Final = frozenset(attr.CONTEXT_ATTRIBUTES)
_LANGCHAIN: Final = _langchain.CONFIG_MODULE
_SESSION: Final = frozenset({attr.SESSION_ID})
_USER: Final = frozenset({attr.USER_ID})
# With a parent context, keys are probed in this fixed order (not a set's, which changes
# with PYTHONHASHSEED), so spans list their attributes the same way in every process.
_PARENT_ORDER: Final = (*attr.CONTEXT_ATTRIBUTES, *attr.FROM_METADATA)


def collect(keys: Collection[str], parent: Context | None, current: Context) -> dict[str, AttributeValue]:
    """The attributes for a span started with ``parent`` while ``current`` is current.

    Each key comes from ``parent`` and, where ``parent`` lacks it, from ``current``:
    instrumentors that build a parent context from an empty ``Context()`` still get
    the scope's values. An id a scope's metadata names fills ``session.id`` /
    ``user.id`` only where no scope set them. Every value is held to the input rules
    (:func:`stampable`), whoever wrote it, and with user-id hashing on, a user id that is
    not already a pseudonym is hashed (or left out without a key). Never raises::

        collect(CONTEXT_ATTRIBUTES, None, get_current())
    """
    try:
        return _collect(keys, parent, current)
    except Exception:  # a Context is a plain mapping, but what it holds may be anything
        rules.logger.debug("reading the Context failed; nothing is stamped", exc_info=True)
        return {}


def _collect(keys: Collection[str], parent: Context | None, current: Context) -> dict[str, AttributeValue]:
    found: dict[str, AttributeValue] = {}
    named: dict[str, str] | None = None
    if parent is None:
        # A Context holds a handful of keys: walking them beats probing every key.
        pairs: Iterable[tuple[str, object]] = current.items()
    else:
        pairs = []
        for key in _PARENT_ORDER:
            value = parent.get(key)
            pairs.append((key, current.get(key) if value is None else value))
    for key, value in pairs:
        if key in keys and value is not None:
            value = stampable(key, value)
            if value is not None:
                found[key] = value
        elif key in attr.FROM_METADATA and type(value) is str:
            named = {} if named is None else named
            named[attr.FROM_METADATA[key]] = value
    from_metadata = False
    if named is not None:
        for key, value in named.items():
            if key in keys and key not in found and (checked := checks.coerce_id(value)) is not None:
                found[key] = checked
                from_metadata = from_metadata or key == attr.USER_ID
    if privacy._settings.hash_user_ids and (attr.USER_ID in found or attr.METADATA in found):
        _hide_users(found, parent, current, from_metadata)
    return found


def _hide_users(found: dict[str, AttributeValue], parent: Context | None, current: Context, named: bool) -> None:
    # Values a scope wrote while hashing was on are marked as pseudonyms (by identity);
    # anything else under these keys (OpenInference's using_user, say) is hashed here.
    def marked(key: str, value: object) -> bool:
        source = parent if parent is not None and parent.get(key) is not None else current
        return source.get(attr.PSEUDONYMOUS[key]) is value

    user = found.get(attr.USER_ID)
    if user is not None and not marked(attr.USER_FROM_METADATA if named else attr.USER_ID, user):
        pseudonymizer = privacy.pseudonymizer()
        if pseudonymizer is None or type(user) is not str:
            del found[attr.USER_ID]
        else:
            found[attr.USER_ID] = pseudonymizer(user)
    metadata = found.get(attr.METADATA)
    named_users = type(metadata) is str and any(f'"{key}"' in metadata for key in attr.METADATA_USER_KEYS)
    if named_users and not marked(attr.METADATA, metadata):
        data = jsontext.decode_mapping(metadata)
        hidden = privacy.hide_metadata_users(data)
        if hidden is not data:
            found[attr.METADATA] = jsontext.dumps(hidden)


def stampable(key: str, value: object) -> AttributeValue | None:
    """What is stamped for ``value`` found under ``key`` in a Context, or ``None`` for nothing.

    The input rules, applied quietly to whatever another library (or a scope) wrote:
    ids as :func:`~spanstamp.checks.coerce_id` takes them, tags a list of non-blank str,
    metadata and templates a str; text that cannot be encoded as UTF-8 is left out.
    Never raises::

        stampable("user.id", 42)   # -> "42"
        stampable("user.id", "")   # -> None
    """
    if type(value) is str and value.isascii():
        # What the scopes write, checked already: taken as it is, at the cost of the
        # tests that show it is still clean (a stripped id within the cap, non-blank text).
        if key in attr.ID_ATTRIBUTES:
            clean = 0 < len(value) <= rules.settings.max_id_length and value.strip() is value
            return value if clean else checks.coerce_id(value)
        return value if value and (key != attr.PROMPT_TEMPLATE or not value.isspace()) else None
    try:
        return _stampable(key, value)
    except Exception:
        return None


def _stampable(key: str, value: object) -> AttributeValue | None:
    if value is None:
        return None
    if key in attr.ID_ATTRIBUTES:
        return checks.coerce_id(value)
    if key == attr.TAG_TAGS:
        return _tags(value)
    text = jsontext.coerce_text(value)
    if text is None or not text.strip() or not jsontext.encodable(text):
        return None
    return text


def _tags(value: object) -> list[str] | None:
    if type(value) is checks.Tags:
        return value  # the scopes' own list, checked already
    if not isinstance(value, (list, tuple)):
        return None
    tags = [text for tag in value if (text := _tag(tag)) is not None]
    return list(dict.fromkeys(tags)) or None


def _tag(tag: object) -> str | None:
    text = jsontext.coerce_text(tag)
    if text is None:
        return None
    text = text.strip()
    return text if text and jsontext.encodable(text) else None


def _current() -> Context:
    # The current Context as the processor reads it: under a LangChain run (once the app
    # imported LangChain), with the run's ids as ids a scope's metadata names.
    current = get_current()
    if _LANGCHAIN in sys.modules:
        current = _langchain.with_run_ids(current)[0]
    return current


def get_attributes_from_context(context: Context | None = None) -> Iterator[tuple[str, AttributeValue]]:
    """Exactly the attributes the processor would stamp on a span started with ``context``, as pairs.

    (key, value) pairs, as OpenInference's function of the same name yields them, so code
    written for it runs unchanged (``for key, value in ...``, ``dict(...)``)::

        with using_user("u-1"):
            dict(get_attributes_from_context())  # -> {"user.id": "u-1"}
    """
    return iter(collect(_ALL, context, _current()).items())


def current_session_id(context: Context | None = None) -> str | None:
    """The session id in force, or ``None``.

    with using_session("s-1"):
        current_session_id()  # -> "s-1"
    """
    value = collect(_SESSION, context, _current()).get(attr.SESSION_ID)
    return value if isinstance(value, str) else None


def current_user_id(context: Context | None = None) -> str | None:
    """The user id in force, or ``None``.

    with using_user("u-1"):
        current_user_id()  # -> "u-1"
    """
    value = collect(_USER, context, _current()).get(attr.USER_ID)
    return value if isinstance(value, str) else None


def new_session_id() -> str:
    """A fresh random session id (a UUID4 string).

    session_id = new_session_id()
    """
    return str(uuid.uuid4())
