"""Online column statistics: mergeable, bounded, serialisable.

Counts and missing counts, mean and variance (Chan et al.'s
parallel update, so partitions merge exactly), min/max, a KLL quantile
sketch (numeric) or a frequent-items sketch (categorical) from Apache
DataSketches, and the number of values never seen in the reference.

>>> import numpy as np
>>> a, b = NumericStats.empty(), NumericStats.empty()
>>> a.update(NumericArray(np.array([1.0, 2.0, np.nan])))
>>> b.update(NumericArray(np.array([3.0, 4.0])))
>>> m = a.merged(b)
>>> (m.count, m.missing, m.mean, round(m.variance, 4), m.min, m.max)
(5, 1, 2.5, 1.6667, 1.0, 4.0)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from datasketches import frequent_items_error_type, frequent_strings_sketch, kll_doubles_sketch

from .types import CategoricalArray, NumericArray

__all__ = ["NumericStats", "CategoricalStats", "stats_from_dict"]

KLL_K = 200
FREQUENT_LG_MAX = 6  # 64 counters: bounded whatever the cardinality
# A batch feeds the frequent-items sketch its 256 most frequent labels (an id column has a label per event:
# one update each was a tenth of a rich replay). A label over 1/64 of a batch's events, the share the 64
# counters keep, is always among them (256 labels over 1/64 would be four times the batch).
SKETCH_LABELS = 256
# The quantile sketch sees 1 value in 32 (by event index, so partitions sample alike and merge). Its
# quantiles are a summary for people, not a detector input: past ~200,000 events of a column the
# sketch's own rank error (1.65% at 99% confidence) exceeds the sampling error.
SKETCH_EVERY = 32


@dataclass
class NumericStats:
    count: int
    missing: int
    present: int
    mean: float
    m2: float
    min: float
    max: float
    sketch: kll_doubles_sketch

    kind = "numeric"

    @classmethod
    def empty(cls) -> NumericStats:
        return cls(0, 0, 0, 0.0, 0.0, math.inf, -math.inf, kll_doubles_sketch(KLL_K))

    @property
    def variance(self) -> float:
        return self.m2 / (self.present - 1) if self.present > 1 else 0.0

    def update(self, column: NumericArray, start: int = 0, moments: tuple | None = None) -> None:
        """Add a batch; ``start`` is the model event index of its first row.

        ``moments`` are (n, sum, sum of squares, shift, min, max) of the
        present values (sums of ``x - shift``) when the caller has them.
        """
        values = column.values
        if moments is None:
            present = values[~np.isnan(values)]
            n = present.size
            moments = (n, 0.0, 0.0, 0.0, np.inf, -np.inf)
            if n:
                shift = float(present[0])
                with np.errstate(over="ignore", invalid="ignore"):  # values near 1e300: sums of inf, not a warning
                    d = present - shift
                    moments = (n, float(d.sum()), float((d * d).sum()), shift, float(present.min()),
                               float(present.max()))
        n, total, squares, shift, low, high = moments
        self.count += len(values)
        self.missing += len(values) - n
        if n:
            mean = shift + total / n
            self._absorb(n, mean, max(squares - total * total / n, 0.0))
            self.min = min(self.min, float(low))
            self.max = max(self.max, float(high))
            offset = (-start) % SKETCH_EVERY
            sample = values[offset::SKETCH_EVERY]
            sample = sample[~np.isnan(sample)]
            if sample.size:
                self.sketch.update(np.ascontiguousarray(sample))

    def _absorb(self, n: int, mean: float, m2: float) -> None:
        total = self.present + n
        delta = mean - self.mean
        self.mean += delta * n / total
        self.m2 += m2 + delta * delta * self.present * n / total
        self.present = total

    def merged(self, other: NumericStats) -> NumericStats:
        out = NumericStats.from_dict(self.to_dict())
        out.count += other.count
        out.missing += other.missing
        if other.present:
            out._absorb(other.present, other.mean, other.m2)
        out.min, out.max = min(out.min, other.min), max(out.max, other.max)
        out.sketch.merge(other.sketch)
        return out

    def quantiles(self, probs=(0.05, 0.5, 0.95)) -> list[float]:
        if self.sketch.is_empty():
            return [math.nan for _ in probs]
        return [float(self.sketch.get_quantile(p)) for p in probs]

    def summary(self) -> dict:
        q05, q50, q95 = self.quantiles()
        return {
            "count": self.count, "missing": self.missing,
            "mean": self.mean, "std": math.sqrt(self.variance),
            "min": self.min if self.present else None, "max": self.max if self.present else None,
            "p05": q05, "p50": q50, "p95": q95,
        }

    def to_dict(self) -> dict:
        return {
            "kind": "numeric", "count": self.count, "missing": self.missing,
            "present": self.present, "mean": self.mean,
            "m2": self.m2, "min": self.min, "max": self.max, "sketch": self.sketch.serialize(),
        }

    @classmethod
    def from_dict(cls, raw: dict) -> NumericStats:
        return cls(
            int(raw["count"]), int(raw["missing"]), int(raw["present"]),
            float(raw["mean"]), float(raw["m2"]), float(raw["min"]), float(raw["max"]),
            kll_doubles_sketch.deserialize(bytes(raw["sketch"])),
        )


@dataclass
class CategoricalStats:
    count: int
    missing: int
    unseen: int
    sketch: frequent_strings_sketch

    kind = "categorical"

    @classmethod
    def empty(cls) -> CategoricalStats:
        return cls(0, 0, 0, frequent_strings_sketch(FREQUENT_LG_MAX))

    def update(self, column: CategoricalArray, unseen: int = 0, per_label: np.ndarray | None = None) -> None:
        """Add a batch; ``per_label`` counts each of the column's labels, then missing values,
        if the caller has them."""
        codes = column.codes
        if per_label is None:
            per_label = np.bincount(codes + 1, minlength=len(column.categories) + 1)
            per_label = np.roll(per_label, -1)  # missing last
        self.count += len(codes)
        self.missing += int(per_label[-1])
        self.unseen += unseen
        counts = per_label[:-1]
        present = np.flatnonzero(counts)
        if len(present) > SKETCH_LABELS:  # an id or text column: its batch's most frequent labels (see SKETCH_LABELS)
            present = np.sort(present[np.argpartition(-counts[present], SKETCH_LABELS)[:SKETCH_LABELS]])
        for i in present.tolist():
            self.sketch.update(column.categories[i], int(counts[i]))

    def merged(self, other: CategoricalStats) -> CategoricalStats:
        out = CategoricalStats.from_dict(self.to_dict())
        out.count += other.count
        out.missing += other.missing
        out.unseen += other.unseen
        out.sketch.merge(other.sketch)
        return out

    def top(self, k: int = 5) -> list[tuple[str, int]]:
        items = self.sketch.get_frequent_items(frequent_items_error_type.NO_FALSE_NEGATIVES)
        return [(item, int(est)) for item, est, _lo, _hi in items[:k]]

    def summary(self) -> dict:
        return {"count": self.count, "missing": self.missing, "unseen": self.unseen, "top": self.top()}

    def to_dict(self) -> dict:
        return {"kind": "categorical", "count": self.count, "missing": self.missing,
                "unseen": self.unseen, "sketch": self.sketch.serialize()}

    @classmethod
    def from_dict(cls, raw: dict) -> CategoricalStats:
        return cls(int(raw["count"]), int(raw["missing"]), int(raw["unseen"]),
                   frequent_strings_sketch.deserialize(bytes(raw["sketch"])))


def stats_from_dict(raw: dict) -> NumericStats | CategoricalStats:
    return NumericStats.from_dict(raw) if raw["kind"] == "numeric" else CategoricalStats.from_dict(raw)
