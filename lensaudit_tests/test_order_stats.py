"""lensaudit.order_stats: numpy's order statistics, percentiles and medians to the bit, and
cutout QC computed in batches (qc.quality_batch) equal to qc.quality, value for value."""

import math

import numpy as np
import pytest

from lensaudit.cutouts.qc import quality, quality_batch
from lensaudit.order_stats import (count_abs_deviation_above_sorted, kth_abs_deviation_sorted, kth_smallest,
                                   median_abs_deviation_sorted, median_rows, percentile_rows, percentile_sorted, sort_rows)


def _rows(kind: str, n: int, rows: int = 6, dtype=np.float32, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "normal":
        x = rng.normal(0, 0.01, (rows, n)) + rng.exponential(0.003, (rows, n))
    elif kind == "ties":
        x = rng.integers(-3, 4, (rows, n)).astype(float)  # seven distinct values only
    elif kind == "sorted":
        x = np.sort(rng.normal(size=(rows, n)), axis=1)
    elif kind == "reversed":
        x = np.sort(rng.normal(size=(rows, n)), axis=1)[:, ::-1]
    elif kind == "stamp":  # a galaxy in sky noise, in raster order (what the strided sample sees)
        side = math.isqrt(n - 1) + 1
        yy, xx = np.mgrid[:side, :side] - (side - 1) / 2
        img = np.exp(-np.hypot(xx, yy) / 4.0).ravel()[:n]
        x = rng.normal(0, 0.01, (rows, n)) + img * rng.uniform(0.1, 2.0, (rows, 1))
    elif kind == "misleading":  # every 9th value equal and the largest (a strided sample would mislead)
        x = rng.normal(size=(rows, n))
        x[:, ::max(1, n // 1024)] = 100.0
    else:
        raise ValueError(kind)
    return np.ascontiguousarray(x, dtype=dtype)


@pytest.mark.parametrize("kind", ["normal", "ties", "sorted", "reversed", "stamp", "misleading"])
@pytest.mark.parametrize("n", [1, 2, 7, 2047, 2048, 3921, 10200, 10201])
def test_bitwise_equal_to_numpy(kind, n):
    for dtype in (np.float32, np.float64):
        x = _rows(kind, n, dtype=dtype)
        ranks = sorted({0, n // 100, n // 2, n - 1 - n // 100, n - 1})
        assert np.array_equal(kth_smallest(x, ranks), np.partition(x, ranks, axis=1)[:, ranks])
        want = np.percentile(x, [1, 50, 99], axis=1)
        got = percentile_rows(x, [1, 50, 99])
        assert got.dtype == want.dtype and np.array_equal(got, want)
        assert np.array_equal(percentile_rows(x, [0, 25, 100]), np.percentile(x, [0, 25, 100], axis=1))
        med = median_rows(x)
        assert med.dtype == np.median(x, axis=1).dtype and np.array_equal(med, np.median(x, axis=1))


def test_ranks_any_order_repeated_and_negative():
    x = _rows("normal", 5000)
    ranks = [4000, -1, 17, 4000, 0]
    want = np.sort(x, axis=1)[:, [4000, 4999, 17, 4000, 0]]
    assert np.array_equal(kth_smallest(x, ranks), want)


def test_bad_input_is_a_clear_error():
    x = _rows("normal", 3000)
    x[2, 5] = np.nan
    with pytest.raises(ValueError, match="without NaN"):
        percentile_rows(x, [50])
    with pytest.raises(ValueError, match="2-D"):
        median_rows(np.zeros(5))
    with pytest.raises(ValueError, match="out of range"):
        kth_smallest(_rows("normal", 10), [10])
    with pytest.raises(ValueError, match=r"\[0, 100\]"):
        percentile_rows(_rows("normal", 10), [101])
    with pytest.raises(ValueError, match="float"):
        median_rows(np.zeros((2, 3), int))


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        a[k] == b[k] or (isinstance(a[k], float) and math.isnan(a[k]) and math.isnan(b[k])) for k in a)


@pytest.mark.parametrize("kind", ["normal", "ties", "sorted", "reversed", "stamp", "misleading"])
@pytest.mark.parametrize("n", [1, 2, 7, 2048, 10201])
def test_deviations_read_off_sorted_rows_equal_numpy(kind, n):
    """The k-th smallest |x - c|, its median and the count above a threshold, read off sorted rows,
    equal numpy's on the deviation array: float32 and float64 rows, the centre their median (as QC),
    a value of the row or none, of the row's dtype or float64 (numpy's promotion kept), thresholds
    on a deviation exactly (ties), between them, below all, above all, and NaN."""
    rng = np.random.default_rng(n)
    for dtype in (np.float32, np.float64):
        x = _rows(kind, n, dtype=dtype, seed=n % 7)
        s = sort_rows(x)
        assert np.array_equal(s, np.sort(x, axis=1))
        assert np.array_equal(percentile_sorted(s, [1, 50, 99]), np.percentile(x, [1, 50, 99], axis=1))
        for c in (percentile_rows(x, [50])[0], np.percentile(x, 50, axis=1), x[:, -1],
                  rng.normal(size=len(x)), np.full(len(x), 1e3), np.full(len(x), -1e3)):
            dev = np.abs(x - c[:, None])
            for k in sorted({0, n // 2, n - 1, int(rng.integers(0, n))}):
                got = kth_abs_deviation_sorted(s, c, k)
                assert got.dtype == dev.dtype and np.array_equal(got, np.partition(dev, k, axis=1)[:, k])
            assert np.array_equal(median_abs_deviation_sorted(s, c), np.median(dev, axis=1))
            for t in (dev[:, int(rng.integers(0, n))], np.median(dev, axis=1) * 10, np.full(len(x), -1.0),
                      np.full(len(x), 1e9), np.full(len(x), np.nan)):
                assert np.array_equal(count_abs_deviation_above_sorted(s, c, t),
                                      np.count_nonzero(dev > t[:, None], axis=1))
    with pytest.raises(ValueError, match="out of range"):
        kth_abs_deviation_sorted(np.zeros((1, 3)), np.zeros(1), 3)


def test_quality_batch_equals_quality_on_every_kind_of_stamp():
    rng = np.random.default_rng(3)
    x = _rows("stamp", 101 * 101, rows=3 * 40, seed=3).reshape(40, 3, 101, 101)
    x[1, 1, 40:60, 40:60] = 0.0  # zero-filled centre
    x[2, 2] = 0.0  # missing band
    x[3, 0, 10, 10] = np.nan  # NaN off the core
    x[4, 1, 50, 50] = np.nan  # NaN in the core
    x[5, 2, 0, 0] = np.inf  # corrupted value
    x[6] = np.nan  # no data
    x[7, 0] = 1.0  # a flat band: MAD 0, clip fraction NaN
    x[8, :, :30] = np.nan  # half the stamp missing (NaN fractions, fewer finite pixels)
    stamps = list(x) + [None, x[9, :2], rng.normal(size=(3, 64, 64)).astype(np.float32)]
    want = [quality(s, "grz") for s in stamps]
    got = quality_batch(stamps, "grz")
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want)):
        assert _same(g, w), (i, {k: (g.get(k), w.get(k)) for k in w if not _same({k: g.get(k)}, {k: w[k]})})
    assert [w["qc_reason"] for w in want[1:9]] == ["zero_filled_r", "missing_band_z", "", "core_nan", "infinite_pixels",
                                                   "missing_band_g", "", "central_nan_frac"]
    assert quality_batch([], "grz") == []


def test_rows_sorted_in_several_blocks_equal_numpy(monkeypatch):
    """Rows are sorted in blocks of about ``SORT_BLOCK_BYTES``: a block boundary inside the rows (and a
    last, shorter block) changes nothing; nor does a block of one row."""
    from lensaudit import order_stats

    x = _rows("stamp", 2601, rows=37, dtype=np.float64, seed=4)
    want = np.percentile(x, [1, 50, 99], axis=1)
    for block in (2601 * 8 * 5, 1, order_stats.SORT_BLOCK_BYTES):
        monkeypatch.setattr(order_stats, "SORT_BLOCK_BYTES", block)
        assert np.array_equal(percentile_rows(x, [1, 50, 99]), want)
        assert np.array_equal(median_rows(x), np.median(x, axis=1))
        assert np.array_equal(kth_smallest(x, [-1, 0, 1300]), np.sort(x, axis=1)[:, [2600, 0, 1300]])
