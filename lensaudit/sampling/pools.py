"""The N1 (Paper IV parity) and N2 (hard confuser) negative pools of one sweep.

``classify_negatives`` runs the cuts as a cascade in a fixed order and returns, per
row, the first cut it failed (or ``pass``) for each pool, so that every removed row
is counted under exactly one reason (per band for nobs):

N1: invalid_coords, not_brick_primary, dec_range (-18 < dec < 32 deg), nobs_g, nobs_r,
    nobs_z (>= 3 each), type (SER, DEV, REX), mag_z (z < 20.0 with
    z = 22.5 - 2.5 log10 flux_z, observed flux, not dereddened), maskbits (none of
    BRIGHT, ALLMASK_G/R/Z, MEDIUM, GALAXY, CLUSTER), near_known_lens (a lenscat entry
    of any kind within 11", inclusive).
N2: the same cascade without the magnitude cut, then no_confuser_proxy when no proxy of
    ``lensaudit.sampling.confusers`` holds.

A source can belong to both pools; the pool table holds one row per (galaxy, pool).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lensaudit.sampling.confusers import confuser_flags
from lensaudit.sampling.exclusion import EXCLUSION_RADIUS_ARCSEC, LensNeighbourIndex
from lensaudit.survey.maskbits import N1_EXCLUDED_BITS, has_any_bit
from lensaudit.survey.photometry import nmgy_to_mag

PASS = "pass"


@dataclass(frozen=True)
class NegativeCuts:
    dec_min_deg: float = -18.0
    dec_max_deg: float = 32.0
    min_nobs: int = 3
    max_mag_z: float = 20.0
    types: tuple[str, ...] = ("SER", "DEV", "REX")
    excluded_maskbits: tuple[int, ...] = N1_EXCLUDED_BITS
    exclusion_radius_arcsec: float = EXCLUSION_RADIUS_ARCSEC


N1_CUT_ORDER = ("invalid_coords", "not_brick_primary", "dec_range", "nobs_g", "nobs_r", "nobs_z",
                "type", "mag_z", "maskbits", "near_known_lens")
N2_CUT_ORDER = tuple(c for c in N1_CUT_ORDER if c != "mag_z") + ("no_confuser_proxy",)


def cut_masks(cols: dict, cuts: NegativeCuts, lens_index: LensNeighbourIndex) -> dict[str, np.ndarray]:
    """Boolean "fails this cut" per cut name.  Each is evaluated on every row except
    near_known_lens, which is only queried where the cuts before it in both cascades
    (coordinates, dec range, type, maskbits) pass; elsewhere it reads False."""
    ra = np.asarray(cols["ra"], dtype=np.float64)
    dec = np.asarray(cols["dec"], dtype=np.float64)
    valid = np.isfinite(ra) & np.isfinite(dec)
    with np.errstate(invalid="ignore"):
        fails = {
            "invalid_coords": ~valid,
            "not_brick_primary": ~np.asarray(cols["brick_primary"], dtype=bool),
            "dec_range": ~((dec > cuts.dec_min_deg) & (dec < cuts.dec_max_deg)),
            "type": ~np.isin(np.asarray(cols["type"]), cuts.types),
            "mag_z": ~(nmgy_to_mag(cols["flux_z"]) < cuts.max_mag_z),
            "maskbits": has_any_bit(cols["maskbits"], cuts.excluded_maskbits),
        }
    for b in ("g", "r", "z"):
        fails[f"nobs_{b}"] = ~(np.asarray(cols[f"nobs_{b}"]) >= cuts.min_nobs)
    # the exclusion query only for rows that could still pass: it is the costly cut
    near = np.zeros(len(ra), dtype=bool)
    alive = valid & ~fails["dec_range"] & ~fails["maskbits"] & ~fails["type"]
    if alive.any():
        near[alive] = lens_index.within(ra[alive], dec[alive], cuts.exclusion_radius_arcsec)
    fails["near_known_lens"] = near
    return fails


def _cascade(fails: dict[str, np.ndarray], order: tuple[str, ...], n: int) -> np.ndarray:
    status = np.full(n, PASS, dtype=object)
    undecided = np.ones(n, dtype=bool)
    for name in order:
        hit = undecided & fails[name]
        status[hit] = name
        undecided &= ~hit
    return status


def classify_negatives(cols: dict, lens_index: LensNeighbourIndex, cuts: NegativeCuts = NegativeCuts()) -> dict[str, np.ndarray]:
    """Per-row n1_status, n2_status, confuser_category, confuser_flags, mag_z, ellipticity."""
    n = len(cols["ra"])
    fails = cut_masks(cols, cuts, lens_index)
    n1 = _cascade(fails, N1_CUT_ORDER, n)
    base_order = N2_CUT_ORDER[:-1]
    n2_base = _cascade(fails, base_order, n)
    category, flags = confuser_flags(cols, n2_base == PASS)
    fails["no_confuser_proxy"] = category == ""
    n2 = _cascade(fails, N2_CUT_ORDER, n)
    return {"n1_status": n1, "n2_status": n2, "confuser_category": category, "confuser_flags": flags,
            "mag_z": nmgy_to_mag(cols["flux_z"])}


def removal_counts(status: np.ndarray, order: tuple[str, ...]) -> dict[str, int]:
    """Rows removed by each cut of a cascade, in order, plus rows_in and kept."""
    vals, counts = np.unique(status.astype(str), return_counts=True)
    c = dict(zip(vals.tolist(), counts.tolist()))
    out = {"rows_in": int(len(status))}
    out.update({f"removed_{name}": int(c.get(name, 0)) for name in order})
    out["kept"] = int(c.get(PASS, 0))
    return out
