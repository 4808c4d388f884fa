"""Per-cell completeness at one operating threshold, with intervals that respect host reuse.

Detection rule (DESIGN s3 "Selection function"): an injection is *detected* when the
injected stamp's logit crosses the threshold and the same host without the arc does not.
Injections into a host that itself crosses the threshold (a host false positive) cannot be
detections: they are left out of n and counted apart (``n_host_fp``).

For each of the 385 cells: n injections (host false positives excluded), k detected,
C = k/n with the Beta(k+1, n-k+1) 68 % and 95 % intervals of ``evaluation.metrics.beta_bounds``
(equal-tailed, HPD at k = 0 or n, so the interval holds the point estimate; n = 0 gives the
prior's and C is NaN), ``sufficient = n >= lensaudit.spec.SELECTION.sufficient_n``; no
smoothing.  Hosts are reused inside a cell, so the Beta interval (which treats the n
injections as independent) is too narrow when hosts differ: beside it, a **host-cluster
bootstrap** (resample the cell's distinct hosts with replacement, keep all their injections;
``cluster_lo95`` / ``cluster_hi95``, percentile) and the effective sample size
n_eff = C (1 - C) / Var_boot(C) (NaN where the variance is 0).  With fewer than
``MIN_CLUSTER_HOSTS`` distinct hosts the bootstrap cannot estimate the between-host scatter:
its bounds are NaN and ``cluster_ok`` is False.
Decomposition: n_observable (``lensaudit.injection.visibility.observable``), the observable fraction and the
conditional recall k_obs/n_obs, each with ``beta_bounds`` intervals.
"""

from __future__ import annotations

import os
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from lensaudit.evaluation.metrics import beta_bounds
from lensaudit.selection.grid import cells
from lensaudit.spec import INTERVAL_LEVELS, SELECTION, interval_tag

if TYPE_CHECKING:  # torch is imported where the device bootstrap runs, not with the tables
    from lensaudit.selection.bootstrap_draws import BootstrapDraws

SCHEMA_VERSION = 2
MIN_CLUSTER_HOSTS = 5
BOOTSTRAP_THREADS = 4  # cells bootstrapped in parallel (the result does not depend on it; 16 was slower than 4 on a 16-core H200 host)


def detections(records: pd.DataFrame, threshold_logit: float) -> tuple[np.ndarray, np.ndarray]:
    """(detected, host_false_positive) boolean arrays of the injections in ``records``
    (columns ``logit``, ``host_logit``)."""
    host_fp = records["host_logit"].to_numpy(float) >= threshold_logit
    det = (records["logit"].to_numpy(float) >= threshold_logit) & ~host_fp
    return det, host_fp


def _with_intervals(df: pd.DataFrame, k: str, n: str, value: str, prefix: str = "") -> None:
    with np.errstate(invalid="ignore", divide="ignore"):
        df[value] = np.where(df[n] > 0, df[k] / df[n].where(df[n] > 0, 1), np.nan)
    for level in INTERVAL_LEVELS:
        lo, hi = beta_bounds(df[k], df[n], level)
        df[f"{prefix}lo{interval_tag(level)}"], df[f"{prefix}hi{interval_tag(level)}"] = lo, hi


def resampled_ratio(k_h: np.ndarray, n_h: np.ndarray, idx: np.ndarray, packed: bool = True) -> np.ndarray:
    """sum k_h[idx] / sum n_h[idx] along the last axis (integer counts k_h <= n_h, as floats).
    ``packed`` (used where the sums fit): both counts in one int64 (n << 32 | k), so one gather
    and one sum instead of two; integer sums, so the same numbers as the two float sums."""
    if packed and len(n_h) and idx.shape[-1] * float(n_h.max()) < 2**31:
        s = np.take((n_h.astype(np.int64) << 32) | k_h.astype(np.int64), idx).sum(axis=-1)
        return (s & 0xFFFFFFFF).astype(float) / (s >> 32).astype(float)
    return np.take(k_h, idx).sum(axis=-1) / np.take(n_h, idx).sum(axis=-1)


def _cell_row(cell: int, k_h: np.ndarray, n_h: np.ndarray, stats: tuple | None) -> dict:
    """The bootstrap columns of one cell from (2.5th percentile, 97.5th percentile, variance
    (ddof 1)) of its resampled completeness (None: too few hosts)."""
    row = {"cell": cell, "n_hosts": len(k_h), "cluster_lo95": np.nan, "cluster_hi95": np.nan, "n_eff": np.nan,
           "cluster_ok": False}
    if stats is not None:
        lo, hi, var = stats
        p = k_h.sum() / n_h.sum()
        row.update(cluster_lo95=float(lo), cluster_hi95=float(hi), cluster_ok=True,
                   n_eff=float(p * (1 - p) / var) if var > 0 else np.nan)
    return row


def _cell_bootstrap(cell: int, k_h: np.ndarray, n_h: np.ndarray, n_boot: int, seed: int) -> dict:
    m = len(k_h)
    stats = None
    if m >= MIN_CLUSTER_HOSTS:
        rng = np.random.default_rng([int(seed), int(cell)])  # one stream per cell: any order, any thread
        idx = rng.integers(0, m, size=(n_boot, m))  # host draws with replacement
        c_boot = resampled_ratio(k_h, n_h, idx)
        lo, hi = np.percentile(c_boot, [2.5, 97.5])
        stats = (lo, hi, c_boot.var(ddof=1))
    return _cell_row(cell, k_h, n_h, stats)


def _bootstrap_torch(jobs: list, device, n_boot: int, seed: int, draws: BootstrapDraws | None = None) -> list[dict]:
    """``_cell_bootstrap`` of every job with the same draws, the resampling on ``device``:
    numpy's ``integers(0, m)`` is Lemire's method on the generator's 32-bit outputs
    (index = (x m) >> 32, redrawn when the low 32 bits of x m fall under (2^32 - m) mod m), so
    the host draws only the raw outputs (``bootstrap_draws``: ``draws`` when given, drawn ahead
    of time, else now) and the device maps, gathers and sums them (integers: exact); a cell where
    a redraw would occur (probability ~ m / 2^32 per draw), or whose counts do not fit the packed
    sum, goes through ``_cell_bootstrap`` itself.  Percentiles and variances are numpy's on the
    same resampled values, a row per cell (numpy reduces each row as it reduces a 1-D array):
    the same numbers."""
    import torch

    from lensaudit.device_upload import to_device
    from lensaudit.selection.bootstrap_draws import BootstrapDraws

    if sys.byteorder != "little":  # the uint32 view assumes little-endian
        return [_cell_bootstrap(*j) for j in jobs]
    ok = [len(j[1]) >= MIN_CLUSTER_HOSTS and len(j[1]) * float(j[2].max()) < 2**31 for j in jobs]
    todo = [j for j, o in zip(jobs, ok) if o]
    if draws is None or not draws.matches(seed, n_boot, device):
        draws = BootstrapDraws({j[0]: len(j[1]) for j in todo}, seed, n_boot, device)
    by_m: dict[int, list[int]] = {}
    for i, j in enumerate(todo):
        by_m.setdefault(len(j[1]), []).append(i)
    order, parts = [], []  # every host count's work queued on the device, then one transfer (no sync per count)
    for m, members in by_m.items():
        x = draws.rows([todo[i][0] for i in members], m * n_boot)
        prod = (x.long() & 0xFFFFFFFF) * m  # < 2^63
        redraw = ((prod & 0xFFFFFFFF) < (2**32 - m) % m).any(dim=1)
        codes = to_device(np.stack([(todo[i][2].astype(np.int64) << 32) | todo[i][1].astype(np.int64)
                                    for i in members]), device)
        s = torch.gather(codes, 1, prod >> 32).view(len(members), n_boot, m).sum(dim=2)
        parts.append(torch.cat([(s & 0xFFFFFFFF).double() / (s >> 32).double(), redraw.double()[:, None]], dim=1))
        order += members
    stats: dict[int, tuple | None] = {}
    if parts:
        both = torch.cat(parts).cpu().numpy()
        c = np.ascontiguousarray(both[:, :n_boot])  # resampled completeness, one row per cell
        lo, hi = np.percentile(c, [2.5, 97.5], axis=1)
        var = c.var(axis=1, ddof=1)
        for r, i in enumerate(order):
            stats[todo[i][0]] = None if both[r, n_boot] else (lo[r], hi[r], var[r])
    rows = []
    for j, o in zip(jobs, ok):
        st = stats.get(j[0]) if o else None
        rows.append(_cell_row(j[0], j[1], j[2], st) if st is not None else _cell_bootstrap(*j))
    return rows


def per_cell_host(cell: np.ndarray, host: np.ndarray, det: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(cell, detections, injections) per distinct (cell, host), sorted by cell then host: the
    ``groupby(["cell", "host"], sort=True)`` sum and size, by sorted factor codes and one
    ``np.unique`` (a missing host falls back to that groupby, which drops it)."""
    codes, uniq = pd.factorize(np.asarray(host), sort=True)
    if (codes < 0).any():
        per = pd.DataFrame({"cell": cell, "host": host, "det": det.astype(np.int64)}).groupby(
            ["cell", "host"], sort=True)["det"].agg(["sum", "size"]).reset_index()
        return per["cell"].to_numpy(), per["sum"].to_numpy(float), per["size"].to_numpy(float)
    key = np.asarray(cell, dtype=np.int64) * max(len(uniq), 1) + codes
    ukey, inv, size = np.unique(key, return_inverse=True, return_counts=True)
    k = np.bincount(inv, weights=np.asarray(det, dtype=float), minlength=len(ukey))
    return ukey // max(len(uniq), 1), k, size.astype(float)


def cluster_bootstrap(cell: np.ndarray, host: np.ndarray, det: np.ndarray, n_boot: int, seed: int,
                      device=None, draws: BootstrapDraws | None = None) -> pd.DataFrame:
    """Per cell: n_hosts, cluster_lo95, cluster_hi95, n_eff, cluster_ok from a bootstrap over
    the cell's distinct hosts (each resample draws as many hosts as the cell has, with
    replacement, and keeps all their injections).  Each cell draws from its own generator
    seeded by (seed, cell), so cells run in parallel threads (numpy releases the GIL while
    drawing and summing) and the result does not depend on the thread count.  ``device`` (a
    torch device; callers pass their CUDA device): resample there (``_bootstrap_torch``: the
    same draws, the same numbers; None: numpy on the host); ``draws``: its raw generator outputs
    drawn ahead of time (``bootstrap_draws.BootstrapDraws``; the same numbers)."""
    cells_arr, k_all, n_all = per_cell_host(cell, host, det)
    cols = ["cell", "n_hosts", "cluster_lo95", "cluster_hi95", "n_eff", "cluster_ok"]
    if not len(cells_arr):  # no injection left (e.g. every host a false positive): no cell to bootstrap
        return pd.DataFrame({"cell": pd.Series(dtype=np.int64), "n_hosts": pd.Series(dtype=np.int64),
                             **{c: pd.Series(dtype=float) for c in cols[2:5]}, "cluster_ok": pd.Series(dtype=bool)})
    bounds = np.flatnonzero(np.r_[True, cells_arr[1:] != cells_arr[:-1], True])
    jobs = [(int(cells_arr[a]), k_all[a:b], n_all[a:b], n_boot, seed) for a, b in zip(bounds[:-1], bounds[1:])]
    workers = min(BOOTSTRAP_THREADS, os.cpu_count() or 1, len(jobs))
    if device is not None:
        rows = _bootstrap_torch(jobs, device, n_boot, seed, draws)
    elif workers > 1:
        with ThreadPoolExecutor(workers) as pool:
            rows = list(pool.map(lambda j: _cell_bootstrap(*j), jobs))
    else:
        rows = [_cell_bootstrap(*j) for j in jobs]
    return pd.DataFrame(rows, columns=cols)


def completeness_table(records: pd.DataFrame, threshold_logit: float, threshold_name: str,
                       n_boot: int = SELECTION.n_boot, seed: int = 0, device=None,
                       draws: BootstrapDraws | None = None) -> pd.DataFrame:
    """385 rows.  ``records``: one row per injection with ``cell``, ``galaxy_id`` (the host),
    ``logit``, ``host_logit``, ``observable``.  ``device``: where the host-cluster bootstrap
    resamples (``cluster_bootstrap``; the same numbers on any device); ``draws``: the device
    bootstrap's raw draws made ahead of time (one ``BootstrapDraws`` serves every threshold)."""
    det, host_fp = detections(records, threshold_logit)
    obs = records["observable"].to_numpy(bool)
    keep = ~host_fp
    agg = pd.DataFrame({"cell": records["cell"].to_numpy(int), "det": det, "obs": obs & keep, "det_obs": det & obs,
                        "keep": keep, "host_fp": host_fp})
    g = agg.groupby("cell").agg(n=("keep", "sum"), k=("det", "sum"), n_observable=("obs", "sum"),
                                k_observable=("det_obs", "sum"), n_host_fp=("host_fp", "sum"))
    t = cells().merge(g, left_on="cell", right_index=True, how="left")
    for c in ("n", "k", "n_observable", "k_observable", "n_host_fp"):
        t[c] = t[c].fillna(0).astype(np.int64)
    _with_intervals(t, "k", "n", "completeness")
    t["sufficient"] = t["n"] >= SELECTION.sufficient_n
    boot = cluster_bootstrap(records["cell"].to_numpy(int)[keep], records["galaxy_id"].to_numpy()[keep], det[keep],
                             n_boot, seed, device=device, draws=draws)
    t = t.merge(boot, on="cell", how="left")
    t["n_hosts"] = t["n_hosts"].fillna(0).astype(np.int64)
    t["cluster_ok"] = t["cluster_ok"].eq(True)  # False where the cell had no bootstrap row (NaN after the merge)
    _with_intervals(t, "n_observable", "n", "observable_fraction", "observable_")
    _with_intervals(t, "k_observable", "n_observable", "conditional_recall", "conditional_")
    t["threshold_name"] = threshold_name
    t["threshold_logit"] = float(threshold_logit)
    t["threshold_probability"] = float(1 / (1 + np.exp(-threshold_logit)))
    t["schema_version"] = SCHEMA_VERSION
    return t


def marginal(table: pd.DataFrame, axis: str) -> pd.DataFrame:
    """Completeness summed over the other two axes (n, k pooled), with Beta intervals."""
    lo, hi = f"{axis}_lo", f"{axis}_hi"
    m = table.groupby([lo, hi], as_index=False)[["n", "k"]].sum()
    _with_intervals(m, "k", "n", "completeness")
    return m
