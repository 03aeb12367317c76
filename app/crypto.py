"""Secrets at rest: AES-256-GCM and keyed digests under keys derived from SECRET_KEY.

Every use names its `purpose` (a short label such as "idempotency-response"); HKDF-SHA256 turns
SECRET_KEY and the purpose into that use's own key, so a value sealed for one use can never be
opened, or a digest recomputed, by another. Webhook secrets and calendar credentials take the
same two calls with their own purposes.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

# First byte of every sealed value, so a later format (or a rotated key) can be told apart.
_VERSION = b"\x01"
_SALT = 16
_NONCE = 12


class Unreadable(Exception):
    """A sealed value that this SECRET_KEY and purpose did not seal, or that was altered."""


def _key(secret: str, purpose: str, salt: bytes | None) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=_info(purpose))
    return hkdf.derive(secret.encode())


def _info(purpose: str) -> bytes:
    return b"astrocal/" + purpose.encode()


def seal(secret: str, purpose: str, plaintext: bytes, *, bound_to: bytes = b"") -> bytes:
    """`plaintext` encrypted and authenticated; `bound_to` (not stored) must match to open it.

    Each value gets its own key, derived with a random salt: random 96-bit GCM nonces under one
    long-lived key are safe only up to ~2**32 messages, which a busy server would reach.
    """
    salt, nonce = os.urandom(_SALT), os.urandom(_NONCE)
    sealed = AESGCM(_key(secret, purpose, salt)).encrypt(
        nonce, plaintext, _info(purpose) + bound_to
    )
    return _VERSION + salt + nonce + sealed


def unseal(secret: str, purpose: str, sealed: bytes, *, bound_to: bytes = b"") -> bytes:
    """The plaintext that `seal` was given; Unreadable when anything differs."""
    version, salt = sealed[:1], sealed[1 : 1 + _SALT]
    nonce, body = sealed[1 + _SALT : 1 + _SALT + _NONCE], sealed[1 + _SALT + _NONCE :]
    if version != _VERSION or len(nonce) != _NONCE:
        raise Unreadable("not a sealed value")
    try:
        return AESGCM(_key(secret, purpose, salt)).decrypt(nonce, body, _info(purpose) + bound_to)
    except InvalidTag:
        raise Unreadable("sealed with another key or purpose, or altered") from None


def digest(secret: str, purpose: str, *parts: str) -> bytes:
    """HMAC-SHA256 of `parts` (length-prefixed, so no two lists of parts collide)."""
    message = b"".join(len(p.encode()).to_bytes(4, "big") + p.encode() for p in parts)
    return hmac.new(_key(secret, purpose, None), message, hashlib.sha256).digest()
