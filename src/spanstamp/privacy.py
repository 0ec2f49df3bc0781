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
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Mapping
from typing import Final

from spanstamp import rules

USER_ID_KEY_ENV: Final = "SPANSTAMP_USER_ID_KEY"

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
