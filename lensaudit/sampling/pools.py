"""The N1 (Paper IV parity) and N2 (hard confuser) negative pools of one sweep.

``classify_negatives`` runs the cuts as a cascade in a fixed order and returns, per
row, the first cut it failed (or ``pass``) for each pool, so that every removed row
is counted under exactly one reason (per band for nobs):

N1: invalid_coords, not_brick_primary, dec_range (-18 < dec < 32 deg), nobs_g, nobs_r,
    nobs_z (>= 3 each), type (SER, DEV, REX), mag_z (z < 20.0 with
    z = 22.5 - 2.5 log10 flux_z, observed flux, not dereddened), maskbits (none of
    BRIGHT, ALLMASK_G/R/Z, MEDIUM, GALAXY, CLUSTER), near_known_lens (a lenscat entry
    of any kind within 11", inclusive).
N2: the same cascade (a confuser the detector would never score in deployment is no use
    as a negative), then no_confuser_proxy when no proxy of
    ``lensaudit.sampling.confusers`` holds.  N2 galaxies are thus N1 galaxies too.

A source can belong to both pools; the pool table holds one row per (galaxy, pool).
Statuses are small integer codes on the hot path (0 = pass, i = the i-th cut of the
cascade); ``status_names`` decodes them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lensaudit.sampling.confusers import confuser_flags
from lensaudit.sampling.exclusion import EXCLUSION_RADIUS_ARCSEC, LensNeighbourIndex
from lensaudit.sampling.geometry import unit_vectors
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
N2_CUT_ORDER = N1_CUT_ORDER + ("no_confuser_proxy",)


def cut_masks(cols: dict, cuts: NegativeCuts, lens_index: LensNeighbourIndex, mag_z=None, xyz=None) -> dict[str, np.ndarray]:
    """Boolean "fails this cut" per cut name.  Each is evaluated on every row except
    near_known_lens, which is only queried where every cut before it in both cascades
    passes (elsewhere it reads False: such rows are removed earlier anyway)."""
    ra = np.asarray(cols["ra"], dtype=np.float64)
    dec = np.asarray(cols["dec"], dtype=np.float64)
    valid = np.isfinite(ra) & np.isfinite(dec)
    with np.errstate(invalid="ignore"):
        fails = {
            "invalid_coords": ~valid,
            "not_brick_primary": ~np.asarray(cols["brick_primary"], dtype=bool),
            "dec_range": ~((dec > cuts.dec_min_deg) & (dec < cuts.dec_max_deg)),
            "type": ~np.isin(np.asarray(cols["type"]), cuts.types),
            "mag_z": ~((nmgy_to_mag(cols["flux_z"]) if mag_z is None else mag_z) < cuts.max_mag_z),
            "maskbits": has_any_bit(cols["maskbits"], cuts.excluded_maskbits),
        }
    for b in ("g", "r", "z"):
        fails[f"nobs_{b}"] = ~(np.asarray(cols[f"nobs_{b}"]) >= cuts.min_nobs)
    # the exclusion query only for rows that could still pass the other cuts: it is the
    # costly one
    near = np.zeros(len(ra), dtype=bool)
    alive = (valid & ~fails["dec_range"] & ~fails["maskbits"] & ~fails["type"] & ~fails["not_brick_primary"]
             & ~fails["mag_z"])
    for b in ("g", "r", "z"):
        alive &= ~fails[f"nobs_{b}"]
    if alive.any():
        near[alive] = (lens_index.within(ra[alive], dec[alive], cuts.exclusion_radius_arcsec) if xyz is None
                       else lens_index.within_xyz(xyz[alive], cuts.exclusion_radius_arcsec))
    fails["near_known_lens"] = near
    return fails


def _cascade(fails: dict[str, np.ndarray], order: tuple[str, ...], n: int) -> np.ndarray:
    """int8 code per row: 0 = passes every cut, i = first failed cut ``order[i - 1]``."""
    code = np.zeros(n, dtype=np.int8)
    for i in range(len(order), 0, -1):  # last cut first, so earlier cuts overwrite
        code[fails[order[i - 1]]] = i
    return code


def status_names(codes: np.ndarray, order: tuple[str, ...]) -> np.ndarray:
    """Decode cascade codes into cut names ('pass' for 0)."""
    return np.array((PASS,) + tuple(order), dtype=object)[np.asarray(codes, dtype=np.int64)]


def classify_negatives(cols: dict, lens_index: LensNeighbourIndex, cuts: NegativeCuts = NegativeCuts()) -> dict[str, np.ndarray]:
    """Per-row n1_code, n2_code (cascade codes over N1_CUT_ORDER / N2_CUT_ORDER),
    confuser_code, confuser_flag_bits (see lensaudit.sampling.confusers) and mag_z."""
    n = len(cols["ra"])
    mag_z = nmgy_to_mag(cols["flux_z"])
    xyz = unit_vectors(cols["ra"], cols["dec"])
    fails = cut_masks(cols, cuts, lens_index, mag_z=mag_z, xyz=xyz)
    n1 = _cascade(fails, N1_CUT_ORDER, n)
    n2_base = _cascade(fails, N2_CUT_ORDER[:-1], n)
    category, flags = confuser_flags(cols, n2_base == 0, xyz=xyz)
    n2 = np.where(n2_base > 0, n2_base, np.where(category == 0, len(N2_CUT_ORDER), 0)).astype(np.int8)
    return {"n1_code": n1, "n2_code": n2, "confuser_code": category, "confuser_flag_bits": flags,
            "mag_z": mag_z}


def removal_counts(codes: np.ndarray, order: tuple[str, ...]) -> dict[str, int]:
    """Rows removed by each cut of a cascade, in order, plus rows_in and kept."""
    c = np.bincount(np.asarray(codes, dtype=np.int64), minlength=len(order) + 1)
    out = {"rows_in": int(len(codes))}
    out.update({f"removed_{name}": int(c[i + 1]) for i, name in enumerate(order)})
    out["kept"] = int(c[0])
    return out
