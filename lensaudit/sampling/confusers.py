"""N2 hard-confuser proxies from Tractor parameters (DESIGN section 3).

Each proxy is a boolean function of catalogue columns; a source may satisfy several
(``confuser_flags``), its ``confuser_category`` is the first in ``CATEGORY_ORDER``.

- bright_early_type (the "ring" proxy of the plan): TYPE DEV or SER, flux_r >= 5 nmgy, and
  SER needs sersic >= 4.  The catalogue cannot tell a ring galaxy from an ordinary
  elliptical, and this proxy selects mostly the latter (on the demo sky ~3/4 of N1 rows
  satisfy some proxy and two thirds of N2 fall in this category), so the category is named
  for what it selects; ``proxy_overlap`` reports how much of N1 each proxy also covers.
- edge_on: ellipticity 1 - b/a >= 0.50 and shape_r >= 0.6".  Tractor's (e1, e2) have
  modulus |e| = (1 - q) / (1 + q) with q = b/a, so 1 - q = 2|e| / (1 + |e|).
- blue_clumpy: dereddened g - r <= 0.4 and dereddened r <= 20.5 mag.
- large_galaxy: shape_r >= 2" and flux_r >= 3 nmgy.
- bright_neighbour (merger): another catalogue source with flux_r >= 30 % of this one's
  at 3-6" (inclusive); searched within the same sweep file, so pairs split by a sweep
  boundary are missed (a 6"-wide strip on 5-deg edges, ~0.07 % of the area).
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from lensaudit.sampling.geometry import chord_of_arcsec, unit_vectors
from lensaudit.survey.photometry import nmgy_to_mag

CATEGORY_ORDER = ("bright_early_type", "edge_on", "blue_clumpy", "large_galaxy", "bright_neighbour")
EARLY_TYPE_MIN_FLUX_R_NMGY = 5.0
EARLY_TYPE_MIN_SERSIC = 4.0
EDGE_ON_MIN_ELLIPTICITY = 0.50
EDGE_ON_MIN_SHAPE_R_ARCSEC = 0.6
BLUE_MAX_G_R = 0.4
BLUE_MAX_R_MAG = 20.5
LARGE_MIN_SHAPE_R_ARCSEC = 2.0
LARGE_MIN_FLUX_R_NMGY = 3.0
NEIGHBOUR_MIN_ARCSEC, NEIGHBOUR_MAX_ARCSEC = 3.0, 6.0
NEIGHBOUR_MIN_FLUX_RATIO = 0.30


def ellipticity_1mq(e1, e2) -> np.ndarray:
    """1 - b/a from Tractor ellipticity components."""
    e = np.hypot(np.asarray(e1, dtype=np.float64), np.asarray(e2, dtype=np.float64))
    return 2.0 * e / (1.0 + e)


def bright_early_type_proxy(type_, flux_r, sersic):
    t = np.asarray(type_)
    return (((t == "DEV") | ((t == "SER") & (np.asarray(sersic) >= EARLY_TYPE_MIN_SERSIC)))
            & (np.asarray(flux_r) >= EARLY_TYPE_MIN_FLUX_R_NMGY))


def edge_on_proxy(e1, e2, shape_r):
    return (ellipticity_1mq(e1, e2) >= EDGE_ON_MIN_ELLIPTICITY) & (np.asarray(shape_r) >= EDGE_ON_MIN_SHAPE_R_ARCSEC)


def blue_clumpy_proxy(flux_g, flux_r, mw_g, mw_r):
    with np.errstate(invalid="ignore"):
        g = nmgy_to_mag(np.asarray(flux_g) / np.asarray(mw_g))
        r = nmgy_to_mag(np.asarray(flux_r) / np.asarray(mw_r))
        return ((g - r) <= BLUE_MAX_G_R) & (r <= BLUE_MAX_R_MAG)


def large_galaxy_proxy(shape_r, flux_r):
    return (np.asarray(shape_r) >= LARGE_MIN_SHAPE_R_ARCSEC) & (np.asarray(flux_r) >= LARGE_MIN_FLUX_R_NMGY)


def _cell_pairs(start: np.ndarray, count: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every (point of cell a, point of cell b) for cell index arrays a, b (positions in
    the cell-sorted order)."""
    ca, cb = count[a], count[b]
    reps = ca * cb
    total = int(reps.sum())
    if total == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    k = np.repeat(np.arange(len(a)), reps)
    m = np.arange(total) - np.repeat(np.cumsum(reps) - reps, reps)
    return start[a][k] + m // cb[k], start[b][k] + m % cb[k]


def _grid_pairs(plane: np.ndarray, cell: float) -> np.ndarray:
    """Candidate pairs of 2-d points closer than ``cell``: points are hashed into square
    cells of that size, sorted once, and each occupied cell is joined with itself and its
    four 'forward' neighbours (so that every pair is produced once)."""
    cx = np.floor(plane[:, 0] / cell).astype(np.int64)
    cy = np.floor(plane[:, 1] / cell).astype(np.int64)
    key = cy * (1 << 32) + (cx & 0xFFFFFFFF)
    order = np.argsort(key, kind="stable")
    sk = key[order]
    first = np.flatnonzero(np.concatenate([[True], sk[1:] != sk[:-1]]))
    uk = sk[first]
    count = np.diff(np.append(first, len(sk)))
    ucx = uk & 0xFFFFFFFF
    ucy = (uk - ucx) >> 32
    pi, pj = [], []
    multi = np.flatnonzero(count > 1)  # pairs inside one cell
    i, j = _cell_pairs(first, count, multi, multi)
    keep = i < j
    pi.append(i[keep])
    pj.append(j[keep])
    for dy, dx in ((0, 1), (1, -1), (1, 0), (1, 1)):
        target = (ucy + dy) * (1 << 32) + ((ucx + dx) & 0xFFFFFFFF)
        pos = np.minimum(np.searchsorted(uk, target), len(uk) - 1)
        hit = np.flatnonzero(uk[pos] == target)
        i, j = _cell_pairs(first, count, hit, pos[hit])
        pi.append(i)
        pj.append(j)
    i, j = np.concatenate(pi), np.concatenate(pj)
    return np.stack([order[i], order[j]], axis=1)


def _pairs_within(xyz: np.ndarray, chord: float) -> np.ndarray:
    """All index pairs closer than ``chord`` on the unit sphere, exactly, each once.

    The points are projected gnomonically about their mean direction; the search radius
    is inflated by the largest gnomonic scale factor 1/cos^2(theta) so that no pair is
    missed, candidate pairs come from a sorted cell grid (``_grid_pairs``), and they are
    cut on the exact 3-d chord.  Sets wider than 40 deg from their centre use a 3-d
    k-d tree instead.
    """
    if len(xyz) < 2:
        return np.empty((0, 2), dtype=np.int64)
    centre = xyz.mean(axis=0)
    centre /= np.linalg.norm(centre)
    cos_t = xyz @ centre
    if cos_t.min() < np.cos(np.deg2rad(40.0)):
        tree = cKDTree(xyz, balanced_tree=False, compact_nodes=False)
        return tree.query_pairs(r=chord, output_type="ndarray")
    e1 = np.cross(centre, [0.0, 0.0, 1.0] if abs(centre[2]) < 0.9 else [1.0, 0.0, 0.0])
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(centre, e1)
    plane = np.stack([xyz @ e1, xyz @ e2], axis=1) / cos_t[:, None]
    pairs = _grid_pairs(plane, chord / cos_t.min() ** 2 * (1 + 1e-9))
    if len(pairs):
        d = np.linalg.norm(xyz[pairs[:, 0]] - xyz[pairs[:, 1]], axis=1)
        pairs = pairs[d <= chord]
    return pairs


def bright_neighbour_proxy(ra_deg, dec_deg, flux_r, candidates: np.ndarray, xyz=None) -> np.ndarray:
    """For rows flagged in ``candidates``: is there a neighbour (any row) at 3-6" with
    flux_r >= 0.3 x this row's flux_r?  Non-candidates get False.

    All pairs closer than 6" come from one k-d tree pair query (``_pairs_within``);
    each pair is tested both ways.
    """
    out = np.zeros(len(candidates), dtype=bool)
    xyz = unit_vectors(ra_deg, dec_deg) if xyz is None else xyz
    finite = np.isfinite(xyz).all(axis=1)
    if not (candidates & finite).any():
        return out
    src = np.flatnonzero(finite)
    rmax = chord_of_arcsec(NEIGHBOUR_MAX_ARCSEC) * (1 + 1e-12)
    rmin = chord_of_arcsec(NEIGHBOUR_MIN_ARCSEC) * (1 - 1e-12)
    pairs = _pairs_within(xyz[src], rmax)
    if not len(pairs):
        return out
    i, j = src[pairs[:, 0]], src[pairs[:, 1]]
    far_enough = np.linalg.norm(xyz[i] - xyz[j], axis=1) >= rmin
    i, j = i[far_enough], j[far_enough]
    flux = np.asarray(flux_r, dtype=np.float64)
    a, b = np.concatenate([i, j]), np.concatenate([j, i])  # b is a neighbour of a
    with np.errstate(invalid="ignore"):
        hit = candidates[a] & (flux[b] >= NEIGHBOUR_MIN_FLUX_RATIO * flux[a])
    out[a[hit]] = True
    return out


def confuser_flags(cols: dict, base_ok: np.ndarray, xyz=None) -> tuple[np.ndarray, np.ndarray]:
    """(category code, flag bits) per row, for rows passing the N2 base cuts (0 otherwise).

    category code i > 0 means ``CATEGORY_ORDER[i - 1]``; bit i of the flags means the
    proxy ``CATEGORY_ORDER[i]`` holds.  ``category_names`` / ``flag_names`` decode them.
    """
    masks = [
        bright_early_type_proxy(cols["type"], cols["flux_r"], cols["sersic"]),
        edge_on_proxy(cols["shape_e1"], cols["shape_e2"], cols["shape_r"]),
        blue_clumpy_proxy(cols["flux_g"], cols["flux_r"], cols["mw_transmission_g"], cols["mw_transmission_r"]),
        large_galaxy_proxy(cols["shape_r"], cols["flux_r"]),
        bright_neighbour_proxy(cols["ra"], cols["dec"], cols["flux_r"], base_ok, xyz=xyz),
    ]
    flags = np.zeros(len(base_ok), dtype=np.int16)
    for i, m in enumerate(masks):
        flags |= ((m & base_ok).astype(np.int16) << i)
    # lowest set bit + 1 is the first category in CATEGORY_ORDER
    category = np.zeros(len(base_ok), dtype=np.int8)
    for i in reversed(range(len(masks))):
        category[(flags >> i) & 1 == 1] = i + 1
    return category, flags


def category_names(codes: np.ndarray) -> np.ndarray:
    lookup = np.array(("",) + CATEGORY_ORDER, dtype=object)
    return lookup[np.asarray(codes, dtype=np.int64)]


def flag_names(flags: np.ndarray) -> np.ndarray:
    uniq, inv = np.unique(np.asarray(flags, dtype=np.int64), return_inverse=True)
    names = np.array(["|".join(c for i, c in enumerate(CATEGORY_ORDER) if f >> i & 1) for f in uniq], dtype=object)
    return names[inv] if len(uniq) else np.array([], dtype=object)


def proxy_overlap(pool) -> dict:
    """How selective the N2 proxies are, from a negative-pool table (columns pool,
    confuser_category, confuser_flags): the fraction of N1 rows satisfying any proxy and each
    proxy, and the share of each category in N2."""
    import pandas as pd

    n1 = pool[pool["pool"] == "N1"]
    n2 = pool[pool["pool"] == "N2"]
    flags = n1["confuser_flags"].fillna("").astype(str)
    out = {"n1_rows": int(len(n1)), "n1_fraction_any_proxy": float((flags != "").mean()) if len(n1) else float("nan"),
           "n1_fraction_by_proxy": {c: float(flags.str.split("|").apply(lambda f, c=c: c in f).mean()) if len(n1)
                                    else float("nan") for c in CATEGORY_ORDER},
           "n2_rows": int(len(n2)),
           "n2_share_by_category": {str(k): float(v) for k, v in
                                    pd.Series(n2["confuser_category"]).value_counts(normalize=True).items()}}
    return out
