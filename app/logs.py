"""JSON-lines logging: one object per line with ts, level, msg and request context."""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime

import msgspec

_CONTEXT = (
    "request_id",
    "method",
    "route",
    "status",
    "duration_ms",
    "organization_id",
    "api_key_id",
    "client_ip",
)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "msg": record.getMessage(),
            "logger": record.name,
        }
        for key in _CONTEXT:
            value = getattr(record, key, None)
            if value is not None:
                entry[key] = value
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return msgspec.json.encode(entry).decode()


def configure(level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("uvicorn.access", "httpx", "arq.worker", "arq.jobs"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
