"""Crossmatch known lenses to Tractor rows: the nearest primary row within a radius.

``nearest_rows`` works on one catalogue chunk (one sweep); ``resolve_matches`` combines
the per-chunk candidates of every lens, keeps the nearest, and gives every lens that
ends without a row a reason:

- ``invalid_coords``: the lens has non-finite coordinates;
- ``outside_sweep_coverage``: no sweep file read by this run covers the lens position;
- ``no_tractor_row_within_radius``: covered, but no primary row within the radius;
- ``row_taken_by_closer_lens``: its nearest row is the nearest match of another lens
  that is closer to it (lenscat repeats some systems); the tie goes to the lower lens_id.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from lensaudit.sampling.geometry import arcsec_of_chord, chord_of_arcsec, unit_vectors

MATCH_RADIUS_ARCSEC = 1.5


def nearest_rows(lens_ra, lens_dec, row_ra, row_dec, radius_arcsec: float = MATCH_RADIUS_ARCSEC):
    """For each lens: (row index or -1, separation arcsec or inf)."""
    lxyz = unit_vectors(lens_ra, lens_dec)
    rxyz = unit_vectors(row_ra, row_dec)
    idx = np.full(len(lxyz), -1, dtype=np.int64)
    sep = np.full(len(lxyz), np.inf)
    rok = np.flatnonzero(np.isfinite(rxyz).all(axis=1))
    lok = np.flatnonzero(np.isfinite(lxyz).all(axis=1))
    if not len(rok) or not len(lok):
        return idx, sep
    tree = cKDTree(rxyz[rok])
    d, j = tree.query(lxyz[lok], k=1, distance_upper_bound=chord_of_arcsec(radius_arcsec) * (1 + 1e-12))
    found = np.isfinite(d)
    idx[lok[found]] = rok[j[found]]
    sep[lok[found]] = arcsec_of_chord(d[found])
    return idx, sep


def resolve_matches(lenses: pd.DataFrame, candidates: pd.DataFrame, covered: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(matched, unmatched) from per-chunk candidates.

    lenses: lens_id, ra, dec, ... ; candidates: lens_id, galaxy_id, sep_arcsec (+ row
    columns); covered: bool per lens row, True when a sweep read by the run covers it.
    """
    cand = candidates.sort_values(["lens_id", "sep_arcsec", "galaxy_id"], kind="stable")
    best = cand.drop_duplicates("lens_id", keep="first")
    # one Tractor row serves one lens: the closest lens keeps it
    best = best.sort_values(["galaxy_id", "sep_arcsec", "lens_id"], kind="stable")
    taken = best.duplicated("galaxy_id", keep="first")
    matched = best[~taken]
    lost = best.loc[taken, ["lens_id"]].assign(reason="row_taken_by_closer_lens")

    valid = np.isfinite(lenses["ra"].to_numpy()) & np.isfinite(lenses["dec"].to_numpy())
    reason = np.where(~valid, "invalid_coords", np.where(~covered, "outside_sweep_coverage", "no_tractor_row_within_radius"))
    no_cand = ~lenses["lens_id"].isin(best["lens_id"]).to_numpy()
    unmatched = pd.concat([
        lenses.loc[no_cand].assign(reason=reason[no_cand]),
        lenses.merge(lost, on="lens_id"),
    ], ignore_index=True).sort_values("lens_id", kind="stable").reset_index(drop=True)
    matched = lenses.drop(columns=["ra", "dec"]).merge(matched, on="lens_id")
    return matched.sort_values("lens_id", kind="stable").reset_index(drop=True), unmatched
