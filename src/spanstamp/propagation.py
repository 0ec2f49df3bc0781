"""Session and user ids across services, as W3C Baggage, with a trust boundary.

Outbound is opt-in, per scope (``propagate=True``) or for the whole process
(``configure_propagation(enabled=True)`` or ``SPANSTAMP_PROPAGATE=1``). A propagating
scope adds its ids to the Context's baggage, and OpenTelemetry's propagators copy the
baggage into the ``baggage`` header of every instrumented outgoing request::

    with using_attributes(session_id=conversation_id, user_id=email, propagate=True):
        httpx.post(retrieval_url, json=query)   # baggage: session.id=...,user.id=<pseudonym>

The user-id rule: that header goes to every host the process calls, third-party LLM
providers included, so a raw user id never propagates. ``user.id`` travels only as its
pseudonym (:func:`spanstamp.privacy.pseudonymize` with the configured key); without a
key the user id is not propagated and a warning says so. ``session.id`` travels as it
is: make it random (``new_session_id()``), not personal data.

Inbound is opt-in on the processor. :func:`inbound_ids` keeps only allow-listed keys
whose values pass the id rules, and drops everything else quietly: the header is
written by whoever calls the service.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Final

from opentelemetry.baggage import get_all
from opentelemetry.context import Context

from spanstamp import attributes as attr
from spanstamp import privacy, rules

PROPAGATE_ENV: Final = "SPANSTAMP_PROPAGATE"
TRUST_BAGGAGE_ENV: Final = "SPANSTAMP_TRUST_BAGGAGE"

#: The baggage keys a processor with ``trust_baggage=True`` reads: the ones
#: :func:`outbound_baggage` writes.
DEFAULT_TRUSTED_KEYS: Final = frozenset({attr.SESSION_ID, attr.USER_ID})

_NOT_PROPAGATED: Final = "the user id is not propagated"


class _Settings:
    __slots__ = ("enabled", "sent")

    def __init__(self) -> None:
        self.enabled = False
        # Whether any scope has put ids into baggage yet; until then a scope that does
        # not propagate has no stale baggage to clear and skips looking.
        self.sent = False


_settings: Final = _Settings()


def configure_propagation(*, enabled: bool | None = None, user_id_key: str | bytes | None = None) -> None:
    """Set the process-wide default for scopes that don't say; ``None`` leaves a setting as it is.

    ``enabled`` starts from ``SPANSTAMP_PROPAGATE`` (off by default). ``user_id_key`` is
    the key user ids are pseudonymized with before they propagate; it starts from
    ``SPANSTAMP_USER_ID_KEY``, and without one user ids stay in the process::

        configure_propagation(enabled=True, user_id_key=os.environ["MY_SECRET"])
    """
    if enabled is not None:
        if not isinstance(enabled, bool):
            raise TypeError(f"configure_propagation(enabled) must be a bool, got {type(enabled).__name__}")
        _settings.enabled = enabled
    if user_id_key is not None:
        privacy.set_key(privacy.check_key(user_id_key, "configure_propagation(user_id_key)"))


def load_environment(environ: Mapping[str, str] = os.environ) -> None:
    """Read ``SPANSTAMP_PROPAGATE`` and ``SPANSTAMP_USER_ID_KEY`` again (unset means off / no key).

    load_environment({"SPANSTAMP_PROPAGATE": "1"})
    """
    _settings.enabled = rules.env_flag(PROPAGATE_ENV, False, environ)
    privacy.set_key(privacy.user_id_key(environ=environ))


def propagation_enabled() -> bool:
    """Whether scopes that don't say ``propagate=`` propagate their ids.

    configure_propagation(enabled=True); propagation_enabled()  # -> True
    """
    return _settings.enabled


def outbound_baggage(values: Mapping[str, object], *, where: str = "propagate") -> dict[str, str]:
    """The baggage entries a propagating scope adds, from its changes keyed by attribute name.

    ``session.id`` goes as it is; ``user.id`` only as its pseudonym (as it is when the
    scope already holds it hashed), and not at all without a key (a warning naming
    ``where``; an error in strict mode). Other keys, and ``None`` (a hidden value), add
    nothing::

        outbound_baggage({"session.id": "s-1", "user.id": "ada@example.com"})
        # -> {"session.id": "s-1", "user.id": "<64 hex characters>"}
    """
    entries: dict[str, str] = {}
    session_id = values.get(attr.SESSION_ID)
    if type(session_id) is str and session_id:
        entries[attr.SESSION_ID] = session_id
    user_id = values.get(attr.USER_ID)
    if type(user_id) is str and user_id and values.get(attr.PSEUDONYMOUS[attr.USER_ID]) is user_id:
        entries[attr.USER_ID] = user_id
    elif type(user_id) is str and user_id:
        pseudonymizer = privacy.pseudonymizer()
        if pseudonymizer is None:
            rules.reject(
                where,
                "there is no key to pseudonymize the user id with, and raw user ids never leave the "
                f"process (set {privacy.USER_ID_KEY_ENV} or configure_propagation(user_id_key=...))",
                outcome=_NOT_PROPAGATED,
            )
        else:
            entries[attr.USER_ID] = pseudonymizer(user_id)
    if entries:
        _settings.sent = True
    return entries


def inbound_ids(context: Context, keys: frozenset[str], max_length: int) -> dict[str, str]:
    """The ids in ``context``'s baggage under allow-listed ``keys`` that pass the id rules.

    W3C baggage properties (after a ``;``) are not part of the id and are cut off. A
    value must be a str that, stripped, is non-empty, at most ``max_length``
    characters and printable (no control, format or line-separator characters). Anything
    else is dropped with a debug message that names the key, never the value. Never
    raises::

        inbound_ids(extracted_context, DEFAULT_TRUSTED_KEYS, 256)  # -> {"session.id": "s-1"}
    """
    try:
        baggage = get_all(context)
        if not baggage or not keys:
            return {}
        found: dict[str, str] = {}
        for key in keys:
            value = baggage.get(key)
            if value is None:
                continue
            text, problem = _checked_id(value, max_length)
            if text is not None:
                found[key] = text
            else:
                # Debug, not a warning: every caller can write this header, and a
                # warning per request would let any of them flood the logs.
                rules.logger.debug("inbound baggage entry %s dropped: %s", key, problem)
        return found
    except Exception:
        rules.logger.debug("reading inbound baggage failed; no inbound ids", exc_info=True)
        return {}


def _checked_id(value: object, max_length: int) -> tuple[str | None, str]:
    # (the id, "") or (None, what is wrong with it, without the value).
    if type(value) is not str:
        return None, f"expected a str, got {rules.describe(value)}"
    # W3C baggage metadata (``session.id=s;k=v``): OpenTelemetry's propagator keeps the
    # properties in the value. They describe the entry, they are not part of the id.
    # The propagator has already decoded the value, so a ``%3B`` in the header reads as
    # ``;`` here too: an id cannot carry a ``;`` through baggage.
    text = value.split(";", 1)[0].strip()
    if not text:
        return None, "empty or blank"
    if len(text) > max_length:
        return None, f"{rules.describe(text)}, over the cap of {max_length}"
    if not text.isprintable():
        # Control characters (CR/LF, NUL, escapes), bidi overrides and zero-width
        # characters would forge log lines or hide the real id in a backend's UI.
        return None, f"{rules.describe(text)} with unprintable characters"
    return text, ""


def trusted_keys(option: bool | Iterable[str], where: str) -> frozenset[str]:
    """The baggage keys a ``trust_baggage`` option allows; unknown keys are rejected one by one.

    ``True`` means :data:`DEFAULT_TRUSTED_KEYS`, ``False`` none; a list chooses among them::

        trusted_keys(["session.id"], "SessionSpanProcessor(trust_baggage)")  # -> {"session.id"}
    """
    if option is True:
        return DEFAULT_TRUSTED_KEYS
    if option is False or option is None:
        return frozenset()
    if isinstance(option, (str, bytes)) or not isinstance(option, Iterable):
        rules.reject(
            where,
            f"expected a bool or a list of baggage keys, got {rules.describe(option)}",
            TypeError,
            "none is trusted",
        )
        return frozenset()
    chosen = set()
    for key in option:
        if key in DEFAULT_TRUSTED_KEYS:
            chosen.add(key)
        else:
            rules.reject(
                where,
                f"cannot trust this baggage key ({rules.describe(key)}); choose from "
                f"{', '.join(sorted(DEFAULT_TRUSTED_KEYS))}",
                outcome="the key is not trusted",
            )
    return frozenset(chosen)


def env_trusted_keys(environ: Mapping[str, str] = os.environ) -> frozenset[str] | None:
    """``SPANSTAMP_TRUST_BAGGAGE``: a boolean or a comma list of keys; ``None`` when unset.

    env_trusted_keys({"SPANSTAMP_TRUST_BAGGAGE": "session.id"})  # -> {"session.id"}
    """
    raw = environ.get(TRUST_BAGGAGE_ENV)
    if raw is None or not raw.strip():
        return None
    if raw.strip().lower() in rules._TRUE | rules._FALSE:
        return trusted_keys(rules.env_flag(TRUST_BAGGAGE_ENV, False, environ), TRUST_BAGGAGE_ENV)
    return trusted_keys(rules.env_list(TRUST_BAGGAGE_ENV, environ) or [], TRUST_BAGGAGE_ENV)


_settings.enabled = rules.env_flag(PROPAGATE_ENV, False)
