"""Exact order statistics, percentiles and medians of many equal-length rows at once.

numpy's ``percentile`` and ``median`` select with ``np.partition`` (introselect), ~8 ns per
element per selected rank on this project's CPUs: cutout QC (p1, p50, p99 and the MAD of
every band of every stamp, DESIGN s3 "Cutouts") spent ~40 % of the demo's cutout job there.
Here each row is sorted once (``np.sort``, numpy's vectorised quicksort: x86-simd-sort with
AVX-512 / AVX2, Highway's VQSort on ARM; ~2 MB of rows at a time, ``SORT_BLOCK_BYTES``) and
every requested rank read from it.  On the 2-core
Intel Xeon VM (AVX-512) 48 rows of 10,201 float32 values sort in 1.2 ms, where ``np.partition``
selects two ranks in 4.4 ms and the strided-sample bracketing this module used before
(sessions 12-21) in 2.4 ms; float64 2.0 / 4.8 / 2.8 ms; 256 rows of 1,200 values 0.6 / 2.8 /
2.9 ms (bench/RESULTS.md, session 22).  The k-th smallest values of a row are the same numbers
whichever way they are found.  ``percentile_rows`` and ``median_rows`` then apply numpy's own
formulas (Hyndman & Fan 1996 type 7 linear interpolation; the median as the mean of the middle
one or two values in the input's dtype), so they return numpy's values to the bit (tested
against ``np.percentile`` / ``np.median`` in lensaudit_tests/test_order_stats.py).

Rows must be free of NaN (the callers pass finite stamps; a NaN row would make numpy
return NaN, these functions a meaningless number): ``ValueError`` otherwise.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

#: rows are sorted in blocks of about this many bytes (a sorted copy of a whole 13 MB block of
#: features rows evicted the block's other data from the cache: 0.85x on the features, session 22)
SORT_BLOCK_BYTES = 2 * 2**20


def _check(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[1] == 0:
        raise ValueError(f"order statistics need a 2-D array of rows with >= 1 value, got shape {x.shape}")
    if x.dtype.kind != "f":
        raise ValueError(f"order statistics need a float array, got {x.dtype}")
    if np.isnan(x).any():
        raise ValueError("order statistics need rows without NaN")
    return x


def kth_smallest(x: np.ndarray, ranks: Sequence[int]) -> np.ndarray:
    """(R, len(ranks)) array: the ``ranks``-th smallest values (0-based, any order, negative
    ranks count from the end as in ``np.partition``) of each row of the NaN-free (R, n) array
    ``x``, in ``x``'s dtype.  Exact: the same values as ``np.partition(x, ranks, axis=1)``."""
    return _kth(_check(x), ranks)


def _kth(x: np.ndarray, ranks: Sequence[int]) -> np.ndarray:
    """``kth_smallest`` of an already checked array."""
    rows, n = x.shape
    want = np.asarray([int(k) + n if int(k) < 0 else int(k) for k in ranks], dtype=np.intp)
    if len(want) and (want.min() < 0 or want.max() >= n):
        raise ValueError(f"ranks {list(ranks)} out of range for rows of {n} values")
    out = np.empty((rows, len(want)), x.dtype)
    for a, srt in _sorted_blocks(x):
        out[a:a + len(srt)] = srt[:, want]
    return out


def _sorted_blocks(x: np.ndarray):
    """(first row, its block of rows sorted) over ``x`` in blocks of about ``SORT_BLOCK_BYTES``,
    whose sorted copy stays in the CPU's cache."""
    step = max(1, SORT_BLOCK_BYTES // max(1, x.shape[1] * x.itemsize))
    for a in range(0, len(x), step):
        yield a, np.sort(x[a:a + step], axis=1)


def percentile_rows(x: np.ndarray, q: Sequence[float]) -> np.ndarray:
    """(len(q), R) float64: ``np.percentile(x, q, axis=1)`` (method 'linear') of the NaN-free
    (R, n) float array ``x``, to the bit; numpy's virtual index (n - 1) q / 100, its bounds and
    its two-sided linear interpolation (``numpy.lib._function_base_impl._lerp``)."""
    x = _check(x)
    return _percentiles(x.shape[1], q, lambda ranks: _kth(x, ranks))


def sort_rows(x: np.ndarray) -> np.ndarray:
    """Each row of the NaN-free (R, n) float array ``x`` sorted ascending (blocks of
    ``SORT_BLOCK_BYTES``), for the ``*_sorted`` functions below."""
    x = _check(x)
    out = np.empty_like(x)
    for a, srt in _sorted_blocks(x):
        out[a:a + len(srt)] = srt
    return out


def percentile_sorted(s: np.ndarray, q: Sequence[float]) -> np.ndarray:
    """``percentile_rows`` of rows already sorted ascending (``sort_rows``): the same values."""
    return _percentiles(s.shape[1], q, lambda ranks: s[:, np.asarray(ranks, dtype=np.intp)])


def _percentiles(n: int, q: Sequence[float], kth) -> np.ndarray:
    """numpy's linear percentiles of rows of n values from ``kth(ranks)``: (R, len(ranks)) order statistics."""
    qs = np.true_divide(np.asarray(q, dtype=np.float64), 100)
    if np.any((qs < 0) | (qs > 1)):
        raise ValueError("percentiles must lie in [0, 100]")
    virtual = (n - 1) * qs
    prev = np.floor(virtual)
    nxt = prev + 1
    above, below = virtual >= n - 1, virtual < 0
    prev[above], nxt[above] = -1, -1
    prev[below], nxt[below] = 0, 0
    prev_i, next_i = prev.astype(np.intp), nxt.astype(np.intp)
    gamma = np.asanyarray(virtual - prev, dtype=virtual.dtype)[:, None]
    stats = kth(np.concatenate([prev_i, next_i]))
    a, b = stats[:, :len(qs)].T, stats[:, len(qs):].T
    diff = b - a
    out = np.add(a, diff * gamma)
    np.subtract(b, diff * (1 - gamma), out=out, where=np.broadcast_to(gamma >= 0.5, out.shape), casting="unsafe")
    return out


def median_rows(x: np.ndarray) -> np.ndarray:
    """(R,) ``np.median(x, axis=1)`` of the NaN-free (R, n) float array ``x``, to the bit: the
    middle value, or the mean of the middle two in ``x``'s dtype (as ``np.mean`` takes it)."""
    x = _check(x)
    return _median(x.shape[1], lambda ranks: _kth(x, ranks))


def _median(n: int, kth) -> np.ndarray:
    """numpy's median of rows of n values from ``kth(ranks)`` ((R, len(ranks)) order statistics):
    the middle value, or the mean of the middle two in their dtype (as ``np.mean`` takes it)."""
    if n % 2:
        return kth([n // 2])[:, 0]
    return np.mean(kth([n // 2 - 1, n // 2]), axis=1)


# ---- absolute deviations from a centre, read off sorted rows ------------------------------
#
# For a row sorted ascending, s, and a centre c, the deviations |s - c| are two sorted runs: the
# values <= c give c - s read backwards, the values above c give s - c read forwards (rounding is
# monotone, so both runs stay ordered after the float64 subtraction).  The k-th smallest deviation
# is then found by bisection over how many of the k + 1 smallest come from the first run (Knuth's
# selection in two sorted lists), ~log2(n) steps of a few gathers per row, and the deviations above
# a threshold by bisection in each run: no deviation array is made or sorted.  The values are the
# ``np.abs(x - c[:, None])`` numpy forms, in its dtype (float64 for float32 rows and a float64
# centre; the subtraction rounds alike whichever operand comes first), so the results equal numpy's.


def _dev_runs(s: np.ndarray, c: np.ndarray):
    """(getter of low-run deviations, getter of high-run deviations, low-run lengths) of sorted
    rows ``s`` about ``c``; a getter takes one index per row (clipped into the row: callers mask
    the rows whose index lies outside their run)."""
    c = np.asarray(c)
    dtype = np.result_type(s.dtype, c.dtype)  # numpy's dtype of x - c
    c = c.astype(dtype)
    n = s.shape[1]
    rows = np.arange(len(s))
    # values <= c per row: the first index whose value is not (a NaN centre: none are)
    n_low = _first_true(lambda i: ~(s[rows, np.minimum(i, n - 1)].astype(dtype) <= c),
                        np.zeros(len(s), dtype=np.intp), np.full(len(s), n, dtype=np.intp))

    def low(i):  # the i-th smallest deviation among the values <= c
        return c - s[rows, np.clip(n_low - 1 - i, 0, n - 1)].astype(dtype)

    def high(j):  # the j-th smallest deviation among the values > c
        return s[rows, np.clip(n_low + j, 0, n - 1)].astype(dtype) - c

    return low, high, n_low


def _first_true(pred, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Per row, the least i in [lo, hi) where ``pred(i)`` (one index per row) holds, else hi, for a
    predicate false and then true along i: vectorised bisection, ~log2(hi - lo) steps."""
    while np.any(lo < hi):
        active = lo < hi
        mid = (lo + hi) // 2
        true = pred(mid)
        hi = np.where(active & true, mid, hi)
        lo = np.where(active & ~true, mid + 1, lo)
    return lo


def kth_abs_deviation_sorted(s: np.ndarray, c: np.ndarray, k: int) -> np.ndarray:
    """(R,) the k-th smallest (0-based) of ``np.abs(x - c[:, None])`` per row, ``s``
    being the rows of ``x`` sorted ascending (``sort_rows``), ``c`` (R,) their centres."""
    n = s.shape[1]
    if not 0 <= k < n:
        raise ValueError(f"rank {k} out of range for rows of {n} values")
    low, high, n_low = _dev_runs(s, c)
    # i = how many of the k + 1 smallest deviations come from the low run: the smallest i at
    # which taking more from it would not help (high[k - i] > low[i] is false)
    lo = _first_true(lambda i: ~((i < n_low) & (k + 1 - i > 0) & (high(k - i) > low(i))),
                     np.maximum(0, k + 1 - (n - n_low)), np.minimum(k + 1, n_low))
    j = k + 1 - lo
    return np.maximum(np.where(lo > 0, low(lo - 1), -np.inf), np.where(j > 0, high(j - 1), -np.inf))


def median_abs_deviation_sorted(s: np.ndarray, c: np.ndarray) -> np.ndarray:
    """(R,) ``np.median(np.abs(x - c[:, None]), axis=1)`` (no 1.4826) to the bit, ``s`` the rows of
    ``x`` sorted ascending: the middle deviation, or the mean of the middle two (as ``median_rows``)."""
    return _median(s.shape[1], lambda ranks: np.stack([kth_abs_deviation_sorted(s, c, k) for k in ranks], axis=1))


def count_abs_deviation_above_sorted(s: np.ndarray, c: np.ndarray, t: np.ndarray) -> np.ndarray:
    """(R,) int64: ``np.count_nonzero(np.abs(x - c[:, None]) > t[:, None], axis=1)``, ``s`` the
    rows of ``x`` sorted ascending (a NaN threshold counts nothing, as the comparison)."""
    n = s.shape[1]
    low, high, n_low = _dev_runs(s, c)
    t = np.asarray(t)
    out = np.zeros(len(s), dtype=np.int64)
    for run, length in ((low, n_low), (high, n - n_low)):  # the first index whose deviation exceeds t
        out += length - _first_true(lambda i: run(i) > t, np.zeros_like(length), length)
    return out
