"""Every route handler of the API, in one list."""

from app.api import (
    api_keys,
    availability,
    bookings,
    docs,
    event_types,
    events,
    members,
    operations,
    webhooks,
)

HANDLERS = [
    *operations.HANDLERS,
    *api_keys.HANDLERS,
    *members.HANDLERS,
    *event_types.HANDLERS,
    *availability.HANDLERS,
    *bookings.HANDLERS,
    *webhooks.HANDLERS,
    *events.HANDLERS,
    *docs.HANDLERS,
]
