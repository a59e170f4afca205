"""Codebooks: turn a column's values into small integer codes.

Every detector in inferwatch reads a column through its codebook. A numeric
column is cut at the quantiles of its reference (ties and integer columns get
one bin per distinct value), and at its least and (just above) its largest
value, so values beyond anything the reference held have bins of their own;
a categorical column keeps its most frequent
reference labels, one code for the other known labels, one for labels never
seen in the reference. The last code is always "missing". Working on codes
makes the detectors robust to heavy tails and units (a value 100 times too
large lands in the top bin, it does not blow up a mean), and makes all of
them a function of per-block code counts, which are cheap and mergeable.

>>> import numpy as np
>>> book = NumericCodebook.from_reference(np.arange(1000.0), bins=4)
>>> book.edges.round(6).tolist()
[0.0, 4.0, 19.0, 249.0, 499.0, 749.0, 979.0, 994.0, 999.0]
>>> book.encode(NumericArray(np.array([-5.0, 100.0, 600.0, 999.0, 1e9, np.nan]))).tolist()
[0, 3, 5, 8, 9, 10]
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property, lru_cache

import numpy as np

from .kernels import bucket_table, encode_labels, encode_numeric, reference_edges
from .types import CategoricalArray, Column, NumericArray

__all__ = ["NumericCodebook", "CategoricalCodebook", "Codebook", "codebook_from_dict", "TAIL_GROUPS", "label_hash",
           "label_hashes", "clustered_novelty"]

TAIL_GROUPS = 64  # "other known" groups of a categorical column with a long tail
OPEN_NOVELTY = 0.5  # a column is open-ended when this share of its events is expected to carry new labels


@lru_cache(maxsize=64)
def _cut_shares(bins: int) -> np.ndarray:
    """The reference shares a numeric column is cut at: ``bins`` equal ones, and finer tails (scale changes
    and unit bugs show there)."""
    shares = np.union1d(np.linspace(0.0, 1.0, bins + 1)[1:-1], [0.005, 0.02, 0.98, 0.995])
    shares.flags.writeable = False  # shared by every call
    return shares


@dataclass(frozen=True)
class NumericCodebook:
    """Bins ``(-inf, e0), [e0, e1), ..., [e_last, inf)``, then the missing code."""

    edges: np.ndarray
    median: float = float("nan")  # of the reference's present values: what a message compares with
    quartiles: tuple[float, float] = (float("nan"), float("nan"))  # likewise, for a spread in the column's units

    kind = "numeric"

    @property
    def n_codes(self) -> int:
        return len(self.edges) + 2

    @property
    def missing_code(self) -> int:
        return len(self.edges) + 1

    @classmethod
    def from_reference(cls, values: np.ndarray, bins: int = 16) -> NumericCodebook:
        edges, median = reference_edges(values, _cut_shares(bins), bins)
        present = values[~np.isnan(values)]
        q1, q3 = np.quantile(present, [0.25, 0.75]).tolist() if present.size else (float("nan"),) * 2
        return cls(edges, float(median), (float(q1), float(q3)))

    def quantile_of(self, codes: np.ndarray, q: float) -> float | None:
        """The ``q`` quantile of the present values behind ``codes``, read within the reference's bins
        (linear inside its bin); None when it falls in a bin wider than half the reference's interquartile
        range (a tail bin, where the bins say too little) or beyond the reference's range.

        >>> book = NumericCodebook(np.array([0.0, 1.0, 2.0, 3.0, 4.0]), 2.0, (1.0, 3.0))
        >>> book.quantile_of(np.array([2, 2, 3, 3]), 0.5), book.quantile_of(np.array([5, 5]), 0.5)
        (2.0, None)
        >>> book.quantile_of(np.array([3, 3, 4, 4]), 0.75)  # (whole numbers: the bin [3, 4) holds 3 only)
        3.0
        """
        edges = self.edges
        present = codes[codes < self.missing_code]
        if not present.size or not len(edges):
            return None
        cum = np.cumsum(np.bincount(present, minlength=len(edges) + 1))
        rank = q * present.size
        k = int(np.searchsorted(cum, rank, side="left"))
        if k == 0 or k >= len(edges):
            return None
        lo, hi = float(edges[k - 1]), float(edges[k])
        if not hi - lo <= 0.5 * (self.quartiles[1] - self.quartiles[0]):
            return None if hi != np.nextafter(lo, np.inf) else lo  # (a bin of one value is that value)
        inside = (rank - cum[k - 1]) / (cum[k] - cum[k - 1])
        if self._whole:  # a bin of whole numbers holds lo, lo + 1, ...: [3, 4) holds 3 only
            return lo + math.floor(float(inside) * (hi - lo))
        return lo + (hi - lo) * float(inside)

    @cached_property
    def _whole(self) -> bool:
        """Whether the reference's values were whole numbers (its cuts are, its top aside)."""
        return bool(len(self.edges) > 1 and np.all(self.edges[:-1] == np.round(self.edges[:-1])))

    def encode(self, column: Column) -> np.ndarray:
        if not isinstance(column, NumericArray):
            raise TypeError(f"numeric codebook got {type(column).__name__}")
        values = column.values
        codes = np.searchsorted(self.edges, values, side="right")
        codes[np.isnan(values)] = self.missing_code
        return codes

    @cached_property
    def _table(self) -> tuple[int, int, np.ndarray]:
        return bucket_table(self.edges)

    def encode_counted(self, column: Column, r: int, block: int):
        """(codes, per-block code counts, moments of present values) in one compiled pass."""
        if not isinstance(column, NumericArray):
            raise TypeError(f"numeric codebook got {type(column).__name__}")
        return encode_numeric(column.values, self.edges, self._table, self.missing_code, r, block, self.n_codes)

    def label(self, code: int) -> str:
        """Human text for a bin, e.g. ``[12.5, 40)``; a bin of one value (a discrete column's) is that value,
        the bin just above a value opens on it.

        >>> book = NumericCodebook(np.array([1.0, 3.0, np.nextafter(3.0, 4.0)]))
        >>> [book.label(c) for c in range(5)]
        ['[-inf, 1)', '[1, 3)', '3', '(3, inf)', 'missing']
        """
        if code == self.missing_code:
            return "missing"
        edges = self.edges
        if 0 < code < len(edges) and edges[code] == np.nextafter(edges[code - 1], np.inf):
            return f"{edges[code - 1]:.4g}"
        opens = "[" if code < 2 or edges[code - 1] != np.nextafter(edges[code - 2], np.inf) else "("
        lo = "-inf" if code == 0 else f"{edges[code - 1 - (opens == '(')]:.4g}"
        hi = "inf" if code == len(edges) else f"{edges[code]:.4g}"
        return f"{opens}{lo}, {hi})"

    def to_dict(self) -> dict:
        return {"kind": "numeric", "edges": self.edges.tolist(), "median": self.median,
                "quartiles": list(self.quartiles)}


@dataclass(frozen=True)
class CategoricalCodebook:
    """Top labels, then "other known" groups, "unseen" and "missing" codes.

    The labels past the top are split by a stable hash into ``groups`` codes
    (about two known labels a group, at most ``TAIL_GROUPS``; one when the
    tail is short), so one tail label that gains mass moves
    its group's share enough to be seen, where it would be lost in a single
    "other" share. ``known`` holds every label of the reference when there
    were at most ``max_known`` of them; otherwise the column is
    open-vocabulary (ids, free text) and unseen labels are not news: they
    count in their group. ``unseen_share`` is the normal rate of labels the
    reference never saw (Good-Turing: the reference's share of labels seen
    once). ``tail_shares`` keeps each known label's reference share past the
    top (grouped columns only), so an alert on a group can name the label
    that rose, not the group's most frequent one.

    >>> labels = ["a"] * 50 + [f"t{i % 150}" for i in range(300)]
    >>> book = CategoricalCodebook.from_reference(CategoricalArray.from_labels(labels))
    >>> book.groups, book.n_codes, book.code_of("a"), book.code_of("zz") == book.unseen_code
    (64, 82, 0, True)
    """

    top: tuple[str, ...]
    known: frozenset[str]
    open_vocabulary: bool
    unseen_share: float = 0.0
    groups: int = 1
    tail_shares: Mapping[str, float] = field(default_factory=dict, compare=False)

    kind = "categorical"

    @property
    def n_codes(self) -> int:
        return len(self.top) + self.groups + 2

    @property
    def other_code(self) -> int:
        """The first "other known" group."""
        return len(self.top)

    @property
    def unseen_code(self) -> int:
        return len(self.top) + self.groups

    @property
    def missing_code(self) -> int:
        return len(self.top) + self.groups + 1

    def group_of(self, label: str) -> int:
        """The code of a label past the top: its group (a hash that is the same in every process)."""
        return self.other_code + (label_hash(label) % self.groups if self.groups > 1 else 0)

    def code_of(self, label: str) -> int:
        if label in self._top_index:
            return self._top_index[label]
        if label in self.known or self.open_vocabulary:
            return self.group_of(label)
        return self.unseen_code

    @cached_property
    def _top_index(self) -> dict[str, int]:
        return {label: i for i, label in enumerate(self.top)}

    @cached_property
    def _tail_by_hash(self) -> dict[int, str]:
        return {label_hash(label): label for label in self.tail_shares}

    def tail_label(self, hashed: int) -> str | None:
        """The known tail label of a :func:`label_hash`, if any."""
        return self._tail_by_hash.get(hashed)

    @cached_property
    def tail_members(self) -> dict[int, list[str]]:
        """The known tail labels of each "other known" group code."""
        out: dict[int, list[str]] = {}
        for label in self.tail_shares:
            out.setdefault(self.group_of(label), []).append(label)
        return out

    @classmethod
    def from_reference(
        cls, column: CategoricalArray, max_top: int = 16, max_known: int = 10_000
    ) -> CategoricalCodebook:
        counts = np.bincount(column.codes[column.codes >= 0], minlength=len(column.categories))
        seen = [(int(-c), column.categories[i]) for i, c in enumerate(counts) if c > 0]
        seen.sort()
        labels = [label for _, label in seen]
        present = int(counts.sum())
        singletons = float(np.count_nonzero(counts == 1) / present) if present else 0.0
        clustered = clustered_novelty(column.codes)
        if clustered is not None:  # labels in runs or close together are rarely seen once: the halves tell
            singletons = max(singletons, clustered)
        # most events with labels never seen before: new labels are the norm (ids, addresses), as with more
        # labels than a vocabulary keeps
        open_vocab = len(labels) > max_known or singletons >= OPEN_NOVELTY
        tail = len(labels) - max_top
        groups = min(TAIL_GROUPS, tail // 2) if tail >= 16 else 1  # about two known labels a group, or more
        shares = ({label: -c / present for c, label in seen[max_top:]} if groups > 1 and not open_vocab else {})
        return cls(tuple(labels[:max_top]), frozenset() if open_vocab else frozenset(labels), open_vocab, singletons,
                   groups, shares)

    def encode(self, column: Column) -> np.ndarray:
        if not isinstance(column, CategoricalArray):
            raise TypeError(f"categorical codebook got {type(column).__name__}")
        return self.lookup(column)[column.codes]

    def lookup(self, column: Column) -> np.ndarray:
        """Code of each of the column's labels, then of a missing value (the last slot)."""
        if not isinstance(column, CategoricalArray):
            raise TypeError(f"categorical codebook got {type(column).__name__}")
        lookup = np.empty(len(column.categories) + 1, dtype=np.uint8 if self.n_codes <= 256 else np.int64)
        if self.open_vocabulary and not self.top and self.groups == 1:  # ids, free text: any label is "a value"
            lookup[:-1] = self.other_code
        else:
            for i, label in enumerate(column.categories):
                lookup[i] = self.code_of(label)
        lookup[-1] = self.missing_code  # code -1 indexes the last slot
        return lookup

    def encode_counted(self, column: Column, r: int, block: int):
        """(codes, per-block code counts, count of each of the column's labels then of missing values)."""
        if not isinstance(column, CategoricalArray):
            raise TypeError(f"categorical codebook got {type(column).__name__}")
        return encode_labels(column.codes, self.lookup(column), r, block, self.n_codes)

    def label(self, code: int) -> str:
        if code < len(self.top):
            return repr(self.top[code])
        if code < self.unseen_code:
            return "other known labels" if self.groups == 1 else f"other known labels (group {code - self.other_code})"
        return "unseen labels" if code == self.unseen_code else "missing"

    def to_dict(self) -> dict:
        return {
            "kind": "categorical",
            "top": list(self.top),
            "known": sorted(self.known),
            "open_vocabulary": self.open_vocabulary,
            "unseen_share": self.unseen_share,
            "groups": self.groups,
            "tail_shares": dict(self.tail_shares),
        }


Codebook = NumericCodebook | CategoricalCodebook


def clustered_novelty(codes: np.ndarray) -> float | None:
    """The share of the reference's second half whose labels its first half never saw, when it is well above
    what Good-Turing on the first half predicts for it (the first half's share of labels seen once, plus one
    point): labels that come in runs or close together (a user's session, an address used a few times
    within minutes) are rarely seen once, yet most of a live stream's may be new. None otherwise (an i.i.d.
    column, however long its tail: Good-Turing on the whole reference is the better estimate then), or for
    fewer than 200 values.

    >>> clustered_novelty(np.repeat(np.arange(400), 10))  # 400 labels, each ten times in a row
    1.0
    >>> clustered_novelty(np.random.default_rng(1).integers(0, 2000, 20_000)) is None  # i.i.d.: Good-Turing
    True
    """
    present = codes[codes >= 0]
    half = len(present) // 2
    if half < 100:
        return None
    first = np.bincount(present[:half])
    predicted = np.count_nonzero(first == 1) / half
    seen = np.zeros(max(int(present.max()) + 1, len(first)), dtype=bool)
    seen[: len(first)] = first > 0
    observed = float(np.mean(~seen[present[half:]]))
    return observed if observed > 2 * predicted + 0.01 else None


def label_hash(label: str) -> int:
    """CRC-32 of a label: the same in every process (it picks a tail label's group)."""
    return zlib.crc32(label.encode("utf-8", "surrogatepass"))


def label_hashes(column: CategoricalArray, codes: np.ndarray) -> np.ndarray:
    """:func:`label_hash` of the labels at ``codes`` (the column's own codes; 0 for a missing value).

    >>> label_hashes(CategoricalArray.from_labels(["a", None, "a"]), np.array([0, -1, 0])).tolist()
    [3904355907, 0, 3904355907]
    """
    out = np.zeros(len(codes), dtype=np.uint32)
    present = codes >= 0
    if present.any():
        used, inverse = np.unique(codes[present], return_inverse=True)
        out[present] = np.array([label_hash(column.categories[k]) for k in used.tolist()], dtype=np.uint32)[inverse]
    return out


def codebook_from_dict(raw: dict) -> Codebook:
    if raw["kind"] == "numeric":
        nan = float("nan")
        q1, q3 = raw.get("quartiles", (nan, nan))
        return NumericCodebook(np.asarray(raw["edges"], dtype=np.float64), float(raw.get("median", nan)),
                               (float(q1), float(q3)))
    return CategoricalCodebook(tuple(raw["top"]), frozenset(raw["known"]), bool(raw["open_vocabulary"]),
                               float(raw.get("unseen_share", 0.0)), int(raw.get("groups", 1)),
                               dict(raw.get("tail_shares", {})))
