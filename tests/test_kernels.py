"""Compiled kernels agree with the plain numpy they replace, on any input."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from inferwatch.detectors.kernels import bucket_table, count_codes, encode_labels, encode_numeric
from inferwatch.detectors.stats import CategoricalStats
from inferwatch.detectors.types import CategoricalArray

floats = st.floats(allow_nan=True, allow_infinity=True, width=64)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1, max_size=300, unique=True),
       hnp.arrays(np.float64, st.integers(0, 200), elements=floats), st.integers(0, 7), st.sampled_from([1, 4, 8]))
def test_numeric_codes_are_searchsorted_and_counts_are_per_block(edges, values, r, block):
    edges = np.sort(np.array(edges))
    missing = len(edges) + 1
    r = r % block
    codes, counts, moments = encode_numeric(values, edges, bucket_table(edges), missing, r, block, missing + 1)
    expected = np.where(np.isnan(values), missing, np.searchsorted(edges, values, side="right"))
    assert codes.astype(np.int64).tolist() == expected.tolist()
    assert counts.tolist() == count_codes(expected, r, block, missing + 1).tolist()
    present = values[~np.isnan(values)]
    assert moments[0] == present.size
    if present.size:
        assert (moments[4], moments[5]) == (present.min(), present.max())


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 40), st.data())
def test_label_codes_counts_and_stats_match_numpy(n_labels, data):
    labels = np.array(data.draw(st.lists(st.integers(-1, n_labels - 1), max_size=200)), dtype=np.int64)
    lookup = np.array(data.draw(st.lists(st.integers(0, 9), min_size=n_labels + 1, max_size=n_labels + 1)), dtype=np.uint8)
    r, block = data.draw(st.integers(0, 3)), 4
    codes, counts, per_label = encode_labels(labels, lookup, r, block, 10)
    expected = lookup[labels]  # -1 takes the last slot
    assert codes.tolist() == expected.tolist()
    assert counts.tolist() == count_codes(expected, r, block, 10).tolist()
    column = CategoricalArray(labels, tuple(f"c{i}" for i in range(n_labels)))
    given_counts, counted_here = CategoricalStats.empty(), CategoricalStats.empty()
    given_counts.update(column, 0, per_label)
    counted_here.update(column)
    assert given_counts.summary() == counted_here.summary()
    assert given_counts.missing == int((labels < 0).sum())


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 6), st.integers(1, 5), st.data())
def test_open_block_end_is_bit_for_bit_the_numpy_formula(n_codes, n_lanes, data):
    from inferwatch.detectors.kernels import open_block_end

    finite = st.floats(-50, 50, allow_nan=False, allow_infinity=False)
    table = np.array(data.draw(st.lists(st.lists(finite, min_size=n_lanes, max_size=n_lanes),
                                        min_size=n_codes, max_size=n_codes)))
    codes = np.array(data.draw(st.lists(st.integers(0, n_codes - 1), min_size=1, max_size=40)), dtype=np.uint8)
    begin = np.array(data.draw(st.lists(st.floats(0, 50), min_size=n_lanes, max_size=n_lanes)))
    path = begin + np.cumsum(table[codes], axis=0)
    path -= np.minimum.accumulate(np.minimum(path, 0.0), axis=0)
    assert open_block_end(table, codes, begin).tobytes() == path[-1].tobytes()


@settings(max_examples=200, deadline=None)
@given(hnp.arrays(np.float64, st.integers(1, 50),
                  elements=st.floats(1e-300, 1.0) | st.sampled_from([0.0, 1.0, 0.5, 0.02425, 0.97575])))
def test_normal_quantile_is_scipy_s_ndtri(p):
    """The core's own normal quantile (scipy is not a dependency of the core) agrees with scipy's."""
    from scipy.special import ndtri

    from inferwatch.detectors.kernels import normal_quantile

    np.testing.assert_allclose(normal_quantile(p), ndtri(p), rtol=1e-11, atol=1e-14)


def test_a_reference_of_signed_zeros_gives_one_unsigned_edge():
    """-0.0 and 0.0 are one value: the edge and the median carry no sign whichever zero a sort puts first."""
    from inferwatch.detectors.coding import NumericCodebook

    rng = np.random.default_rng(4)
    for _ in range(20):
        values = rng.choice([-0.0, 0.0, 1.0, 2.0, 3.0], 2_000)
        book = NumericCodebook.from_reference(values, 16)
        # the last edge just above the largest value: values beyond the reference's have a bin of their own
        assert not np.signbit(book.edges).any() and book.edges.tolist() == [0.0, 1.0, 2.0, 3.0, np.nextafter(3, 4)]
        assert book.label(1) == "[0, 1)" and not np.signbit(book.median)


def test_window_repeats_agrees_with_a_plain_loop():
    """The one-pass hash table flags exactly the items whose value came among the ``window`` before."""
    from inferwatch.detectors.kernels import window_repeats

    rng = np.random.default_rng(7)
    for n, values, window in [(0, 1, 3), (1, 1, 1), (50, 3, 2), (2_000, 40, 17), (5_000, 10_000, 4096)]:
        seq = rng.integers(0, values, n).astype(np.uint64)
        last: dict[int, int] = {}
        expected = []
        for i, v in enumerate(seq.tolist()):
            expected.append(v in last and i - last[v] <= window)
            last[v] = i
        assert window_repeats(seq, window).tolist() == expected
