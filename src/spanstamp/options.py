"""The processor's options: their ``SPANSTAMP_*`` variables, and how each is read and checked.

``SessionSpanProcessor(...)``, ``install(...)`` and ``configure(...)`` take the same
options (:class:`ProcessorOptions`); each left as ``None`` is read from its variable, and
a bad value is reported (never echoed) with the default kept::

    SessionSpanProcessor(attributes=known_attributes(["session.id"], "my setting"))
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final, NamedTuple, TypedDict

from opentelemetry.context import Context
from opentelemetry.util.types import AttributeValue

from spanstamp import attributes as attr
from spanstamp import privacy, propagation, rules

ATTRIBUTES_ENV: Final = "SPANSTAMP_ATTRIBUTES"
GEN_AI_CONVERSATION_ID_ENV: Final = "SPANSTAMP_GEN_AI_CONVERSATION_ID"
STAMP_LOCAL_ROOT_ENV: Final = "SPANSTAMP_STAMP_LOCAL_ROOT"
OPENAI_USER_IDS_ENV: Final = "SPANSTAMP_OPENAI_USER_IDS"
BAGGAGE_MAX_LENGTH_ENV: Final = "SPANSTAMP_BAGGAGE_MAX_LENGTH"


class ProcessorOptions(TypedDict, total=False):
    """The :class:`SessionSpanProcessor` options that ``install()`` and ``configure()`` pass on.

    install(provider, attributes=["session.id", "user.id"])
    """

    attributes: Iterable[str] | None
    gen_ai_conversation_id: bool | None
    stamp_local_root: bool | None
    openai_user_ids: bool | None
    trust_baggage: bool | Iterable[str] | None
    baggage_max_length: int | None
    hash_user_ids: bool | str | bytes | None
    fill_traces: bool | None


class Stamping(NamedTuple):
    """What a :class:`~spanstamp.SessionSpanProcessor`'s options come to, the variables read.

    stamping(None, None, None, None, None, None).keys  # -> attributes.CONTEXT_ATTRIBUTES
    """

    #: The context keys stamped, in order, and as a set.
    keys: tuple[str, ...]
    key_set: frozenset[str]
    #: What marks a Context as worth reading: the keys, and the private keys under which
    #: ids that a scope's metadata names wait.
    watch: frozenset[str]
    #: Whether the session id is also written as ``gen_ai.conversation.id``.
    conversation: bool
    #: The baggage keys trusted, and the length cap of their values.
    trusted: frozenset[str]
    baggage_cap: int
    stamp_local_root: bool
    openai_user_ids: bool


def stamping(
    attributes: Iterable[str] | None,
    gen_ai_conversation_id: bool | None,
    stamp_local_root: bool | None,
    openai_user_ids: bool | None,
    trust_baggage: bool | Iterable[str] | None,
    baggage_max_length: int | None,
) -> Stamping:
    """The processor's options, each left as ``None`` read from its ``SPANSTAMP_*`` variable.

    Bad values are reported (``rules.reject``) and replaced by the default::

        stamping(["session.id"], True, None, None, None, None).conversation  # -> True
    """
    if attributes is None:
        listed = rules.env_list(ATTRIBUTES_ENV)
        keys = attr.CONTEXT_ATTRIBUTES if listed is None else known_attributes(listed, ATTRIBUTES_ENV)
    else:
        keys = known_attributes(attributes, "SessionSpanProcessor(attributes)")
    key_set = frozenset(keys)
    watch = key_set | {key for key, target in attr.FROM_METADATA.items() if target in key_set}
    if gen_ai_conversation_id is None:
        gen_ai_conversation_id = rules.env_flag(GEN_AI_CONVERSATION_ID_ENV, False)
    trusted, baggage_cap = trusted_baggage(trust_baggage, baggage_max_length, key_set)
    if stamp_local_root is None:
        stamp_local_root = rules.env_flag(STAMP_LOCAL_ROOT_ENV, False)
    if openai_user_ids is None:
        openai_user_ids = rules.env_flag(OPENAI_USER_IDS_ENV, False)
    return Stamping(
        keys=keys,
        key_set=key_set,
        watch=watch,
        conversation=bool(gen_ai_conversation_id) and attr.SESSION_ID in key_set,
        trusted=trusted,
        baggage_cap=baggage_cap,
        stamp_local_root=bool(
            rules.env_flag(STAMP_LOCAL_ROOT_ENV, False) if stamp_local_root is None else stamp_local_root
        ),
        openai_user_ids=bool(
            rules.env_flag(OPENAI_USER_IDS_ENV, False) if openai_user_ids is None else openai_user_ids
        ),
    )


def known_attributes(names: Iterable[str], where: str) -> tuple[str, ...]:
    """The known names among ``names``, in stamping order; none known (all blank or unknown) keeps all.

    known_attributes(["user.id", "session.id"], "SessionSpanProcessor(attributes)")  # -> ("session.id", "user.id")
    """
    if isinstance(names, str):
        rules.reject(where, "expected a list of attribute names, got a single str", TypeError, "all are stamped")
        return attr.CONTEXT_ATTRIBUTES
    chosen = set()
    given = 0
    for name in names:
        given += 1
        if name in attr.CONTEXT_ATTRIBUTES:
            chosen.add(name)
        else:
            rules.reject(
                where,
                f"unknown attribute name ({rules.describe(name)}); known: {', '.join(attr.CONTEXT_ATTRIBUTES)}",
            )
    if not chosen and (given or where == ATTRIBUTES_ENV):  # only an explicit [] in code means none
        # Stamping nothing is never what a list of names meant: a typo must not
        # silently turn the processor off.
        rules.reject(where, "names no known attribute", outcome="all are stamped")
        return attr.CONTEXT_ATTRIBUTES
    return tuple(key for key in attr.CONTEXT_ATTRIBUTES if key in chosen)


def apply_hashing(option: bool | str | bytes | None) -> bool:
    """Apply the ``hash_user_ids`` option to the process-wide setting; whether this processor asked.

    Hashing happens where ids enter the Context, so it holds for the whole process:
    ``True`` (or the variable) turns it on, a key also sets the key. ``False`` only
    means this processor does not ask; it never turns off what the process set::

        apply_hashing(secret_key)  # -> True; configure_privacy(hash_user_ids=True, user_id_key=secret_key)
    """
    where = "SessionSpanProcessor(hash_user_ids)"
    if option is None:
        option = privacy.env_hash_user_ids()
    if option is False:
        return False
    if option is not True:
        key = privacy.check_key(option, where)
        if key is not None:
            privacy.set_key(key)
    privacy.configure_privacy(hash_user_ids=True)
    if privacy.pseudonymizer() is None:
        rules.reject(
            where,
            f"hashing is on but there is no key (pass one, or set {privacy.USER_ID_KEY_ENV})",
            outcome="user ids are left out rather than stamped raw",
        )
    return True


def trusted_baggage(
    option: bool | Iterable[str] | None, cap: int | None, stamped: frozenset[str]
) -> tuple[frozenset[str], int]:
    """The inbound baggage keys to take among ``stamped`` (none by default), and the cap on their length.

    trusted_baggage(True, None, frozenset({"session.id"}))  # -> ({"session.id"}, 256)
    """
    if option is None:
        trusted = propagation.env_trusted_keys() or frozenset()
    else:
        trusted = propagation.trusted_keys(option, "SessionSpanProcessor(trust_baggage)")
    if cap is None:
        cap = rules.env_positive_int(BAGGAGE_MAX_LENGTH_ENV, rules.max_id_length())
    elif isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
        rules.reject(
            "SessionSpanProcessor(baggage_max_length)",
            f"expected a positive int, got {rules.describe(cap)}",
            TypeError,
            "the id cap applies",
        )
        cap = rules.max_id_length()
    return trusted & stamped, cap


def with_option_ids(
    found: dict[str, AttributeValue] | None,
    parent: Context | None,
    current: Context,
    trusted: frozenset[str],
    baggage_cap: int,
    conversation: bool,
) -> dict[str, AttributeValue]:
    """``found`` with what the options add: trusted inbound baggage ids, ``gen_ai.conversation.id``.

    with_option_ids({"session.id": "s-1"}, None, get_current(), frozenset(), 256, True)
    # -> {"session.id": "s-1", "gen_ai.conversation.id": "s-1"}
    """
    found = {} if found is None else found
    if trusted:
        # Inbound ids only fill what no local scope set; the upstream service already
        # hashed a user id it propagated, so it is not hashed again.
        for key, value in propagation.inbound_ids(
            parent if parent is not None else current, trusted, baggage_cap
        ).items():
            found.setdefault(key, value)
        if parent is not None:
            for key, value in propagation.inbound_ids(current, trusted, baggage_cap).items():
                found.setdefault(key, value)
    if conversation and attr.SESSION_ID in found:
        found[attr.GEN_AI_CONVERSATION_ID] = found[attr.SESSION_ID]
    return found
