"""Prefixed ids: the base32 codec against a plain reference, and what decode refuses."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from app import ids

ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


def reference(prefix: str, value: uuid.UUID) -> str:
    """26 digits of 5 bits, most significant first."""
    number, digits = value.int, []
    for _ in range(26):
        digits.append(ALPHABET[number & 31])
        number >>= 5
    return f"{prefix}_{''.join(reversed(digits))}"


@given(st.uuids())
def test_encode_matches_the_reference_and_decodes_back(value: uuid.UUID) -> None:
    text = ids.encode("bk", value)
    assert text == reference("bk", value)
    assert ids.decode("bk", text) == value


def test_extremes() -> None:
    assert ids.encode("evt", uuid.UUID(int=0)) == "evt_" + "0" * 26
    top = uuid.UUID(int=2**128 - 1)
    assert ids.encode("evt", top) == "evt_7" + "z" * 25
    assert ids.decode("evt", "evt_7" + "z" * 25) == top


def test_decode_refuses_malformed_ids() -> None:
    good = ids.encode("bk", ids.new_uuid())
    body = good[3:]
    for text in [
        "evt_" + body,  # another prefix
        "bk" + body,  # no separator
        "bk_" + body[:-1],  # too short
        "bk_" + body + "0",  # too long
        "bk_" + body.upper(),  # not our alphabet's case
        "bk_" + body[:-1] + "u",  # a letter Crockford's base32 leaves out
        "bk_" + body[:-1] + "i",
        "bk_8" + body[1:],  # 131 bits
        "bk_" + body[:-1] + "\u0660",  # a non-ASCII digit
        "",
    ]:
        assert ids.decode("bk", text) is None, text
