"""Secrets at rest: AES-256-GCM under a per-purpose key derived from SECRET_KEY with HKDF."""

from __future__ import annotations

import os

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_NONCE_BYTES = 12


def _key(secret_key: str, purpose: str) -> AESGCM:
    """One key per purpose (webhook secrets, calendar passwords, ...), never SECRET_KEY itself."""
    derived = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=f"astrocal:{purpose}".encode()
    ).derive(secret_key.encode())
    return AESGCM(derived)


def seal(secret_key: str, purpose: str, plaintext: bytes, *, bound_to: bytes = b"") -> bytes:
    """nonce || ciphertext+tag. `bound_to` (e.g. the owning row's id) is authenticated, so a
    sealed value copied onto another row does not open."""
    nonce = os.urandom(_NONCE_BYTES)
    return nonce + _key(secret_key, purpose).encrypt(nonce, plaintext, bound_to)


def unseal(secret_key: str, purpose: str, sealed: bytes, *, bound_to: bytes = b"") -> bytes:
    """The plaintext; raises cryptography's InvalidTag when the key, purpose or binding differ."""
    nonce, body = sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:]
    return _key(secret_key, purpose).decrypt(nonce, body, bound_to)
