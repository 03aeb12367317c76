-- Idempotency-Key records are now scoped by a keyed digest of the route and the checked
-- credential, and their bodies are sealed (AES-256-GCM under a key derived from SECRET_KEY).
-- Records written before can never be found again under the new scopes, and their bodies hold
-- cancel tokens in plain text: drop them now rather than keep them until the hourly purge.
delete from idempotency_records;

comment on column idempotency_records.scope is
    'hex HMAC of the route and the credential that made the record (app.domain.idempotency)';
comment on column idempotency_records.body is
    'the response body, sealed by app.crypto (purpose idempotency-response)';
