"""Settings: one frozen object read once from the environment and passed down."""

from __future__ import annotations

from collections.abc import Mapping

import msgspec


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    database_url: str
    redis_url: str
    secret_key: str
    api_base_url: str = "http://localhost:8000"
    public_base_url: str = ""
    cancel_url_template: str = "{base}/bookings/{booking_id}/cancel?token={token}"
    reschedule_url_template: str = "{base}/bookings/{booking_id}/reschedule?token={token}"
    # smtp://user:pass@host:587 (STARTTLS) or smtps://user:pass@host:465; or the SMTP_HOST family.
    smtp_url: str | None = None
    smtp_host: str | None = None
    smtp_port: int | None = None
    smtp_username: str | None = None
    smtp_password: str | None = None
    # Unset: STARTTLS when the server offers it (required when a password is sent).
    smtp_starttls: bool | None = None
    email_from: str = "Astrocal <no-reply@localhost>"
    stripe_secret_key: str | None = None
    stripe_webhook_secret: str | None = None
    stripe_api_base: str = "https://api.stripe.com"
    payment_timeout_minutes: int = 30
    webhook_allow_private_targets: bool = False
    webhook_timeout_seconds: float = 10.0
    # `astrocal dev` only: http webhooks to localhost/loopback (not other private addresses).
    webhook_dev_loopback: bool = False
    calendar_busy_timeout_seconds: float = 5.0
    calendar_busy_cache_seconds: int = 60
    rate_limit_enabled: bool = True
    rate_limit_per_minute: int = 1000
    rate_limit_per_day: int = 100_000
    rate_limit_public_per_minute: int = 120
    trusted_proxies: str = ""
    cors_allow_origins: str = "*"
    metrics_token: str | None = None
    log_level: str = "info"
    # Fast-path per-host-slot lock; correctness never depends on it (tests switch it off).
    slot_lock_enabled: bool = True
    database_pool_size: int = 20
    job_queue: str = "astrocal:queue"

    @property
    def links_base_url(self) -> str:
        return self.public_base_url or self.api_base_url


class SettingsError(Exception):
    pass


def load_settings(environ: Mapping[str, str], **overrides: object) -> Settings:
    """Settings from environment variables (upper-case field names); overrides win."""
    names = Settings.__struct_fields__
    fields: dict[str, object] = {n: environ[n.upper()] for n in names if n.upper() in environ}
    fields.update(overrides)
    try:
        settings = msgspec.convert(fields, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise SettingsError(str(exc)) from exc
    if len(settings.secret_key.encode()) < 32:
        raise SettingsError("SECRET_KEY must be at least 32 bytes")
    return settings
