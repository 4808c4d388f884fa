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
    step = max(1, SORT_BLOCK_BYTES // max(1, n * x.itemsize))
    for a in range(0, rows, step):  # blocks of rows whose sorted copy stays in the CPU's cache
        out[a:a + step] = np.sort(x[a:a + step], axis=1)[:, want]
    return out


def percentile_rows(x: np.ndarray, q: Sequence[float]) -> np.ndarray:
    """(len(q), R) float64: ``np.percentile(x, q, axis=1)`` (method 'linear') of the NaN-free
    (R, n) float array ``x``, to the bit; numpy's virtual index (n - 1) q / 100, its bounds and
    its two-sided linear interpolation (``numpy.lib._function_base_impl._lerp``)."""
    x = _check(x)
    n = x.shape[1]
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
    stats = _kth(x, np.concatenate([prev_i, next_i]))
    a, b = stats[:, :len(qs)].T, stats[:, len(qs):].T
    diff = b - a
    out = np.add(a, diff * gamma)
    np.subtract(b, diff * (1 - gamma), out=out, where=np.broadcast_to(gamma >= 0.5, out.shape), casting="unsafe")
    return out


def median_rows(x: np.ndarray) -> np.ndarray:
    """(R,) ``np.median(x, axis=1)`` of the NaN-free (R, n) float array ``x``, to the bit: the
    middle value, or the mean of the middle two in ``x``'s dtype (as ``np.mean`` takes it)."""
    x = _check(x)
    n = x.shape[1]
    if n % 2:
        return _kth(x, [n // 2])[:, 0]
    mid = _kth(x, [n // 2 - 1, n // 2])
    return np.mean(mid, axis=1)
