"""Email addresses: the wire type and its normalization."""

from __future__ import annotations

from typing import Annotated

from email_validator import EmailNotValidError, validate_email
from msgspec import Meta

from app.errors import ValidationFailed

# normalize_email() checks the syntax; the schema names the format.
EmailAddress = Annotated[
    str, Meta(min_length=3, max_length=254, extra_json_schema={"format": "email"})
]


def normalize_email(value: str, *, field: str) -> str:
    """A syntactically valid address (no DNS lookups), domain lowercased."""
    try:
        return validate_email(value.strip(), check_deliverability=False).normalized
    except EmailNotValidError:
        raise ValidationFailed.field(field, "Must be a valid email address") from None
