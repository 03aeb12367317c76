"""Sealing and digests under SECRET_KEY: round trips, and everything that must refuse to open."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app import crypto

SECRET = "a-secret-key-of-at-least-32-bytes-0123"
OTHER = "another-secret-key-of-32-bytes-or-more"


@given(st.binary(max_size=2048), st.binary(max_size=64))
def test_seal_opens_back_and_never_holds_the_plaintext(plain: bytes, bound: bytes) -> None:
    sealed = crypto.seal(SECRET, "test", plain, bound_to=bound)
    assert crypto.unseal(SECRET, "test", sealed, bound_to=bound) == plain
    if len(plain) >= 8:
        assert plain not in sealed


def test_each_seal_is_different() -> None:
    assert crypto.seal(SECRET, "test", b"same") != crypto.seal(SECRET, "test", b"same")


@pytest.mark.parametrize(
    ("secret", "purpose", "bound"),
    [(OTHER, "test", b"row-1"), (SECRET, "other", b"row-1"), (SECRET, "test", b"row-2")],
    ids=["other secret", "other purpose", "other binding"],
)
def test_seal_opens_only_with_its_secret_purpose_and_binding(
    secret: str, purpose: str, bound: bytes
) -> None:
    sealed = crypto.seal(SECRET, "test", b"ctk_secret", bound_to=b"row-1")
    with pytest.raises(crypto.Unreadable):
        crypto.unseal(secret, purpose, sealed, bound_to=bound)


@given(st.data())
def test_any_altered_byte_is_refused(data: st.DataObject) -> None:
    sealed = bytearray(crypto.seal(SECRET, "test", b"ctk_secret"))
    index = data.draw(st.integers(0, len(sealed) - 1))
    sealed[index] ^= data.draw(st.integers(1, 255))
    with pytest.raises(crypto.Unreadable):
        crypto.unseal(SECRET, "test", bytes(sealed))


@pytest.mark.parametrize("sealed", [b"", b"\x01", b"\x02" + b"0" * 60, b"\x01" + b"0" * 20])
def test_garbage_is_refused(sealed: bytes) -> None:
    with pytest.raises(crypto.Unreadable):
        crypto.unseal(SECRET, "test", sealed)


def test_digest_depends_on_secret_purpose_and_each_part() -> None:
    base = crypto.digest(SECRET, "scope", "a", "b")
    assert base == crypto.digest(SECRET, "scope", "a", "b")
    assert base != crypto.digest(OTHER, "scope", "a", "b")
    assert base != crypto.digest(SECRET, "other", "a", "b")
    assert base != crypto.digest(SECRET, "scope", "ab")
    assert base != crypto.digest(SECRET, "scope", "a", "b", "")
