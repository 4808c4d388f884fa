"""Exact order statistics, percentiles and medians of many equal-length rows at once.

numpy's ``percentile`` and ``median`` select with ``np.partition`` (introselect), ~8 ns per
element per selected rank on this project's CPUs: cutout QC (p1, p50, p99 and the MAD of
every band of every stamp, DESIGN s3 "Cutouts") spent ~40 % of the demo's cutout job there.
Here each requested rank is bracketed from a sorted strided sample of its row (about 1,024
values, +-3 binomial sigmas of the sample rank), the row's values inside the bracket are
extracted in one vectorised pass for all rows, and only those (a few hundred to ~1,000) are
partitioned.  The result is exact whatever the sample says: a row whose bracket misses a rank
(0.03 % of the brackets on demo stamps) is selected on the whole row (``np.partition``).
``percentile_rows`` and ``median_rows`` then apply numpy's own formulas (Hyndman & Fan 1996
type 7 linear interpolation; the median as the mean of the middle one or two values in the
input's dtype), so they return numpy's values to the bit (tested against ``np.percentile`` /
``np.median`` in lensaudit_tests/test_order_stats.py).

Rows must be free of NaN (the callers pass finite stamps; a NaN row would make numpy
return NaN, these functions a meaningless number): ``ValueError`` otherwise.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

#: rows shorter than this are partitioned whole (bracketing does not pay)
DIRECT_BELOW = 2048
#: the strided sample of a row holds about this many values
SAMPLE_SIZE = 1024
#: half-width of a bracket in binomial standard deviations of the sample rank (plus SAMPLE_PAD)
BRACKET_SIGMAS = 3.0
SAMPLE_PAD = 2


def _check(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[1] == 0:
        raise ValueError(f"order statistics need a 2-D array of rows with >= 1 value, got shape {x.shape}")
    if x.dtype.kind != "f":
        raise ValueError(f"order statistics need a float array, got {x.dtype}")
    if np.isnan(x).any():
        raise ValueError("order statistics need rows without NaN")
    return x


def _brackets(ranks: np.ndarray, n: int, m: int) -> list[tuple[int, int, np.ndarray]]:
    """Merged [a, b] sample-index brackets (a < 0: open below, b >= m: open above) with their ranks."""
    out: list[tuple[int, int, list[int]]] = []
    for k in ranks:
        p = (k + 0.5) / n
        j = k * m / n
        d = int(BRACKET_SIGMAS * math.sqrt(m * p * (1 - p))) + SAMPLE_PAD
        a, b = int(math.floor(j)) - d, int(math.ceil(j)) + d
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b), out[-1][2] + [int(k)])
        else:
            out.append((a, b, [int(k)]))
    return [(a, b, np.asarray(ks, dtype=np.intp)) for a, b, ks in out]


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
    uniq = np.unique(want)
    if n < DIRECT_BELOW or rows == 0 or len(uniq) == 0:
        part = np.partition(x, uniq, axis=1) if len(uniq) else x
        return part[:, want]
    step = max(1, n // SAMPLE_SIZE)
    sample = np.sort(x[:, ::step], axis=1)
    m = sample.shape[1]
    found = np.empty((rows, len(uniq)), dtype=x.dtype)
    col = 0
    for a, b, ks in _brackets(uniq, n, m):
        lo = sample[:, a][:, None] if a >= 0 else None
        hi = sample[:, b][:, None] if b < m else None
        below = np.count_nonzero(x < lo, axis=1) if lo is not None else np.zeros(rows, np.intp)
        if lo is None and hi is None:
            mask = np.ones(x.shape, bool)
        elif lo is None:
            mask = x <= hi
        elif hi is None:
            mask = x >= lo
        else:
            mask = (x >= lo) & (x <= hi)
        counts = np.count_nonzero(mask, axis=1)
        vals = x[mask]
        ends = np.cumsum(counts)
        for r in range(rows):
            local = ks - below[r]
            if local[0] >= 0 and local[-1] < counts[r]:
                cand = vals[ends[r] - counts[r]:ends[r]]
                found[r, col:col + len(ks)] = np.partition(cand, local)[local]
            else:  # the sample's bracket missed a rank: select on the whole row
                found[r, col:col + len(ks)] = np.partition(x[r], ks)[ks]
        col += len(ks)
    return found[:, np.searchsorted(uniq, want)]


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
