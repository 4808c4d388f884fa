"""Stratified 100:1 negative selection plan (DESIGN section 3, "Stratified manifest").

Strata are (split, nobs_z_bin, type_bin).  Each stratum with P positives gets a target
of K = ratio x P negatives.  N2 (confusers) make up ``n2_fraction`` of all negatives,
apportioned over strata in proportion to K (largest remainder), capped by what each
stratum's N2 pool holds, the deficit moved to strata with spare N2.  N1 fills the rest
of each stratum; an N1 deficit is backfilled only from the *same split and type* in a
neighbouring nobs_z bin (the neighbour with more spare first), and what still lacks is
recorded as a shortfall with a reason.  Selection inside a (stratum, pool) takes the
first rows in the order of sha256("{galaxy_id}:{seed}") (hex), never a random sample.

This module plans on counts; ``lensaudit.spark_jobs.manifest`` applies the plan.
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict

import numpy as np
import pandas as pd

NOBS_Z_BINS = ("1-2", "3-5", "6-10", "11+")
TYPE_BINS = ("SER", "DEV", "REX")
OTHER_TYPE = "OTHER"

Stratum = tuple[str, str, str]  # (split, nobs_z_bin, type_bin)


def nobs_z_bin(nobs_z) -> np.ndarray:
    """'1-2' (0 included), '3-5', '6-10', '11+'."""
    n = np.asarray(nobs_z, dtype=np.int64)
    return np.select([n <= 2, n <= 5, n <= 10], list(NOBS_Z_BINS[:3]), NOBS_Z_BINS[3]).astype(object)


def type_bin(tractor_type) -> np.ndarray:
    t = np.asarray(tractor_type).astype(str)
    return np.where(np.isin(t, TYPE_BINS), t, OTHER_TYPE).astype(object)


def selection_key(galaxy_id: str, seed: int) -> str:
    """The ordering key; equals Spark's sha2(concat(galaxy_id, ':', seed), 256)."""
    return hashlib.sha256(f"{galaxy_id}:{seed}".encode()).hexdigest()


def _largest_remainder(total: int, weights: dict) -> dict:
    wsum = sum(weights.values())
    if total <= 0 or wsum <= 0:
        return {k: 0 for k in weights}
    raw = {k: total * w / wsum for k, w in weights.items()}
    out = {k: math.floor(v) for k, v in raw.items()}
    rest = total - sum(out.values())
    for k in sorted(raw, key=lambda k: (-(raw[k] - out[k]), k))[:rest]:
        out[k] += 1
    return out


def plan_n2(targets: dict[Stratum, int], n2_available: dict[Stratum, int], n2_fraction: float) -> dict[Stratum, int]:
    """N2 quota per stratum (sum = round(n2_fraction x sum of fillable targets) when the pool allows)."""
    fillable = {s: k for s, k in targets.items() if s[2] in TYPE_BINS and k > 0}
    total = int(round(n2_fraction * sum(fillable.values())))
    want = _largest_remainder(total, fillable)
    cap = {s: min(k, n2_available.get(s, 0)) for s, k in fillable.items()}
    quota = {s: min(want[s], cap[s]) for s in fillable}
    deficit = total - sum(quota.values())
    while deficit > 0:
        spare = sorted((s for s in fillable if cap[s] > quota[s]), key=lambda s: (-(cap[s] - quota[s]), s))
        if not spare:
            break
        for s in spare:
            if deficit == 0:
                break
            quota[s] += 1
            deficit -= 1
    return quota


def trim_n2(n2_quota: dict[Stratum, int], n1_total: int, n2_fraction: float) -> dict[Stratum, int]:
    """Shrink N2 quotas (largest remainder, proportional) so that N2 / (N1 + N2) does not
    exceed ``n2_fraction`` when N1 fell short; unchanged when it already does not."""
    allowed = int(math.floor(n2_fraction / (1.0 - n2_fraction) * n1_total + 0.5))
    if sum(n2_quota.values()) <= allowed:
        return dict(n2_quota)
    return _largest_remainder(allowed, {s: q for s, q in n2_quota.items()})


def plan_n1(targets: dict[Stratum, int], n2_quota: dict[Stratum, int], n1_available: dict[Stratum, int]):
    """(ranges, shortfalls).

    ranges: rows of (split, nobs_z_bin, type_bin, rank_lo, rank_hi, selected_for_nobs_z_bin)
    over the N1 hash order of the *source* stratum, ranks 1-based inclusive.
    shortfalls: one row per stratum with positives (see module docstring).
    """
    own = {}
    for s, k in targets.items():
        need = k - n2_quota.get(s, 0)
        own[s] = min(need, n1_available.get(s, 0)) if s[2] in TYPE_BINS else 0
    used = dict(own)  # rows consumed from each source stratum so far
    ranges = [(s[0], s[1], s[2], 1, own[s], s[1]) for s in sorted(own) if own[s] > 0]
    backfill = defaultdict(int)
    backfill_from = defaultdict(list)
    for s in sorted(targets, key=lambda s: (s[0], s[2], NOBS_Z_BINS.index(s[1]))):
        if s[2] not in TYPE_BINS:
            continue
        need = targets[s] - n2_quota.get(s, 0) - own[s]
        if need <= 0:
            continue
        i = NOBS_Z_BINS.index(s[1])
        neighbours = [(s[0], NOBS_Z_BINS[j], s[2]) for j in (i - 1, i + 1) if 0 <= j < len(NOBS_Z_BINS)]
        neighbours.sort(key=lambda n: (-(n1_available.get(n, 0) - used.get(n, 0)), NOBS_Z_BINS.index(n[1])))
        for nb in neighbours:
            spare = n1_available.get(nb, 0) - used.get(nb, 0)
            take = min(need, max(spare, 0))
            if take <= 0:
                continue
            lo = used.get(nb, 0) + 1
            ranges.append((nb[0], nb[1], nb[2], lo, lo + take - 1, s[1]))
            used[nb] = used.get(nb, 0) + take
            backfill[s] += take
            backfill_from[s].append(f"{nb[1]}:{take}")
            need -= take
            if need == 0:
                break
    rows = []
    for s in sorted(targets):
        k = targets[s]
        got = n2_quota.get(s, 0) + own.get(s, 0) + backfill[s]
        short = k - got
        reason = ""
        if short > 0:
            reason = ("no_negative_pool_for_type" if s[2] not in TYPE_BINS
                      else "pool_exhausted_after_backfill")
        rows.append({"split": s[0], "nobs_z_bin": s[1], "type_bin": s[2], "n_positives": None,
                     "target": k, "n2_selected": n2_quota.get(s, 0), "n1_selected_own": own.get(s, 0),
                     "n1_backfilled": backfill[s], "backfill_from": ",".join(backfill_from[s]),
                     "shortfall": short, "reason": reason})
    range_df = pd.DataFrame(ranges, columns=["split", "nobs_z_bin", "type_bin", "rank_lo", "rank_hi", "selected_for_nobs_z_bin"])
    return range_df, pd.DataFrame(rows)
