"""Every route handler of the API, in one list."""

from app.api import api_keys, availability, bookings, docs, event_types, members, operations

HANDLERS = [
    *operations.HANDLERS,
    *api_keys.HANDLERS,
    *members.HANDLERS,
    *event_types.HANDLERS,
    *availability.HANDLERS,
    *bookings.HANDLERS,
    *docs.HANDLERS,
]
