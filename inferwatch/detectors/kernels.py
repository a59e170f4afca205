"""Compiled kernels: the only loops over events (and over codes and lanes) in the core.

One pass per column turns values into codes, counts codes per block and
accumulates the moments the statistics need. A numeric value finds its bin
through a table indexed by the top 16 bits of its order-preserving integer
key (sign, exponent and 4 mantissa bits), over the edges' range (fewer bits
when the edges span so many prefixes that the table would pass
``MAX_BUCKETS`` rows: a column of both signs spans half the key space). A slot holds
the lowest and highest code its values can take; when they differ by at most
one (nearly always), one comparison with the edge between them decides,
without a branch; only a slot spanning several edges does a binary search.

>>> import numpy as np
>>> edges = np.array([0.0, 10.0, 100.0])
>>> buckets = bucket_table(edges)
>>> values = np.array([-1.0, -0.0, 5.0, 10.0, 1e6, np.nan])
>>> codes, counts, moments = encode_numeric(values, edges, buckets, missing=4, r=0, block=4, n_codes=5)
>>> codes.tolist(), counts.astype(int).tolist()
([0, 1, 1, 2, 3, 4], [[1, 2, 1, 0, 0], [0, 0, 0, 1, 1]])
"""

from __future__ import annotations

import math

import numpy as np

from .compiled import njit

__all__ = ["bucket_table", "encode_numeric", "encode_labels", "count_codes", "block_walk", "open_block_end",
           "tilt_table", "normal_quantile", "bin_scores", "lane_thresholds", "variance_inflation",
           "reference_edges"]

_SIGN = np.uint64(1 << 63)
MAX_BUCKETS = 4096  # rows of a numeric column's bucket table (2 bytes each when codes fit in a byte)

# Per-block code counts are float32: exact up to 2**24 (a block holds at most 4,096 events), and the
# CUSUM multiplies them by its table in single precision, twice the speed of double (see cusum.py).
COUNT_DTYPE = np.float32

KEEP_Z = 3.0  # a lane is kept when its drift is still clearly negative this many reference standard errors up
SELF_MARGIN = 1.25  # a lane's threshold is at least this many times the highest evidence it reaches on its reference
LONG_MARGIN = 1.5  # ... in an excursion longer than the lane's memory (a cycle's trough, an outage: their peaks vary)


def _keys(values: np.ndarray) -> np.ndarray:
    """Order-preserving unsigned keys of floats (-0.0 as +0.0)."""
    bits = (np.asarray(values, dtype=np.float64) + 0.0).view(np.uint64)
    return np.where(bits >= _SIGN, ~bits, bits ^ _SIGN)


def bucket_table(edges: np.ndarray) -> tuple[int, int, np.ndarray]:
    """(first prefix, shift, table): for each key prefix (the key's bits above ``shift``, 48 or more) from the
    first edge's to the last edge's, the lowest and highest code its values can take (one row per prefix).

    A value whose prefix is below the range is under every edge (code 0),
    above it over every edge (code ``len(edges)``), so the table only spans
    the edges (a few hundred rows for most columns, at most ``MAX_BUCKETS``).
    Bytes when the codes fit in them: the slots a column's values touch then
    share fewer cache lines.
    """
    dtype = np.uint8 if len(edges) < 255 else np.int32
    if len(edges) == 0:
        return 1, 48, np.zeros((0, 2), dtype=dtype)
    keys = _keys(edges)
    low, high, shift = int(keys[0]), int(keys[-1]), 48
    while (high >> shift) - (low >> shift) >= MAX_BUCKETS:
        shift += 1
    first, rows = low >> shift, (high >> shift) - (low >> shift) + 1
    floor = (keys >> np.uint64(shift)).astype(np.int64) - first  # the prefix row each edge falls in
    exact = (keys & np.uint64((1 << shift) - 1)) == 0  # an edge at a prefix's very first key is under all of it
    # lo[p]: edges <= the prefix's lowest key; hi[p]: edges <= its highest (counting sorts, no search)
    table = np.empty((rows, 2), dtype=dtype)
    table[:, 0] = np.cumsum(np.bincount(np.where(exact, floor, floor + 1), minlength=rows + 1)[:rows])
    table[:, 1] = np.cumsum(np.bincount(floor, minlength=rows)[:rows])
    return first, shift, table


@njit(cache=True, nogil=True)
def _encode_numeric(values, bits, edges, first, prefix_shift, table, missing, r, block, codes, counts):
    n_present = 0
    total = 0.0
    squares = 0.0
    shift = 0.0
    lowest = np.inf
    highest = -np.inf
    sign = np.uint64(1) << np.uint64(63)
    blk = 0
    pos = r
    for i in range(values.shape[0]):
        x = values[i]
        if x != x:
            c = missing
        else:
            key = bits[i]
            if key == sign:  # -0.0 sorts with +0.0
                key = np.uint64(0)
            key = key ^ sign if key < sign else ~key
            slot = np.int64(key >> prefix_shift) - first
            if slot < 0:  # under the first edge's prefix: under every edge
                lo = 0
                hi = 0
            elif slot >= table.shape[0]:  # over the last edge's: the padding NaN compares false below
                lo = edges.shape[0] - 1
                hi = lo
            else:
                lo = np.int64(table[slot, 0])
                hi = np.int64(table[slot, 1])
            if hi - lo <= 1:  # edges[lo] > x when hi == lo; the NaN after the last edge compares false
                c = lo + np.int64(edges[lo] <= x)
            else:
                while lo < hi:
                    mid = (lo + hi) >> 1
                    if edges[mid] <= x:
                        lo = mid + 1
                    else:
                        hi = mid
                c = lo
            if n_present == 0:
                shift = x
            d = x - shift
            total += d
            squares += d * d
            n_present += 1
            if x < lowest:
                lowest = x
            if x > highest:
                highest = x
        codes[i] = c
        counts[blk, c] += 1
        pos += 1
        if pos == block:
            pos = 0
            blk += 1
    return n_present, total, squares, shift, lowest, highest


def encode_numeric(values, edges, buckets, missing, r, block, n_codes):
    """Codes, per-block counts and (n, sum, sum of squares, shift, min, max) of present values.

    Sums are of ``x - shift`` (the first present value), for precision.
    Codes have the table's integer type.
    """
    n = len(values)
    n_blocks = (r + n - 1) // block + 1 if n else 0
    first, prefix_shift, table = buckets
    codes = np.empty(n, dtype=table.dtype)
    counts = np.zeros((n_blocks, n_codes), dtype=COUNT_DTYPE)
    if values.dtype != np.float64 or not values.flags.c_contiguous:
        values = np.ascontiguousarray(values, dtype=np.float64)
    padded = np.append(edges, np.nan)
    moments = _encode_numeric(values, values.view(np.uint64), padded, first, np.uint64(prefix_shift), table, missing,
                               r, block, codes, counts)
    return codes, counts, moments


@njit(cache=True, nogil=True)
def _encode_labels(labels, lookup, r, block, codes, counts, label_counts):
    missing = lookup.shape[0] - 1
    blk = 0
    pos = r
    for i in range(labels.shape[0]):
        k = labels[i]
        if k < 0:
            k = missing
        c = lookup[k]
        codes[i] = c
        label_counts[k] += 1
        counts[blk, c] += 1
        pos += 1
        if pos == block:
            pos = 0
            blk += 1


def encode_labels(labels, lookup, r, block, n_codes):
    """Codes of dictionary-encoded labels through ``lookup``, per-block counts, and counts per label.

    Label code -1 (missing) takes ``lookup``'s last slot, and is counted last.

    >>> codes, counts, per_label = encode_labels(np.array([0, 1, -1, 1]), np.array([2, 0, 1]), r=0, block=2, n_codes=3)
    >>> codes.tolist(), counts.astype(int).tolist(), per_label.tolist()
    ([2, 0, 1, 0], [[1, 0, 1], [1, 1, 0]], [1, 2, 1])
    """
    n = len(labels)
    codes = np.empty(n, dtype=lookup.dtype)
    counts = np.zeros(((r + n - 1) // block + 1 if n else 0, n_codes), dtype=COUNT_DTYPE)
    label_counts = np.zeros(len(lookup), dtype=np.int64)
    _encode_labels(np.ascontiguousarray(labels, dtype=np.int64), lookup, r, block, codes, counts, label_counts)
    return codes, counts, label_counts


@njit(cache=True, nogil=True)
def _count_codes(codes, r, block, counts):
    blk = 0
    pos = r
    for i in range(codes.shape[0]):
        counts[blk, codes[i]] += 1
        pos += 1
        if pos == block:
            pos = 0
            blk += 1


def count_codes(codes, r, block, n_codes):
    """Per-block counts of integer codes (as floats, ``COUNT_DTYPE``).

    >>> count_codes(np.array([0, 1, 1, 2]), r=1, block=2, n_codes=3).astype(int).tolist()
    [[1, 0, 0], [0, 2, 0], [0, 0, 1]]
    """
    n = len(codes)
    counts = np.zeros(((r + n - 1) // block + 1 if n else 0, n_codes), dtype=COUNT_DTYPE)
    _count_codes(np.ascontiguousarray(codes, dtype=np.int64), r, block, counts)
    return counts


@njit(cache=True, nogil=True)
def _block_walk(both, s0, inblock, resume, partial, slack, h, closed, after, last_zero):
    n_blocks = both.shape[0]
    n_lanes = s0.shape[0]
    value = s0.copy()
    hot = False
    for lane in range(n_lanes):
        start = inblock[lane] if resume else value[lane]
        if start + both[0, n_lanes + lane] + slack[lane] >= h[lane]:
            hot = True
    for j in range(n_blocks):
        if j > 0:
            for lane in range(n_lanes):
                if value[lane] + both[j, n_lanes + lane] + slack[lane] >= h[lane]:
                    hot = True
        if j < closed:
            for lane in range(n_lanes):
                total = np.float64(both[j, lane])
                if j == 0:
                    total += partial[lane]
                v = value[lane] + total
                if v <= 0.0:
                    v = 0.0
                    last_zero[lane] = j
                elif v > h[lane]:
                    v = h[lane]
                value[lane] = v
                after[j, lane] = v
    return hot


def block_walk(both, s0, inblock, resume, h, closed, partial=None, slack=None):
    """Lane values at the closed block ends, ``S = min(h, max(0, S + sum))``.

    ``both`` holds, per block, the lanes' sums then their positive parts
    (float32 or float64); ``partial`` (float64) is added to the first
    block's sums: the part of that block seen in earlier batches.

    Also says whether any lane could reach its threshold inside any block
    (``start + positive part + slack >= h``, starting from ``inblock`` for
    a block resumed from an earlier batch; ``slack`` covers the rounding of
    single-precision sums), and the last closed block where each lane was at
    zero (-1 if none).

    >>> both = np.array([[1.0, 1.0], [-5.0, 0.0], [9.0, 9.0]])
    >>> after, last_zero, hot = block_walk(both, np.array([2.0]), np.array([2.0]), False, np.array([10.0]), 3)
    >>> after.ravel().tolist(), last_zero.tolist(), hot
    ([3.0, 0.0, 9.0], [1], False)
    """
    n_lanes = len(s0)
    after = np.empty((closed, n_lanes))
    last_zero = np.full(n_lanes, -1, dtype=np.int64)
    zeros = np.zeros(n_lanes)
    hot = _block_walk(np.ascontiguousarray(both), s0, inblock, bool(resume),
                      zeros if partial is None else partial, zeros if slack is None else slack, h, closed,
                      after, last_zero)
    return after, last_zero, hot


@njit(cache=True, nogil=True)
def _open_block_end(table, codes, begin, out):
    for lane in range(begin.shape[0]):
        total = 0.0
        lowest = 0.0
        value = begin[lane]
        for i in range(codes.shape[0]):
            total += table[codes[i], lane]
            value = begin[lane] + total
            if value < lowest:
                lowest = value
        out[lane] = value - lowest


def open_block_end(table, codes, begin):
    """Per-event CUSUM of each lane at the last of ``codes``, from ``begin``.

    The same sums in the same order as ``begin + cumsum(table[codes])`` less
    its running minimum below zero, so the result is bit for bit the same.

    >>> open_block_end(np.array([[1.0], [-3.0]]), np.array([0, 1, 0]), np.array([0.5])).tolist()
    [1.0]
    """
    out = np.empty(len(begin))
    _open_block_end(table, np.ascontiguousarray(codes), np.ascontiguousarray(begin, dtype=np.float64), out)
    return out


@njit(cache=True, nogil=True)
def _tilt_table(p0, directions, supports, spec_support, theta, lane_spec, table, log_mgf, ref_mean):
    S, K = directions.shape
    spec_mean = np.zeros(S)
    q = np.zeros((S, K))
    support = np.empty((S, K), dtype=np.bool_)
    for i in range(S):
        total = 0.0
        for k in range(K):
            support[i, k] = supports[spec_support[i], k]
            if support[i, k]:
                total += p0[k]
        for k in range(K):
            if support[i, k]:
                q[i, k] = p0[k] / total
                spec_mean[i] += q[i, k] * directions[i, k]
    for j in range(theta.shape[0]):
        i = lane_spec[j]
        mgf = 0.0
        for k in range(K):
            if support[i, k]:
                mgf += q[i, k] * np.exp(theta[j] * directions[i, k])
        log_mgf[j] = np.log(mgf)
        ref_mean[j] = spec_mean[i]
        for k in range(K):
            if support[i, k]:
                table[k, j] = theta[j] * directions[i, k] - log_mgf[j]


def tilt_table(p0, directions, supports, spec_support, theta, lane_spec):
    """(table, log M(theta), reference mean of the direction) of lanes tilting ``p0`` restricted to a support.

    Spec ``i`` is a direction over codes and the codes it lives on
    (``supports[spec_support[i]]``); lane ``j``
    tilts spec ``lane_spec[j]`` by ``theta[j]``: ``table[k, j] = theta_j d_k -
    log M_j`` on the support, 0 off it, with ``M_j`` the mean of ``exp(theta_j d)``
    under ``p0`` renormalised on the support.
    """
    lanes = len(theta)
    table = np.zeros((directions.shape[1], lanes))
    log_mgf, ref_mean = np.empty(lanes), np.empty(lanes)
    _tilt_table(p0, directions, supports, spec_support, theta, lane_spec, table, log_mgf, ref_mean)
    return table, log_mgf, ref_mean


_ACKLAM_A = np.array([-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
                      1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00])
_ACKLAM_B = np.array([-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
                      6.680131188771972e+01, -1.328068155288572e+01, 1.0])
_ACKLAM_C = np.array([-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
                      -2.549732539343734e+00, 4.374664141464968e+00, 2.938163982698783e+00])
_ACKLAM_D = np.array([7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
                      3.754408661907416e+00, 1.0])


@njit(cache=True, nogil=True)
def _normal_quantile(p, a, b, c, d, out):
    for i in range(p.shape[0]):
        x = p[i]
        if not 0.0 < x < 1.0:
            out[i] = -np.inf if x <= 0.0 else (np.inf if x >= 1.0 else np.nan)
            continue
        upper = x > 0.5  # solve for the lower tail's 1 - x (exact): no cancellation near 1
        y = 1.0 - x if upper else x
        if y < 0.02425:  # the tail, in sqrt(-2 log p)
            q = math.sqrt(-2.0 * math.log(y))
            num, den = 0.0, 0.0
            for k in range(6):
                num = num * q + c[k]
            for k in range(5):
                den = den * q + d[k]
            z = num / den
        else:
            q = y - 0.5
            r = q * q
            num, den = 0.0, 0.0
            for k in range(6):
                num = num * r + a[k]
            for k in range(6):
                den = den * r + b[k]
            z = num * q / den
        # one Halley step on the exact CDF takes Acklam's 1e-9 to full precision
        if z * z < 1400.0:  # (below p ~ 1e-305 the density underflows: Acklam's value stands)
            e = 0.5 * math.erfc(-z / math.sqrt(2.0)) - y
            u = e * math.sqrt(2.0 * math.pi) * math.exp(0.5 * z * z)
            z = z - u / (1.0 + 0.5 * z * u)
        out[i] = -z if upper else z


def normal_quantile(p: np.ndarray) -> np.ndarray:
    """The standard normal quantile function (Acklam's approximation, refined once), elementwise.

    >>> normal_quantile(np.array([0.5, 0.975, 1e-12, 0.0])).round(6).tolist()
    [0.0, 1.959964, -7.034484, -inf]
    """
    p = np.ascontiguousarray(p, dtype=np.float64)
    out = np.empty_like(p)
    _normal_quantile(p, _ACKLAM_A, _ACKLAM_B, _ACKLAM_C, _ACKLAM_D, out)
    return out


@njit(cache=True, nogil=True)
def _standardized(x, q):
    mean = 0.0
    for k in range(x.shape[0]):
        mean += q[k] * x[k]
    var = 0.0
    for k in range(x.shape[0]):
        var += q[k] * (x[k] - mean) ** 2
    scale = max(math.sqrt(var), 1e-12)
    for k in range(x.shape[0]):
        x[k] = (x[k] - mean) / scale


@njit(cache=True, nogil=True)
def _bin_scores(p_present, a, b, c, d, s, sq):
    K = p_present.shape[0]
    total = 0.0
    for k in range(K):
        total += p_present[k]
    q = p_present / total
    cum = np.empty(K + 1)
    cum[0] = 0.0
    for k in range(K):
        cum[k + 1] = min(max(cum[k] + q[k], 0.0), 1.0)
    clipped = np.minimum(np.maximum(cum, 1e-12), 1.0 - 1e-12)
    upper = np.empty(K + 1)
    _normal_quantile(clipped, a, b, c, d, upper)
    dens = np.exp(-0.5 * upper**2) / math.sqrt(2.0 * math.pi)
    dens[0] = 0.0
    dens[K] = 0.0
    for k in range(K):
        s[k] = (dens[k] - dens[k + 1]) / max(cum[k + 1] - cum[k], 1e-12)
    _standardized(s, q)
    for k in range(K):
        sq[k] = s[k] * s[k]
    _standardized(sq, q)


def bin_scores(p_present: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Normal scores of bins with shares ``p_present`` (E[Z | Z in the bin's quantile range]), and their
    squares, each standardised to mean 0 and variance 1 under those shares: the directions of the
    ``mean`` and ``scale`` lanes.

    >>> s, sq = bin_scores(np.array([0.25, 0.25, 0.25, 0.25]))
    >>> s.round(2).tolist(), abs(round(float(sq @ np.full(4, 0.25)), 12))
    ([-1.37, -0.35, 0.35, 1.37], 0.0)
    """
    p = np.ascontiguousarray(p_present, dtype=np.float64)
    s, sq = np.empty_like(p), np.empty_like(p)
    _bin_scores(p, _ACKLAM_A, _ACKLAM_B, _ACKLAM_C, _ACKLAM_D, s, sq)
    return s, sq


@njit(cache=True, nogil=True)
def _inflation(llr, block, reach):
    """Long-run over i.i.d. variance of ``llr`` by overlapping batch means of ``block * 2**m`` events, up to
    ``reach`` and an eighth of the events; each estimate discounted by one standard error (i.i.d.: 1.0)."""
    n = llr.shape[0]
    phi = 1.0
    if n < 8 * block:
        return phi
    mean, sq_mean = 0.0, 0.0
    for i in range(n):
        mean += llr[i]
        sq_mean += llr[i] * llr[i]
    mean /= n
    sq_mean /= n
    var = 0.0
    csum = np.empty(n + 1)
    csum[0] = 0.0
    for i in range(n):
        centred = llr[i] - mean
        var += centred * centred
        csum[i + 1] = csum[i] + centred
    var /= n
    if not var > 1e-12 * sq_mean:
        return phi
    size = block
    while size <= n // 8 and size <= reach:
        total = 0.0
        for i in range(n + 1 - size):
            total += (csum[i + size] - csum[i]) ** 2
        ratio = total / (n + 1 - size) / (size * var)
        phi = max(phi, ratio / (1.0 + math.sqrt(2.0 / (1.5 * n / size))))
        size *= 2
    return phi


def variance_inflation(llr: np.ndarray, block: int, horizon: float) -> float:
    """Long-run over i.i.d. variance of a lane's increments ``llr`` (see :func:`lane_thresholds`).

    >>> variance_inflation(np.tile([1.0, -1.0], 512), 32, 1e9)
    1.0
    """
    return float(_inflation(np.ascontiguousarray(llr, dtype=np.float64), int(block), max(float(horizon), block)))


@njit(cache=True, nogil=True)
def _lane_thresholds(table, p0, ref_codes, log_arl0, block, out):
    K, L = table.shape
    n = ref_codes.shape[0]
    llr = np.empty(n)
    for j in range(L):
        mu, m2 = 0.0, 0.0
        for k in range(K):
            mu += p0[k] * table[k, j]
            m2 += p0[k] * table[k, j] ** 2
        sd = math.sqrt(max(m2 - mu * mu, 0.0))
        out[j] = np.nan
        if not (mu < 0.0 and sd > 0.0):
            continue
        phi = 1.0
        memory = max(2.0 * log_arl0 / -mu, block) if mu < 0.0 else float(block)
        if n >= 8 * block:
            for i in range(n):
                llr[i] = table[ref_codes[i], j]
            phi = _inflation(llr, block, memory)
        error = sd * math.sqrt(phi / max(n, 1))  # one standard error of the drift, from a reference of n events
        if mu + KEEP_Z * error <= 0.25 * mu:  # the drift stays negative even KEEP_Z errors up
            out[j] = log_arl0 * phi * (mu / (mu + error))
            s, peak, highest, begun = 0.0, 0.0, 0.0, 0  # and the reference, which defines normal, does not cross
            for i in range(n):  # it itself in an excursion it came back from (a shift it ends in is not normal)
                if s == 0.0:
                    begun = i
                s = max(0.0, s + table[ref_codes[i], j])
                peak = max(peak, s)
                if s == 0.0:
                    margin = LONG_MARGIN if i - begun > memory else SELF_MARGIN
                    highest, peak = max(highest, margin * peak), 0.0
            out[j] = max(out[j], highest)


def lane_thresholds(table: np.ndarray, p0: np.ndarray, ref_codes: np.ndarray, log_arl0: float,
                    block: int) -> np.ndarray:
    """The threshold of each lane (``table``: codes x lanes), NaN for a lane the reference cannot calibrate.

    ``h = log(ARL0) * phi * kappa``: ``phi`` is the lane's variance inflation measured on the reference's
    codes up to its memory ``2 log(ARL0) / -mean`` (a daily cycle in the reference widens its own
    thresholds), ``kappa = mean / (mean + SD sqrt(phi / n))`` covers the error of a reference of ``n``
    events; a lane whose drift, ``KEEP_Z`` standard errors up, is not clearly negative (above a quarter of its
    mean) is dropped: its true drift could be positive, and a long stationary stream would then reach any
    threshold (with one error, about one lane in ten of a long-tail column did, given a few hundred thousand events).
    A threshold is also at least ``SELF_MARGIN`` (``LONG_MARGIN`` for an excursion longer than the lane's
    memory: the peaks of a cycle's troughs vary with their traffic) times the highest evidence the lane reaches
    on the reference itself in an excursion that ends there (back to 0): what the reference holds and recovers
    from (bursts of missing values, a cycle) is normal, however it is spread; a shift the reference ends in is
    not.
    One compiled pass, lane by lane.
    """
    out = np.empty(table.shape[1])
    _lane_thresholds(np.ascontiguousarray(table), np.ascontiguousarray(p0, dtype=np.float64),
                     np.ascontiguousarray(ref_codes, dtype=np.int64), float(log_arl0), int(block), out)
    return out


@njit(cache=True, nogil=True)
def _reference_edges(values, shares, bins):
    present = np.empty(values.shape[0])
    n = 0
    for v in values:
        if not np.isnan(v):
            present[n] = v + 0.0  # -0.0 is 0.0: which zero comes first in a sort would decide an edge's sign
            n += 1
    present = np.sort(present[:n])
    if n == 0:
        return np.empty(0), np.nan
    median = present[n // 2] if n % 2 else 0.5 * (present[n // 2 - 1] + present[n // 2])
    distinct = 1
    for i in range(1, n):
        if present[i] != present[i - 1]:
            distinct += 1
    if distinct > bins:  # the inverted CDF: the smallest value with at least a share p of the values at or under it
        cuts = np.empty(shares.shape[0])
        for j in range(shares.shape[0]):
            cuts[j] = present[min(max(int(math.ceil(shares[j] * n)) - 1, 0), n - 1)]
        present, n = cuts, cuts.shape[0]
    edges = np.empty(n)
    edges[0] = present[0]
    k = 1
    for i in range(1, n):
        if present[i] != present[i - 1]:  # sorted: distinct is a neighbour test
            edges[k] = present[i]
            k += 1
    return edges[:k], median


def reference_edges(values: np.ndarray, shares: np.ndarray, bins: int) -> tuple[np.ndarray, float]:
    """(bin edges, median) of a numeric reference: its distinct values when at most ``bins``, else its
    quantiles at ``shares``, deduplicated; NaN are missing values. One sort, compiled. Then an edge at the
    reference's least value (when not one already) and one just above its largest: values beyond anything
    the reference held have bins of their own, whose tiny reference share makes each such value strong
    evidence (a unit bug, a sentinel value, a constant column that moves).

    >>> edges, median = reference_edges(np.array([3.0, np.nan, 1.0, 3.0, 2.0]), np.array([0.5]), 16)
    >>> edges.tolist()[:3], bool(edges[3] > 3.0), median
    ([1.0, 2.0, 3.0], True, 2.5)
    >>> reference_edges(np.full(5, 120.0), np.array([0.5]), 16)[0].size  # a constant: below, at, above it
    2
    """
    values = np.ascontiguousarray(values, dtype=np.float64)
    edges, median = _reference_edges(values, shares, int(bins))
    if edges.size:
        low, high = np.nanmin(values), np.nanmax(values)
        if np.isfinite(high):
            edges = np.append(edges, np.nextafter(high, np.inf))
        if np.isfinite(low) and edges[0] > low:
            edges = np.insert(edges, 0, low)
    return edges, median


@njit(cache=True, nogil=True)
def _fnv1a(data, offsets, out):
    for i in range(len(out)):
        h = np.uint64(14695981039346656037)
        for j in range(offsets[i], offsets[i + 1]):
            h = (h ^ np.uint64(data[j])) * np.uint64(1099511628211)
        out[i] = h


def text_hashes(data: bytes, offsets: np.ndarray) -> np.ndarray:
    """64-bit FNV-1a of each string packed in ``data`` (Arrow's layout: item ``i`` is
    ``data[offsets[i]:offsets[i + 1]]``): the same in every process.

    >>> a, b, empty = text_hashes(b"ab", np.array([0, 1, 2, 2])).tolist()
    >>> a == 12638187200555641996 and b != a and empty == 14695981039346656037  # FNV's offset basis
    True
    """
    out = np.empty(len(offsets) - 1, dtype=np.uint64)
    _fnv1a(np.frombuffer(data, dtype=np.uint8), np.asarray(offsets, dtype=np.int64), out)
    return out


@njit(cache=True, nogil=True)
def _window_repeats(seq, window, out):
    size = 16
    while size < 2 * len(seq):
        size *= 2
    mask = size - 1
    keys = np.empty(size, dtype=np.uint64)
    last = np.full(size, -1, dtype=np.int64)
    for i in range(len(seq)):
        h = seq[i]
        k = np.int64((h ^ (h >> np.uint64(31))) * np.uint64(0x9E3779B97F4A7C15) >> np.uint64(33)) & mask
        while last[k] != -1 and keys[k] != h:
            k = (k + 1) & mask
        out[i] = last[k] != -1 and i - last[k] <= window
        keys[k] = h
        last[k] = i


def window_repeats(seq: np.ndarray, window: int) -> np.ndarray:
    """Per item, whether the same value came among the ``window`` items before it; one pass, an open
    hash table of the values' last places.

    >>> window_repeats(np.array([5, 6, 5, 7, 6], dtype=np.uint64), 2).tolist()
    [False, False, True, False, False]
    """
    out = np.zeros(len(seq), dtype=np.bool_)
    _window_repeats(np.ascontiguousarray(seq, dtype=np.uint64), int(window), out)
    return out
