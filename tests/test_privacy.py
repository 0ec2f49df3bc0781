"""Pseudonymous user ids: keyed HMAC-SHA256, key from an argument or the environment."""

from __future__ import annotations

import hashlib
import hmac
import logging

import pytest

from spanstamp import privacy
from spanstamp.privacy import USER_ID_KEY_ENV, _Pseudonymizer, check_key, pseudonymize, user_id_key
from support import strict_mode
from threads import run_in_threads

KEY = "k3y-for-tests-0123456789abcdef0123"
EMAIL = "ada.lovelace@example.com"


def _reference(user_id: str, key: str | bytes = KEY) -> str:
    # Computed here with hmac.new, independently of the module's one-shot hmac.digest.
    secret = key.encode() if isinstance(key, str) else key
    return hmac.new(secret, user_id.encode(), hashlib.sha256).hexdigest()


def test_a_pseudonym_is_the_hex_hmac_sha256_of_the_id_under_the_key() -> None:
    pseudonym = pseudonymize(EMAIL, key=KEY)
    assert pseudonym == _reference(EMAIL)
    assert len(pseudonym) == 64
    assert set(pseudonym) <= set("0123456789abcdef")
    assert EMAIL not in pseudonym


def test_the_same_id_and_key_always_give_the_same_pseudonym_and_str_or_bytes_keys_agree() -> None:
    assert pseudonymize(EMAIL, key=KEY) == pseudonymize(EMAIL, key=KEY.encode())
    assert pseudonymize(EMAIL, key=KEY) != pseudonymize(EMAIL, key=KEY + "x")
    assert pseudonymize(EMAIL, key=KEY) != pseudonymize("grace@example.com", key=KEY)


def test_ids_are_normalized_as_scopes_normalize_them() -> None:
    assert pseudonymize(" 42 ", key=KEY) == pseudonymize(42, key=KEY) == _reference("42")
    assert pseudonymize(f"\t{EMAIL}\n", key=KEY) == pseudonymize(EMAIL, key=KEY)

    class Tagged(str):
        pass

    assert pseudonymize(Tagged(f" {EMAIL} "), key=KEY) == _reference(EMAIL)


def test_without_an_argument_the_key_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(USER_ID_KEY_ENV, KEY)
    assert pseudonymize(EMAIL) == _reference(EMAIL)
    # The argument wins over the variable.
    assert pseudonymize(EMAIL, key="other-key") == _reference(EMAIL, "other-key")


def test_no_key_at_all_raises_a_clear_error_without_the_id(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(USER_ID_KEY_ENV, raising=False)
    with pytest.raises(ValueError, match="no key to pseudonymize with") as caught:
        pseudonymize(EMAIL)
    assert USER_ID_KEY_ENV in str(caught.value)
    assert "pseudonymize(user_id)" in str(caught.value)
    assert EMAIL not in str(caught.value)


@pytest.mark.parametrize(
    ("user_id", "error", "words"),
    [
        (3.5, TypeError, "expected a str or int, got a value of type float"),
        (True, TypeError, "got a value of type bool"),
        (None, TypeError, "got a value of type NoneType"),
        (b"ada@example.com", TypeError, "got a value of type bytes"),
        ("   ", ValueError, "got an empty or blank str"),
    ],
)
def test_a_bad_id_raises_and_the_message_does_not_show_it(user_id: object, error: type[Exception], words: str) -> None:
    with pytest.raises(error, match="pseudonymize\\(user_id\\)") as caught:
        pseudonymize(user_id, key=KEY)  # type: ignore[arg-type]
    assert words in str(caught.value)
    assert "ada@example.com" not in str(caught.value)


def test_user_id_key_takes_the_argument_then_the_variable_then_none() -> None:
    environ = {USER_ID_KEY_ENV: "from-env"}
    assert user_id_key("from-arg", environ=environ) == b"from-arg"
    assert user_id_key(b"\x00\xffraw", environ=environ) == b"\x00\xffraw"
    assert user_id_key(environ=environ) == b"from-env"
    assert user_id_key(environ={}) is None
    assert user_id_key("clé", environ={}) == "clé".encode()


@pytest.mark.parametrize(
    ("key", "environ", "where"),
    [
        ("", {}, "user_id_key(key)"),
        (b"  ", {}, "user_id_key(key)"),
        (None, {USER_ID_KEY_ENV: ""}, USER_ID_KEY_ENV),
        (None, {USER_ID_KEY_ENV: " \n"}, USER_ID_KEY_ENV),
    ],
)
def test_an_empty_key_warns_naming_where_it_came_from_and_counts_as_none(
    key: str | bytes | None, environ: dict[str, str], where: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="spanstamp"):
        assert user_id_key(key, environ=environ) is None
    assert f"{where}: got an empty or blank key; no key is used" in caplog.text
    with strict_mode(), pytest.raises(ValueError, match="empty or blank key"):
        user_id_key(key, environ=environ)


def test_a_key_of_the_wrong_type_is_rejected_without_showing_it(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="spanstamp"):
        assert user_id_key(918273645, environ={}) is None  # type: ignore[arg-type]
    assert "user_id_key(key): expected a str or bytes, got a value of type int" in caplog.text
    assert "918273645" not in caplog.text
    with strict_mode(), pytest.raises(TypeError) as caught:
        check_key(918273645, "SessionSpanProcessor(hash_user_ids)")
    assert str(caught.value).startswith("SessionSpanProcessor(hash_user_ids): expected a str or bytes")
    assert "918273645" not in str(caught.value)


def test_the_hot_path_pseudonymizer_agrees_with_pseudonymize() -> None:
    hashed = _Pseudonymizer(KEY.encode())
    for user_id in [EMAIL, "42", "ünïcode-ü", "u-1"]:
        assert hashed(user_id) == pseudonymize(user_id, key=KEY)
        assert hashed(user_id) == pseudonymize(user_id, key=KEY)  # the cached answer too
    assert KEY not in repr(hashed)


def test_the_pseudonymizer_cache_stays_bounded_and_answers_stay_right() -> None:
    hashed = _Pseudonymizer(KEY.encode())
    many = [f"user-{n}" for n in range(privacy._CACHE_SIZE * 2 + 7)]
    for user_id in many:
        assert hashed(user_id) == _reference(user_id)
        assert len(hashed._cache) <= privacy._CACHE_SIZE
    assert hashed(many[0]) == _reference(many[0])


def test_the_pseudonymizer_is_safe_to_share_between_threads() -> None:
    hashed = _Pseudonymizer(KEY.encode())
    ids = [f"user-{n}" for n in range(privacy._CACHE_SIZE + 500)]
    expected = {user_id: _reference(user_id) for user_id in ids}
    wrong: list[str] = []

    def work(offset: int) -> None:
        for user_id in ids[offset:] + ids[:offset]:
            if hashed(user_id) != expected[user_id]:
                wrong.append(user_id)

    errors = run_in_threads(work, (n * 997 for n in range(4)))
    assert errors == []
    assert wrong == []
