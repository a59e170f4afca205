"""Column roles: what a column *is*, inferred from its baseline, so IDs and free text do not page.

A categorical column whose baseline values are nearly all distinct is an
``identifier`` (a request id, a user id): a label never seen before is the
norm, so its missing rate is watched, and its repeat rate: ``<name>.repeat``
says, per event, whether its id is one of the column's last ``REPEAT_WINDOW``
ids (a retried or double-logged request). One whose values are long and
mostly hold spaces is ``text``: its missing rate and its length (a numeric
column ``<name>.length``) are watched. A numeric column named like an id
(``id``, ``*_id``, ``*Id``, ``uuid``) with integer, nearly unique values is
an ``identifier`` too (ids grow: their "distribution" always drifts), and
so is one with integer, nearly unique values that climb with the events
whatever its name (a sequence number, an order counter). A numeric column
holding epoch times (seconds, ms, us or ns: one unit for the column) that is
named like a time (``created_at``, ``signup_ts``, ``lastLoginTime``) or
climbs with the events at the clock's pace is a ``timestamp``: its level drifts by construction,
so its missing rate is watched and its *age*, a numeric column
``<name>.age`` = event time - its time, in seconds (a stale feed, a unit
slip). So is a text column whose values are ISO 8601 dates or times
(``2026-09-21``, ``2026-09-21T10:00:00Z``): a date's age counts whole days
(an ``event_date`` is always 0 days old; each midnight is not a new label),
and a text column of epoch numbers that would be a ``timestamp`` as numbers
(``"1793491200000"``).
A text column of numbers (``"12.50"``: at least 95 % of its values read as
finite numbers, and at least 32 distinct ones) is ``numeric_text``: its
missing rate, and its values as a numeric column ``<name>.value`` (a unit
slip or a shift there is a drift, not a flood of new labels); one of
integer, nearly unique values named like an id or climbing is an
``identifier``. A numeric column of integers that name things rather than
count them (a merchant category ``5411``, a zip code: at
least 32 distinct ones, each seen four times or more on average, thin even
between the 1st and 99th percentiles of the events, in steps of the divisor
95 % of them share, where a count, an age or an amount in whole units fills
its range; not one named like an id, whose new values are the norm) is
``code``: watched as a number, and its values as labels, a categorical column
``<name>.code`` (a code never seen before is a new category, named), beside
its numeric detectors. Any other column is watched by its kind; a ``numeric`` one also
by its *decimals*, a categorical column ``<name>.decimals`` saying per value
whether it is a whole number, has one or two decimals, or more (an upstream
job that starts rounding, a cast to integers, a change of currency to one
without cents: the quantile bins may keep their shares, the precision does not). ``columns.<name>.role`` in
the config overrides the inference.

>>> import numpy as np
>>> from inferwatch.detectors.types import CategoricalArray, NumericArray
>>> ids = CategoricalArray.from_labels([f"req-{i}" for i in range(500)])
>>> words = CategoricalArray.from_labels([f"the parcel {i % 40} was late again, please call" for i in range(500)])
>>> infer_role("request_id", ids), infer_role("comment", words), infer_role("items", NumericArray(np.arange(500.0) % 9))
('identifier', 'text', 'numeric')
>>> infer_role("user_id", NumericArray(np.arange(500.0))), infer_role("seq", NumericArray(np.arange(500.0) + 7e5))
('identifier', 'identifier')
>>> times = 1.79e9 + np.arange(500.0)  # event times, epoch seconds
>>> infer_role("created_at", NumericArray((times - 30.0) * 1e3), times), time_scale(NumericArray(times * 1e3), times)
('timestamp', 1000.0)
>>> as_text = CategoricalArray.from_labels([str(int(t * 1e3)) for t in times - 30.0])
>>> infer_role("last_login_at", as_text, times), time_scale(as_text, times), ages(as_text, times, 1e3).values[:2]
('timestamp', 1000.0, array([30., 30.]))
"""

from __future__ import annotations

import math
import re
import zlib
from datetime import UTC, datetime

import numpy as np

from .kernels import window_repeats
from .types import CategoricalArray, Column, NumericArray

__all__ = ["infer_role", "code_labels", "text_lengths", "text_numbers", "label_numbers", "repeats", "repeat_flags",
           "time_scale", "ages", "decimals", "MIN_VALUES", "UNIQUE_SHARE", "REPEAT_WINDOW", "REPEAT_LABELS",
           "DECIMALS_LABELS"]

MIN_VALUES = 100  # present baseline values needed before a role other than the kind is inferred
UNIQUE_SHARE = 0.9  # distinct labels over present values from which a column is an identifier
SESSION_EVENTS = 50  # the longest mean run of one id that is still a session (a sorted column has longer ones)
TEXT_BYTES = 24  # mean label length (bytes) from which a column with spaces may be free text
REPEAT_WINDOW = 4096  # an id seen among the column's last this many ids is a repeat
REPEAT_LABELS = ("new", "repeat")
DECIMALS_LABELS = ("integer", "1-2 decimals", "finer")
_ID_NAME = re.compile(r"(^|_)(id|uuid|guid)$|[a-z0-9]Id$", re.IGNORECASE)
_TIME_NAME = re.compile(r"(^|_)(at|ts|time|timestamp|date|datetime|epoch)$|[a-z0-9](At|Ts|Time|Timestamp|Date)$")
CLIMBS = 0.9  # rank correlation with the events' order from which a column climbs with them
TIME_SCALES = (1.0, 1e3, 1e6, 1e9)  # epoch seconds, ms, us, ns
EARLIEST_TIME = 631_152_000.0  # 1990-01-01: an epoch time before it is not one
IN_RANGE_SHARE = 0.95  # share of a column's values that must read as epoch times for it to hold times
ISO_TEXT = 0.0  # the "unit" of a text column of ISO 8601 dates or times
NUMBER_LEVELS = 32  # distinct numbers from which a text column of numbers is watched as numbers (fewer: codes)
CODE_SPARSITY = 0.1  # distinct values over the integers (in steps of the divisor 95 % of the events share) that
CODE_REPEATS = 4.0  # the 1st-99th percentiles span, up to which a numeric column holds codes; each seen this often
CODE_STEPS = (1_000_000, 100_000, 10_000, 1_000, 500, 100, 50, 25, 10, 5, 2)  # (an amount rounded to one of these)
_ISO = re.compile(r"\d{4}-\d{2}-\d{2}($|[T ]\d{2}:\d{2})")


def infer_role(name: str, column: Column, times: np.ndarray | None = None) -> str:
    """``identifier``, ``text``, ``timestamp``, or the column's kind (``numeric`` / ``categorical``);
    ``times``: the events' times (epoch seconds), for a numeric column."""
    if isinstance(column, NumericArray):
        present = ~np.isnan(column.values)
        values = column.values[present]
        if len(values) < MIN_VALUES:
            return "numeric"
        climbs, named = _climbs(values), bool(_TIME_NAME.search(name))
        if times is not None and (named or climbs) and time_scale(column, times, strict=True, paced=not named):
            return "timestamp"
        if ((_ID_NAME.search(name) or climbs) and np.all(values == np.round(values))
                and len(np.unique(values)) >= UNIQUE_SHARE * len(values)):
            return "identifier"
        return "code" if not _ID_NAME.search(name) and _codes(values) else "numeric"
    assert isinstance(column, CategoricalArray)
    present = column.codes[column.codes >= 0]
    if len(present) < MIN_VALUES:
        return "categorical"
    counts = np.bincount(present, minlength=len(column.categories))
    seen = np.flatnonzero(counts)
    labels = [column.categories[i] for i in seen]
    if times is not None and _iso_text(column, strict=True):
        return "timestamp"
    numbers = label_numbers(labels)
    if (np.isfinite(numbers) @ counts[seen] >= IN_RANGE_SHARE * len(present)
            and np.isfinite(numbers).sum() >= NUMBER_LEVELS):
        values = text_numbers(column).values
        if times is not None and infer_role(name, NumericArray(values), times) == "timestamp":
            return "timestamp"  # epoch times sent as text ("1793491200000")
        if infer_role(name, NumericArray(values[~np.isnan(values)])) == "identifier":
            return "identifier"
        return "numeric_text"
    lengths = np.array([len(label.encode()) for label in labels], dtype=np.float64)
    weights = counts[seen].astype(np.float64)
    mean_length = float(lengths @ weights / weights.sum())
    spaced = float(sum(w for label, w in zip(labels, weights) if " " in label.strip()) / weights.sum())
    if mean_length >= TEXT_BYTES and spaced >= 0.5:
        return "text"
    # an id logged on each event of a session: its runs are short (a reference sorted by the column is not)
    runs = 1 + int(np.count_nonzero(present[1:] != present[:-1]))
    sessions = len(seen) >= MIN_VALUES and len(seen) >= UNIQUE_SHARE * runs and len(present) <= SESSION_EVENTS * runs
    if len(seen) >= UNIQUE_SHARE * len(present) or sessions:
        return "identifier"
    return "categorical"


def _codes(values: np.ndarray) -> bool:
    """Whether present values are integer codes: ``NUMBER_LEVELS`` distinct ones or more, each seen
    ``CODE_REPEATS`` times on average, and thin between the 1st and 99th percentiles of the events: at most
    ``CODE_SPARSITY`` of the integers there, counted in steps of the largest of ``CODE_STEPS`` that 95 % of the
    events are multiples of (amounts rounded to 10 or to 1,000 fill their steps, a few stray exact values
    aside; a heavy tail's gaps are past the 99th percentile).

    >>> rng = np.random.default_rng(0)
    >>> mcc = rng.choice(np.array([4121, 4511, 4814, 5311, 5411, 5499, 5541, 5812, 5814, 5912, 5999, 7011]
    ...                           + list(range(7200, 9000, 53)), dtype=float), 5000)
    >>> amounts = np.round(rng.lognormal(3.0, 1.2, 5000))
    >>> _codes(mcc), _codes(amounts), _codes(amounts * 10), _codes(rng.poisson(30.0, 5000).astype(float))
    (True, False, False, False)
    >>> income = np.round(rng.lognormal(10.5, 0.5, 5000), -3)
    >>> income[:50] += 7  # rounded to thousands, a few exact values among them
    >>> users = rng.choice(rng.choice(np.arange(1e6), 500, replace=False), 5000)  # 500 users, ten events each
    >>> _codes(income), infer_role("user_id", NumericArray(users)), infer_role("user", NumericArray(users))
    (False, 'numeric', 'code')
    """
    if not (np.all(np.isfinite(values)) and np.all(values == np.round(values))) or np.abs(values).max() >= 2.0 ** 53:
        return False
    distinct = np.unique(values)
    if len(distinct) < NUMBER_LEVELS or len(values) < CODE_REPEATS * len(distinct):
        return False
    step = next((float(s) for s in CODE_STEPS if np.mean(values % s == 0) >= 0.95), 1.0)
    low, high = np.quantile(values, [0.01, 0.99])
    middle = distinct[(distinct >= low) & (distinct <= high)]
    return bool(len(middle) <= CODE_SPARSITY * ((high - low) / step + 1))


def code_labels(column: NumericArray) -> CategoricalArray:
    """A numeric column of codes as labels, each its integer's text (``5411``, not ``5411.0``); missing stays
    missing.

    >>> col = code_labels(NumericArray(np.array([5411.0, np.nan, 742.0, 5411.0, 0.5])))
    >>> [col.categories[c] if c >= 0 else None for c in col.codes]
    ['5411', None, '742', '5411', '0.5']
    """
    values = column.values
    present = ~np.isnan(values)
    distinct, inverse = np.unique(values[present], return_inverse=True)
    texts = [str(int(v)) if math.isfinite(v) and v == int(v) and abs(v) < 2.0 ** 53 else repr(float(v))
             for v in distinct.tolist()]
    order = sorted(range(len(texts)), key=texts.__getitem__)  # (labels sorted as text, as CategoricalArray keeps them)
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    codes = np.full(len(values), -1, dtype=np.int64)
    codes[present] = rank[inverse]
    return CategoricalArray(codes, tuple(texts[i] for i in order))


def _climbs(values: np.ndarray) -> bool:
    """Whether the values climb with the events' order (rank correlation at least ``CLIMBS``; tied values
    share their mean rank)."""
    if not len(values) or np.ptp(values) == 0:
        return False
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    ranks = (np.cumsum(counts) - (counts - 1) / 2.0)[inverse]
    order = np.arange(len(values), dtype=np.float64)
    return bool(np.corrcoef(ranks, order)[0, 1] >= CLIMBS)


def time_scale(column: Column, times: np.ndarray, strict: bool = False, paced: bool = False) -> float | None:
    """The unit (1, 1e3, 1e6 or 1e9 per second) that reads the column's values as epoch times nearest the
    events' own; with ``strict``, None unless ``IN_RANGE_SHARE`` of them then fall between 1990 and a day
    past the latest event (and, with ``paced``, unless they move about as fast as the events' time: a
    counter that happens to sit in that range is not a time). A text column: ``ISO_TEXT`` when its values
    read as ISO 8601 dates or times (``IN_RANGE_SHARE`` of them with ``strict``, any without), else None:
    ISO text is a time whatever its range (a birth date, an expiry date)."""
    if isinstance(column, CategoricalArray):
        if not (column.codes >= 0).any():
            return None
        if _iso_text(column, strict):
            return ISO_TEXT
        return time_scale(text_numbers(column), times, strict, paced)  # epoch numbers sent as text, or None
    assert isinstance(column, NumericArray)
    both = ~np.isnan(column.values) & np.isfinite(times)
    values, when = column.values[both], np.asarray(times, dtype=np.float64)[both]
    if len(values) < (MIN_VALUES if strict else 1):
        return None
    median_time, mid = float(np.median(when)), float(np.median(values))
    if mid <= 0 or median_time <= 0:
        return None
    scale = min(TIME_SCALES, key=lambda s: abs(np.log(mid / s / median_time)))
    if strict:
        seconds = values / scale
        inside = (seconds >= EARLIEST_TIME) & (seconds <= when.max() + 86_400.0)
        if inside.mean() < IN_RANGE_SHARE:
            return None
        if paced:  # the values' spread over the events' spread: about 1 for a time that follows the clock
            spread = np.subtract(*np.quantile(when, [0.9, 0.1]))
            pace = np.subtract(*np.quantile(seconds, [0.9, 0.1])) / spread if spread > 0 else 0.0
            if not 0.8 <= pace <= 1.25:
                return None
    return float(scale)


def _iso_text(column: CategoricalArray, strict: bool) -> bool:
    """Whether a text column's values read as ISO 8601 dates or times (``IN_RANGE_SHARE`` of them with
    ``strict``, any without)."""
    present = column.codes[column.codes >= 0]
    if not len(present):
        return False
    parsed = ~np.isnan(_label_seconds(column.categories)[0])
    return float(parsed[present].mean()) >= (IN_RANGE_SHARE if strict else 1e-9)


def ages(column: Column, times: np.ndarray, scale: float) -> NumericArray:
    """Seconds from each value's time to its event's (NaN where missing or unreadable): what a ``timestamp``
    is watched by; a date (no time of day) counts whole days.

    >>> dates = CategoricalArray.from_labels(["2026-09-21", "2026-09-20T23:00:00Z", None])
    >>> ages(dates, np.full(3, 1_789_995_600.0), ISO_TEXT).values.tolist()  # events at 2026-09-21T13:00Z
    [0.0, 50400.0, nan]
    """
    when = np.asarray(times, dtype=np.float64)
    if isinstance(column, CategoricalArray) and scale != ISO_TEXT:  # epoch numbers sent as text
        column = text_numbers(column)
    if isinstance(column, CategoricalArray):
        seconds, date_only = _label_seconds(column.categories)
        age = when - np.append(seconds, np.nan)[column.codes]
        whole_days = np.append(date_only, False)[column.codes]
        age[whole_days] = np.floor(age[whole_days] / 86_400.0) * 86_400.0
        return NumericArray(age)
    assert isinstance(column, NumericArray)
    return NumericArray(when - column.values / scale)


def _label_seconds(labels) -> tuple[np.ndarray, np.ndarray]:
    """Epoch seconds of each ISO 8601 date or time label (NaN when it is not one; UTC when it names no
    zone), and whether it is a date alone."""
    seconds = np.full(len(labels), np.nan)
    date_only = np.zeros(len(labels), dtype=bool)
    for i, label in enumerate(labels):
        if not _ISO.match(label):
            continue
        try:
            parsed = datetime.fromisoformat(label)
        except ValueError:
            continue
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        seconds[i], date_only[i] = parsed.timestamp(), len(label) == 10
    return seconds, date_only


def label_numbers(labels, grouped: bool = True) -> np.ndarray:
    """Each label read as a finite number (NaN when it is not one); with ``grouped``, thousands may be
    grouped by commas (not a decimal comma: ``"0,512"`` is not a number).

    >>> label_numbers(["12.5", "1,234.56", "-12,345", "1,23", "0,512", "NaN", "x"]).tolist()
    [12.5, 1234.56, -12345.0, nan, nan, nan, nan]
    """
    out = np.full(len(labels), np.nan)
    for i, label in enumerate(labels):
        try:
            value = float(label)
        except ValueError:
            if not grouped or "," not in label or not _GROUPED.match(label):
                continue
            value = float(label.replace(",", ""))
        out[i] = value if math.isfinite(value) else np.nan
    return out


_GROUPED = re.compile(r"^\s*[+-]?[1-9]\d{0,2}(,\d{3})+(\.\d*)?\s*$")  # "1,234.56": thousands grouped by commas


def text_numbers(column: CategoricalArray, grouped: bool = True) -> NumericArray:
    """A ``numeric_text`` column's values as numbers (NaN where missing or not a number).

    >>> text_numbers(CategoricalArray.from_labels(["12.50", "N/A", None, "3"])).values.tolist()
    [12.5, nan, nan, 3.0]
    """
    return NumericArray(np.append(label_numbers(column.categories, grouped), np.nan)[column.codes])


def text_lengths(column: CategoricalArray) -> NumericArray:
    """Length in characters of each value (NaN where missing): what a ``text`` column is watched by."""
    per_label = np.array([len(label) for label in column.categories] + [np.nan], dtype=np.float64)
    return NumericArray(per_label[column.codes])


def decimals(column: NumericArray) -> CategoricalArray:
    """Per value, how precise it is: ``integer``, ``1-2 decimals`` or ``finer`` (missing where it is), read
    exactly: a value has one or two decimals when rounding it to hundredths gives it back (``0.29`` does,
    although ``0.29 * 100`` is not exactly 29 in binary); its size does not decide.

    >>> col = decimals(NumericArray(np.array([3.0, 12.5, 0.29, 0.1234, np.nan, -7.0, 2.0 / 3.0, 1e9 + 0.5, 1e-10])))
    >>> [col.categories[c] if c >= 0 else None for c in col.codes]
    ['integer', '1-2 decimals', '1-2 decimals', 'finer', None, 'integer', 'finer', '1-2 decimals', 'finer']
    """
    values = column.values
    codes = np.full(len(values), 2, dtype=np.int64)
    codes[np.rint(values * 100.0) / 100.0 == values] = 1  # exact: the size of a value does not decide
    codes[np.rint(values) == values] = 0
    codes[np.isnan(values)] = -1
    return CategoricalArray(codes, DECIMALS_LABELS)


def repeats(column: Column, recent: np.ndarray, window: int = REPEAT_WINDOW) -> tuple[CategoricalArray, np.ndarray]:
    """Per event, ``repeat`` when its id is among the ``window`` ids before it (``recent`` holds the hashes
    of the ids before this batch), else ``new`` (missing where the id is); and the hashes to carry on.

    The answer depends only on the order of the ids, not on where batches are cut.

    >>> ids = CategoricalArray.from_labels(["a", "b", "a", None, "c", "b"])
    >>> flags, recent = repeats(ids, np.empty(0, dtype=np.uint64))
    >>> [flags.categories[c] if c >= 0 else None for c in flags.codes]
    ['new', 'new', 'repeat', None, 'new', 'repeat']
    >>> flags, _ = repeats(CategoricalArray.from_labels(["c", "z"]), recent, window=2)
    >>> [flags.categories[c] for c in flags.codes]
    ['repeat', 'new']
    """
    if isinstance(column, NumericArray):
        present = ~np.isnan(column.values)
        hashes = (column.values[present] + 0.0).view(np.uint64)
    else:
        assert isinstance(column, CategoricalArray)
        present = column.codes >= 0
        per_label = np.fromiter((zlib.crc32(label.encode("utf-8", "surrogatepass")) for label in column.categories),
                                dtype=np.uint64, count=len(column.categories))
        hashes = per_label[column.codes[present]]
    return repeat_flags(hashes, present, recent, window)


def repeat_flags(hashes: np.ndarray, present: np.ndarray, recent: np.ndarray, window: int = REPEAT_WINDOW
                 ) -> tuple[CategoricalArray, np.ndarray]:
    """:func:`repeats` of ids given as hashes: one per ``present`` event, in order.

    >>> none = np.empty(0, dtype=np.uint64)
    >>> flags, _ = repeat_flags(np.array([5, 6, 5], dtype=np.uint64), np.ones(3, dtype=bool), none)
    >>> flags.codes.tolist()
    [0, 0, 1]
    """
    seq = np.concatenate([recent.astype(np.uint64), hashes])
    repeated = window_repeats(seq, window)
    codes = np.full(len(present), -1, dtype=np.int64)
    codes[present] = repeated[len(recent):].astype(np.int64)
    return CategoricalArray(codes, REPEAT_LABELS), seq[-window:].copy()
