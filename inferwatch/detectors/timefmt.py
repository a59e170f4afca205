"""Event-time formatting: epoch seconds to RFC 3339, no clock involved."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

__all__ = ["rfc3339"]


def rfc3339(epoch_seconds: float) -> str:
    """Format event time in UTC with millisecond precision; never raises.

    >>> rfc3339(1761955200.1)
    '2025-11-01T00:00:00.100Z'
    >>> rfc3339(1793491200000.0)  # a time the decoder would refuse (year 58,803) still formats
    '58803-06-23T00:00:00.000Z'
    """
    millis = int(round(epoch_seconds * 1000))
    try:
        dt = datetime.fromtimestamp(millis // 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):  # beyond datetime's years 1..9999
        return str(np.datetime64(millis, "ms")) + "Z"
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{millis % 1000:03d}Z"
