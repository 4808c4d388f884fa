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
from lensaudit.survey.instrument import BANDS, MOFFAT_BETA, PIXSCALE_ARCSEC, STAMP_CENTRE_PIX, STAMP_PIX

REQUIRED_KEYS = ("theta_e_arcsec", "e1", "e2", "gamma1", "gamma2", "center_x_arcsec", "center_y_arcsec",
                 "src_x_arcsec", "src_y_arcsec", "src_r_sersic_arcsec", "src_n_sersic", "src_e1", "src_e2",
                 "src_mag_g", "src_mag_r", "src_mag_z", "psf_fwhm_g_arcsec", "psf_fwhm_r_arcsec", "psf_fwhm_z_arcsec")
OPTIONAL_DEFAULTS = {"moffat_beta": MOFFAT_BETA, "supersample": 4}
MAX_ELLIPTICITY = 0.95  # |e| below this: q = (1-|e|)/(1+|e|) > 0.026
STAMP_HALF_ARCSEC = STAMP_CENTRE_PIX * PIXSCALE_ARCSEC  # centre to edge of the 101-pixel stamp [arcsec]
MAX_ROWS = 2000  # one call renders at most this many stamps (float64 working set ~ 0.5 GB)
MAX_PARAMS_BYTES = 8 * 2**20  # PARAMS.json larger than this is refused before parsing


class InvalidParameters(ValueError):
    """A parameter row that cannot be rendered; the message names the row and key."""


@dataclass(frozen=True)
class ParamRange:
    lo: float
    hi: float
    lo_open: bool = False


_POS = ParamRange(-STAMP_HALF_ARCSEC, STAMP_HALF_ARCSEC)  # inside the stamp
_MAG = ParamRange(10.0, 35.0)  # AB: brighter saturates any survey, fainter is invisible
_PSF = ParamRange(0.0, 5.0, lo_open=True)  # the stamp bounds it further: check_renderable
_RANGES = {
    "theta_e_arcsec": ParamRange(0.0, 10.0, lo_open=True),
    "src_r_sersic_arcsec": ParamRange(0.0, 5.0, lo_open=True),
    "src_n_sersic": ParamRange(0.3, 8.0),
    "psf_fwhm_g_arcsec": _PSF, "psf_fwhm_r_arcsec": _PSF, "psf_fwhm_z_arcsec": _PSF,
    "moffat_beta": ParamRange(1.0, 20.0, lo_open=True),
    "gamma1": ParamRange(-0.5, 0.5), "gamma2": ParamRange(-0.5, 0.5),
    "center_x_arcsec": _POS, "center_y_arcsec": _POS, "src_x_arcsec": _POS, "src_y_arcsec": _POS,
    "src_mag_g": _MAG, "src_mag_r": _MAG, "src_mag_z": _MAG,
    "supersample": ParamRange(1.0, 16.0),
}


def validate_rows(rows: list) -> dict[str, np.ndarray]:
    """Columns (float64 arrays) from a list of parameter dicts; InvalidParameters names
    the first bad row and key (missing, not a finite number, out of range, |e| too large)."""
    if not isinstance(rows, list) or not rows:
        raise InvalidParameters("parameters must be a non-empty JSON list of objects")
    if len(rows) > MAX_ROWS:
        raise InvalidParameters(f"{len(rows)} rows: at most {MAX_ROWS} per call (split the list)")
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
            try:
                finite = not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(float(v))
            except OverflowError:  # an integer beyond float range
                finite = False
            if not finite:
                raise InvalidParameters(f"row {i}: key {k!r} must be a finite number, got {str(v)[:40]!r}")
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


def check_renderable(cols: dict[str, np.ndarray], npix: int = STAMP_PIX, pixscale: float = PIXSCALE_ARCSEC,
                     radius_fwhm: float = 4.0) -> None:
    """InvalidParameters naming the first row and band whose Moffat kernel (``radius_fwhm``
    FWHM radius, as ``render_arcs`` builds it) would not fit the ``npix`` stamp."""
    from lensaudit.injection.psf import kernel_half_width

    for b in BANDS:
        for i, f in enumerate(cols[f"psf_fwhm_{b}_arcsec"]):
            if 2 * kernel_half_width(float(f), pixscale, radius_fwhm) + 1 > npix:
                raise InvalidParameters(f"row {i}: key 'psf_fwhm_{b}_arcsec' = {f}: its PSF kernel exceeds the "
                                        f"{npix} px stamp (largest FWHM {(npix // 2) * pixscale / radius_fwhm:.2f} arcsec)")
