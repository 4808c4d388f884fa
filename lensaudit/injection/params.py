"""Injection parameters: the JSON schema of ``lensaudit inject`` and its validation.

Coordinates are arcsec from the stamp centre (pixel 50, 50 of a 101 stamp), x along
+columns, y along +rows; lenstronomy parameter conventions (theta_E product-averaged,
e1/e2 complex ellipticity, gamma1/gamma2 shear).  Magnitudes are unlensed AB
magnitudes of the whole source per band.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

REQUIRED_KEYS = ("theta_e_arcsec", "e1", "e2", "gamma1", "gamma2", "center_x_arcsec", "center_y_arcsec",
                 "src_x_arcsec", "src_y_arcsec", "src_r_sersic_arcsec", "src_n_sersic", "src_e1", "src_e2",
                 "src_mag_g", "src_mag_r", "src_mag_z", "psf_fwhm_g_arcsec", "psf_fwhm_r_arcsec", "psf_fwhm_z_arcsec")
OPTIONAL_DEFAULTS = {"moffat_beta": 3.5, "supersample": 4}
MAX_ELLIPTICITY = 0.95  # |e| below this: q = (1-|e|)/(1+|e|) > 0.026


class InvalidParameters(ValueError):
    """A parameter row that cannot be rendered; the message names the row and key."""


@dataclass(frozen=True)
class ParamRange:
    lo: float
    hi: float
    lo_open: bool = False


_RANGES = {
    "theta_e_arcsec": ParamRange(0.0, 10.0, lo_open=True),
    "src_r_sersic_arcsec": ParamRange(0.0, 5.0, lo_open=True),
    "src_n_sersic": ParamRange(0.3, 8.0),
    "psf_fwhm_g_arcsec": ParamRange(0.0, 5.0, lo_open=True),
    "psf_fwhm_r_arcsec": ParamRange(0.0, 5.0, lo_open=True),
    "psf_fwhm_z_arcsec": ParamRange(0.0, 5.0, lo_open=True),
    "moffat_beta": ParamRange(1.0, 20.0, lo_open=True),
    "gamma1": ParamRange(-0.5, 0.5), "gamma2": ParamRange(-0.5, 0.5),
}


def validate_rows(rows: list) -> dict[str, np.ndarray]:
    """Columns (float64 arrays) from a list of parameter dicts; InvalidParameters names
    the first bad row and key (missing, not a finite number, out of range, |e| too large)."""
    if not isinstance(rows, list) or not rows:
        raise InvalidParameters("parameters must be a non-empty JSON list of objects")
    cols: dict[str, list] = {k: [] for k in REQUIRED_KEYS + tuple(OPTIONAL_DEFAULTS)}
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise InvalidParameters(f"row {i}: not an object")
        unknown = set(row) - set(cols)
        if unknown:
            raise InvalidParameters(f"row {i}: unknown keys {sorted(unknown)}")
        for k in cols:
            if k not in row and k not in OPTIONAL_DEFAULTS:
                raise InvalidParameters(f"row {i}: missing key {k!r}")
            v = row.get(k, OPTIONAL_DEFAULTS.get(k))
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise InvalidParameters(f"row {i}: key {k!r} must be a finite number, got {v!r}")
            r = _RANGES.get(k)
            if r and not ((v > r.lo if r.lo_open else v >= r.lo) and v <= r.hi):
                raise InvalidParameters(f"row {i}: key {k!r} = {v} outside {'(' if r.lo_open else '['}{r.lo}, {r.hi}]")
            cols[k].append(float(v))
        for a, b in (("e1", "e2"), ("src_e1", "src_e2")):
            e = math.hypot(row[a], row[b])
            if e >= MAX_ELLIPTICITY:
                raise InvalidParameters(f"row {i}: keys {a!r}/{b!r}: |e| = {e:.3f} >= {MAX_ELLIPTICITY} (q out of range)")
        ss = row.get("supersample", OPTIONAL_DEFAULTS["supersample"])
        if int(ss) != ss or not 1 <= ss <= 16:
            raise InvalidParameters(f"row {i}: key 'supersample' must be an integer in [1, 16], got {ss!r}")
    out = {k: np.asarray(v, dtype=np.float64) for k, v in cols.items()}
    if len(set(out["supersample"].tolist())) > 1:
        raise InvalidParameters("all rows must share one 'supersample' value")
    return out
