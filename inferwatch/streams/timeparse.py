"""Fast RFC 3339 parsing of a column of timestamps (compiled, over packed UTF-8 text).

``YYYY-MM-DD(T|t| )HH:MM:SS[.fraction][Z|z|+HH:MM|-HH:MM]``; a time without
an offset (Python's ``isoformat()`` of a naive datetime, a database's export)
is read as UTC. Anything else is NaN here, and the decoder falls back to
epoch seconds and then to polars' general parser for those rows only.

>>> from inferwatch.detectors.types import TextArray
>>> rfc3339_seconds(TextArray.from_list(["2026-11-01T00:00:00.100Z", "2026-11-01 02:00:00+02:00", "1762000000", "2026-02-29T00:00:00Z"]))
array([1.7934912e+09, 1.7934912e+09,           nan,           nan])
>>> rfc3339_seconds(TextArray.from_list(["2026-11-01T00:00:00", "2026-11-01 00:00:00.250"])).tolist()
[1793491200.0, 1793491200.25]
"""

from __future__ import annotations

import numpy as np
from ..detectors.compiled import njit

from ..detectors.types import TextArray

__all__ = ["rfc3339_seconds", "rfc3339_one", "epoch_seconds", "from_epoch", "in_range", "EARLIEST", "LATEST"]

# Event time: an RFC 3339 string, or a number of seconds, milliseconds, microseconds or nanoseconds since
# the epoch, told apart by magnitude: below 1e11 it is seconds (1e11 s is the year 5138), below 1e14
# milliseconds, below 1e17 microseconds, else nanoseconds. (A millisecond timestamp before 1973-03-03
# would read as seconds; no producer sends those.) A time outside [EARLIEST, LATEST) is not a usable
# event time: the event is a dead letter naming ``timestamp``, never a crash later on.
EARLIEST = 0.0  # 1970-01-01T00:00:00Z
LATEST = 7_258_118_400.0  # 2200-01-01T00:00:00Z


def from_epoch(value: float) -> float:
    """Seconds from an epoch number in s, ms, us or ns (by magnitude).

    >>> from_epoch(1793491200), from_epoch(1793491200000), from_epoch(1793491200000000), from_epoch(1.7934912e18)
    (1793491200.0, 1793491200.0, 1793491200.0, 1793491200.0)
    """
    size = abs(value)
    if size < 1e11:
        return float(value)
    if size < 1e14:
        return value / 1e3
    if size < 1e17:
        return value / 1e6
    return value / 1e9


def epoch_seconds(values: np.ndarray) -> np.ndarray:
    """:func:`from_epoch` over an array (NaN stays NaN)."""
    size = np.abs(values)
    scale = np.where(size < 1e11, 1.0, np.where(size < 1e14, 1e3, np.where(size < 1e17, 1e6, 1e9)))
    return values / scale


def in_range(seconds):
    """True where a time in seconds is a usable event time (and not NaN)."""
    return (seconds >= EARLIEST) & (seconds < LATEST)


@njit(cache=True, nogil=True)
def _digits(row, start, count):
    value = 0
    for i in range(start, start + count):
        d = row[i] - 48
        if d < 0 or d > 9:
            return -1
        value = value * 10 + d
    return value


@njit(cache=True, nogil=True)
def _month_days(year, month):
    if month == 2:
        return 29 if (year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)) else 28
    return 30 if month in (4, 6, 9, 11) else 31


@njit(cache=True, nogil=True)
def _days_from_civil(y, m, d):
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


@njit(cache=True, nogil=True)
def _parse(data, offsets, out):
    for i in range(len(offsets) - 1):
        row = data[offsets[i]:offsets[i + 1]]
        width = len(row)
        out[i] = np.nan
        if width < 19 or row[4] != 45 or row[7] != 45 or row[13] != 58 or row[16] != 58:
            continue
        sep = row[10]
        if sep != 84 and sep != 116 and sep != 32:
            continue
        year, month, day = _digits(row, 0, 4), _digits(row, 5, 2), _digits(row, 8, 2)
        hour, minute, sec = _digits(row, 11, 2), _digits(row, 14, 2), _digits(row, 17, 2)
        if min(year, month, day, hour, minute, sec) < 0 or not (1 <= month <= 12 and 1 <= day <= 31):
            continue
        if hour > 23 or minute > 59 or sec > 60 or day > _month_days(year, month):
            continue
        pos = 19
        frac = 0.0
        if pos < width and row[pos] == 46:
            pos += 1
            scale = 0.1
            start = pos
            while pos < width and 48 <= row[pos] <= 57:
                frac += (row[pos] - 48) * scale
                scale *= 0.1
                pos += 1
            if pos == start:
                continue
        c = row[pos] if pos < width else 0  # no offset (a naive time, as Python's isoformat writes it): UTC
        offset = 0
        if c == 0:
            pass
        elif c == 90 or c == 122:
            pos += 1
        elif c == 43 or c == 45:
            if pos + 6 > width or row[pos + 3] != 58:
                continue
            oh, om = _digits(row, pos + 1, 2), _digits(row, pos + 4, 2)
            if oh < 0 or om < 0 or oh > 23 or om > 59:
                continue
            offset = (oh * 3600 + om * 60) * (1 if c == 43 else -1)
            pos += 6
        else:
            continue
        if pos != width:
            continue
        days = _days_from_civil(year, month, day)
        out[i] = days * 86400.0 + hour * 3600 + minute * 60 + sec - offset + frac


def rfc3339_seconds(text: TextArray) -> np.ndarray:
    """Epoch seconds of each string; NaN where it is not RFC 3339."""
    out = np.empty(len(text))
    _parse(np.frombuffer(text.data, dtype=np.uint8), text.offsets, out)
    return out


def rfc3339_one(text: str) -> float:
    """Epoch seconds of one string (the per-event guard path); NaN where it is not RFC 3339."""
    data = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    out = np.empty(1)
    _parse(data, np.array([0, len(data)], dtype=np.int64), out)
    return float(out[0])
