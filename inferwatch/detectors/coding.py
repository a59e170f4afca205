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

import zlib
from dataclasses import dataclass
from functools import cached_property, lru_cache

import numpy as np

from .kernels import bucket_table, encode_labels, encode_numeric, reference_edges
from .types import CategoricalArray, Column, NumericArray

__all__ = ["NumericCodebook", "CategoricalCodebook", "Codebook", "codebook_from_dict", "TAIL_GROUPS"]

TAIL_GROUPS = 64  # "other known" groups of a categorical column with a long tail


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
        return cls(edges, float(median))

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
        return {"kind": "numeric", "edges": self.edges.tolist(), "median": self.median}


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
    once).

    >>> labels = ["a"] * 50 + [f"t{i}" for i in range(150)]
    >>> book = CategoricalCodebook.from_reference(CategoricalArray.from_labels(labels))
    >>> book.groups, book.n_codes, book.code_of("a"), book.code_of("zz") == book.unseen_code
    (64, 82, 0, True)
    """

    top: tuple[str, ...]
    known: frozenset[str]
    open_vocabulary: bool
    unseen_share: float = 0.0
    groups: int = 1

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
        return self.other_code + (zlib.crc32(label.encode("utf-8", "surrogatepass")) % self.groups
                                  if self.groups > 1 else 0)

    def code_of(self, label: str) -> int:
        if label in self._top_index:
            return self._top_index[label]
        if label in self.known or self.open_vocabulary:
            return self.group_of(label)
        return self.unseen_code

    @cached_property
    def _top_index(self) -> dict[str, int]:
        return {label: i for i, label in enumerate(self.top)}

    @classmethod
    def from_reference(
        cls, column: CategoricalArray, max_top: int = 16, max_known: int = 10_000
    ) -> CategoricalCodebook:
        counts = np.bincount(column.codes[column.codes >= 0], minlength=len(column.categories))
        seen = [(int(-c), column.categories[i]) for i, c in enumerate(counts) if c > 0]
        seen.sort()
        labels = [label for _, label in seen]
        open_vocab = len(labels) > max_known
        present = int(counts.sum())
        singletons = float(np.count_nonzero(counts == 1) / present) if present else 0.0
        tail = len(labels) - max_top
        groups = min(TAIL_GROUPS, tail // 2) if tail >= 16 else 1  # about two known labels a group, or more
        return cls(tuple(labels[:max_top]), frozenset() if open_vocab else frozenset(labels), open_vocab, singletons,
                   groups)

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
        }


Codebook = NumericCodebook | CategoricalCodebook


def codebook_from_dict(raw: dict) -> Codebook:
    if raw["kind"] == "numeric":
        return NumericCodebook(np.asarray(raw["edges"], dtype=np.float64), float(raw.get("median", float("nan"))))
    return CategoricalCodebook(tuple(raw["top"]), frozenset(raw["known"]), bool(raw["open_vocabulary"]),
                               float(raw.get("unseen_share", 0.0)), int(raw.get("groups", 1)))
