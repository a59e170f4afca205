"""Event-time formatting: epoch seconds to RFC 3339, no clock involved."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["rfc3339"]


def rfc3339(epoch_seconds: float) -> str:
    """Format event time in UTC with millisecond precision.

    >>> rfc3339(1761955200.1)
    '2025-11-01T00:00:00.100Z'
    """
    millis = int(round(epoch_seconds * 1000))
    dt = datetime.fromtimestamp(millis // 1000, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{millis % 1000:03d}Z"
