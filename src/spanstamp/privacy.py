"""Privacy-safe user ids: a stable pseudonym for a personal identifier.

A pseudonym is the keyed HMAC-SHA256 of the id, as 64 lowercase hex characters. The
same id and key always give the same pseudonym, so a backend still groups a user's
sessions; without the key nobody can test a guessed email against it, which a plain
(unkeyed) hash would allow::

    os.environ["SPANSTAMP_USER_ID_KEY"] = secret        # or pass key=secret
    with using_user(pseudonymize(request.user.email)):
        ...

The key comes from the ``key`` argument or the ``SPANSTAMP_USER_ID_KEY`` variable. Use
a random key of 32 bytes or more, the same in every service whose spans should agree,
and keep it out of telemetry: whoever holds it can recompute pseudonyms of guessed ids.

Hashing every user id is process-wide, because it happens where ids enter the Context:
a scope's user id (and a ``user_id`` its metadata names) goes in as its pseudonym, so
every reader (spanstamp's processor, OpenInference's tracer, samplers, the app's own
``current_user_id()``) sees only the pseudonym::

    configure_privacy(hash_user_ids=True)   # or SPANSTAMP_HASH_USER_IDS=1, key as above
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Mapping
from typing import Any, Final

from spanstamp import attributes as attr
from spanstamp import checks, jsontext, rules

USER_ID_KEY_ENV: Final = "SPANSTAMP_USER_ID_KEY"
HASH_USER_IDS_ENV: Final = "SPANSTAMP_HASH_USER_IDS"

# Pseudonyms are computed as spans start; a small cache makes a user's second and later
# spans cheap. It is cleared when full rather than tracking recency, which would cost
# more per span than recomputing an HMAC now and then.
_CACHE_SIZE: Final = 4096


def user_id_key(key: str | bytes | None = None, *, environ: Mapping[str, str] = os.environ) -> bytes | None:
    """The pseudonymization key: ``key`` if given, else ``SPANSTAMP_USER_ID_KEY``, else ``None``.

    A str is taken as UTF-8. An empty or blank key is rejected (a warning naming the
    argument or the variable, an error in strict mode) and counts as no key::

        user_id_key("a-long-random-secret")  # -> b"a-long-random-secret"
    """
    if key is not None:
        return check_key(key, "user_id_key(key)")
    raw = environ.get(USER_ID_KEY_ENV)
    if raw is None:
        return None
    return check_key(raw, USER_ID_KEY_ENV)


def check_key(key: object, where: str) -> bytes | None:
    """A key given as an option, as bytes; a bad one is rejected (named by ``where``) as no key.

    check_key(secret, "SessionSpanProcessor(hash_user_ids)")  # -> secret as UTF-8 bytes
    """
    if isinstance(key, str):
        data = key.encode("utf-8")
    elif isinstance(key, bytes):
        data = bytes(key)
    else:
        rules.reject(where, f"expected a str or bytes, got {rules.describe(key)}", TypeError, "no key is used")
        return None
    if not data.strip():
        rules.reject(where, "got an empty or blank key", outcome="no key is used")
        return None
    return data


def _digest(key: bytes, user_id: str) -> str:
    return hmac.digest(key, user_id.encode("utf-8", "surrogatepass"), "sha256").hex()


def pseudonymize(user_id: str | int, *, key: str | bytes | None = None) -> str:
    """A stable pseudonymous id for ``user_id``: HMAC-SHA256 with the key, in hex.

    The id is normalized as scopes do (surrounding whitespace stripped, an int written
    in decimal), so ``" 42 "`` and ``42`` give the same pseudonym. Raises ``ValueError``
    when there is no key or the id is blank, ``TypeError`` for other types; messages
    never show the id::

        pseudonymize("ada@example.com", key=secret)  # -> 64 lowercase hex characters
    """
    where = "pseudonymize(user_id)"
    if type(user_id) is str:
        text = user_id.strip()
    elif isinstance(user_id, int) and not isinstance(user_id, bool):
        text = str(user_id)
    elif isinstance(user_id, str):  # a str subclass: its text, as check_id takes it
        text = str.strip(user_id)
    else:
        raise TypeError(f"{where}: expected a str or int, got {rules.describe(user_id)}")
    if not text:
        raise ValueError(f"{where}: got an empty or blank str")
    secret = user_id_key(key)
    if secret is None:
        raise ValueError(
            f"{where}: no key to pseudonymize with; pass key=... or set {USER_ID_KEY_ENV} "
            "(a random secret, the same in every service)"
        )
    return _digest(secret, text)


class _Pseudonymizer:
    """Pseudonymizes ids already normalized by the input rules, with a bounded cache.

    Built once per processor; called for each span that carries a user id. Only plain
    dict reads and writes, so concurrent calls need no lock::

        hashed = _Pseudonymizer(key)("u-1")  # == pseudonymize("u-1", key=key)
    """

    __slots__ = ("_cache", "_key")

    def __init__(self, key: bytes) -> None:
        self._key = key
        self._cache: dict[str, str] = {}

    def __call__(self, user_id: str) -> str:
        cache = self._cache
        pseudonym = cache.get(user_id)
        if pseudonym is None:
            pseudonym = _digest(self._key, user_id)
            if len(cache) >= _CACHE_SIZE:
                cache.clear()
            cache[user_id] = pseudonym
        return pseudonym

    def __repr__(self) -> str:  # the key stays out of reprs, and so out of logs
        return "<spanstamp pseudonymizer>"


# --- Process-wide: the key, and whether user ids are hashed where they enter ----------


class _Settings:
    __slots__ = ("hash_user_ids", "key_loaded", "pseudonymizer")

    def __init__(self) -> None:
        self.hash_user_ids = False
        # The key is read from the environment on first use, not at import: a bad
        # SPANSTAMP_USER_ID_KEY in strict mode must not make ``import spanstamp`` fail.
        self.key_loaded = False
        self.pseudonymizer: _Pseudonymizer | None = None


_settings: Final = _Settings()


def configure_privacy(*, hash_user_ids: bool | None = None, user_id_key: str | bytes | None = None) -> None:
    """Hash every user id where it enters the Context, process-wide; ``None`` leaves a setting as it is.

    ``hash_user_ids`` starts from ``SPANSTAMP_HASH_USER_IDS`` (off; a value that is not a
    boolean counts as on: a privacy setting fails closed). ``user_id_key`` starts from
    ``SPANSTAMP_USER_ID_KEY`` and is the key propagation uses too. Hashing with no key
    leaves user ids out rather than using them raw::

        configure_privacy(hash_user_ids=True, user_id_key=os.environ["MY_SECRET"])
    """
    if hash_user_ids is not None:
        if not isinstance(hash_user_ids, bool):
            raise TypeError(f"configure_privacy(hash_user_ids) must be a bool, got {type(hash_user_ids).__name__}")
        _settings.hash_user_ids = hash_user_ids
    if user_id_key is not None:
        set_key(check_key(user_id_key, "configure_privacy(user_id_key)"))
    elif hash_user_ids and pseudonymizer() is None:
        _load_key()  # no key yet: the variable may have been set since it was first read


def hashing_user_ids() -> bool:
    """Whether user ids enter the Context as their pseudonyms.

    configure_privacy(hash_user_ids=True); hashing_user_ids()  # -> True
    """
    return _settings.hash_user_ids


def env_hash_user_ids(environ: Mapping[str, str] = os.environ) -> bool:
    """``SPANSTAMP_HASH_USER_IDS`` as a flag; unset is off, a value that is not a boolean is on.

    env_hash_user_ids({"SPANSTAMP_HASH_USER_IDS": "ture"})  # -> True, with a warning
    """
    return rules.env_flag(HASH_USER_IDS_ENV, False, environ, invalid=True)


def load_environment(environ: Mapping[str, str] = os.environ) -> None:
    """Read ``SPANSTAMP_HASH_USER_IDS`` and ``SPANSTAMP_USER_ID_KEY`` again (unset means off / no key).

    load_environment({"SPANSTAMP_HASH_USER_IDS": "1", "SPANSTAMP_USER_ID_KEY": secret})
    """
    _settings.hash_user_ids = env_hash_user_ids(environ)
    set_key(user_id_key(environ=environ))


def set_key(key: bytes | None) -> None:
    """Use ``key`` (checked already, by :func:`check_key`) for every pseudonym; ``None``: no key.

    The one key of the process: hashing and propagation share it::

        set_key(check_key(secret, "configure_propagation(user_id_key)"))
    """
    _settings.pseudonymizer = None if key is None else _Pseudonymizer(key)
    _settings.key_loaded = True


def _load_key() -> None:
    set_key(user_id_key())


def pseudonymizer() -> _Pseudonymizer | None:
    """The process's pseudonymizer (key from ``configure_*`` or the environment), or ``None``.

    hasher = pseudonymizer(); hashed = hasher("u-1") if hasher else None
    """
    if not _settings.key_loaded:
        _load_key()
    return _settings.pseudonymizer


_NO_KEY: Final = (
    f"user-id hashing is on but there is no key (set {USER_ID_KEY_ENV} or configure_privacy(user_id_key=...))"
)


def hide_user_id(user_id: str, where: str) -> str | None:
    """The pseudonym that stands for a checked user id, or ``None`` (rejected) without a key.

    hide_user_id("u-1", "using_user(user_id)")  # -> 64 hex characters
    """
    hasher = pseudonymizer()
    if hasher is None:
        rules.reject(where, _NO_KEY, outcome="the user id is left out rather than used raw")
        return None
    return hasher(user_id)


def hide_metadata_users(data: dict[str, Any], where: str | None = None, *, keep: object = None) -> dict[str, Any]:
    """``data`` with the user ids it names (``user_id``) as pseudonyms; without a key, or
    for an invalid id, the entry is left out. A value equal to ``keep`` (a pseudonym
    already) stays. ``where`` names the argument in a warning (``None``: quietly, for
    values another library wrote)::

        hide_metadata_users({"user_id": "ada", "tier": "pro"})  # -> {"user_id": "<hex>", "tier": "pro"}
    """
    names = [key for key in attr.METADATA_USER_KEYS if key in data and (keep is None or data[key] != keep)]
    if not names:
        return data
    hasher = pseudonymizer()
    hidden = dict(data)
    for key in names:
        user = checks.coerce_id(hidden[key])
        if user is None or hasher is None:
            del hidden[key]
            if hasher is None and where is not None:
                rules.reject(where, _NO_KEY, outcome="the metadata's user id is left out rather than used raw")
        else:
            hidden[key] = hasher(user)
    return hidden


_settings.hash_user_ids = env_hash_user_ids()


def hide_found_user(user: object) -> str | None:
    """The pseudonym of a user id found where no scope put it (an instrumentor wrote it), quietly.

    ``None`` when it is no valid id or there is no key: it is then left out::

        hide_found_user("ada@example.com")  # -> 64 hex characters
    """
    text = checks.coerce_id(user)
    hasher = pseudonymizer()
    return None if text is None or hasher is None else hasher(text)


def hide_metadata_text(text: str, *, keep: object = None) -> str:
    """Metadata JSON with the user ids it names hashed (a value equal to ``keep`` stays).

    ``text`` itself when it names no user id to hash, or is not JSON::

        hide_metadata_text('{"user_id": "ada"}')  # -> '{"user_id": "<64 hex>"}'
    """
    if not any(f'"{key}"' in text for key in attr.METADATA_USER_KEYS):
        return text
    data = jsontext.decode_mapping(text)
    hidden = hide_metadata_users(data, keep=keep)
    return text if hidden is data else jsontext.dumps(hidden)
