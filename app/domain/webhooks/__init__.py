"""Webhooks (spec §6.5, §6.6). What lives where:

- shape: the wire Structs (endpoints, deliveries, the event envelope), event names, limits;
- endpoints: endpoint management, URL and event-list validation, the sealed secret;
- fanout: an event's frozen envelope in the event log and one delivery per endpoint;
- attempts: one signed POST to the vetted address and its outcome;
- deliveries: listing, recording an attempt (schedule, streak, auto-disable), manual retry.
"""

from app.domain.webhooks.attempts import headers, send, sign
from app.domain.webhooks.deliveries import delivery_for_retry, list_deliveries, record, retry_now
from app.domain.webhooks.endpoints import (
    check_events,
    check_url,
    create,
    delete,
    get,
    list_endpoints,
    new_secret,
    unseal_secret,
    update,
)
from app.domain.webhooks.fanout import envelope, fan_out
from app.domain.webhooks.shape import (
    AUTO_DISABLE_AFTER,
    EVENTS,
    RESPONSE_BODY_BYTES,
    USER_AGENT,
    DeliveryStatus,
    Outcome,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEndpointCreate,
    WebhookEndpointCreated,
    WebhookEndpointPatch,
    WebhookEvent,
    delivery_from_row,
)

__all__ = [
    "AUTO_DISABLE_AFTER",
    "EVENTS",
    "RESPONSE_BODY_BYTES",
    "USER_AGENT",
    "DeliveryStatus",
    "Outcome",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WebhookEndpointCreate",
    "WebhookEndpointCreated",
    "WebhookEndpointPatch",
    "WebhookEvent",
    "check_events",
    "check_url",
    "create",
    "delete",
    "delivery_for_retry",
    "delivery_from_row",
    "envelope",
    "fan_out",
    "get",
    "headers",
    "list_deliveries",
    "list_endpoints",
    "new_secret",
    "record",
    "retry_now",
    "send",
    "sign",
    "unseal_secret",
    "update",
]
