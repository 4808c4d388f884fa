"""Legacy Surveys brick grid (DR1-DR10): names, ids and edges from (RA, Dec).

The sky is tiled in rows of constant Dec, 0.25 deg high, centred on
Dec = -90, -89.75, ..., +90 (one brick on each pole).  Each row holds an *even*
number of bricks of equal RA width, chosen so that the brick edge nearest the
equator is no longer than 0.25 deg:  n = ceil(360 cos(dec_near_equator) / 0.25),
rounded up to an even number.  Bricks are named by their centre,
``"%04d%s%03d" % (floor(10 ra), "p"|"m", floor(10 |dec|))`` (e.g. ``0959p805``), and
numbered from 1 starting at the south pole, RA increasing within a row.

This reproduces the real ``survey-bricks`` tables (tested against the DR10 and DR6
rows vendored in ``lensaudit_tests/data/real``).  Angles in degrees throughout.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

BRICK_SIZE_DEG = 0.25


@lru_cache(maxsize=1)
def _rows() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(dec centre, dec1, dec2, n bricks) for every row, south to north."""
    dec = np.round(np.arange(-90.0, 90.0 + BRICK_SIZE_DEG / 2, BRICK_SIZE_DEG), 6)
    dec1 = np.clip(dec - BRICK_SIZE_DEG / 2, -90.0, 90.0)
    dec2 = np.clip(dec + BRICK_SIZE_DEG / 2, -90.0, 90.0)
    near_eq = np.where(dec1 * dec2 <= 0, 0.0, np.minimum(np.abs(dec1), np.abs(dec2)))
    n = np.ceil(360.0 * np.cos(np.deg2rad(near_eq)) / BRICK_SIZE_DEG).astype(np.int64)
    n = n + (n % 2)
    n[np.abs(dec) >= 90.0] = 1
    return dec, dec1, dec2, n


@dataclass(frozen=True)
class Brick:
    brickname: str
    brickid: int
    brickrow: int
    brickcol: int
    ra: float
    dec: float
    ra1: float
    ra2: float
    dec1: float
    dec2: float


def brick_name(ra_deg: float, dec_deg: float) -> str:
    """Name of a brick from its *centre* coordinates."""
    sign = "p" if dec_deg >= 0 else "m"
    return f"{int(np.floor(ra_deg * 10 + 1e-9)):04d}{sign}{int(np.floor(abs(dec_deg) * 10 + 1e-9)):03d}"


def brick_at(ra_deg: float, dec_deg: float) -> Brick:
    """The brick containing (ra, dec).  Raises ValueError on non-finite or out-of-range input."""
    if not (np.isfinite(ra_deg) and np.isfinite(dec_deg)) or abs(dec_deg) > 90:
        raise ValueError(f"invalid coordinates ra={ra_deg!r} dec={dec_deg!r}")
    decs, dec1s, dec2s, ns = _rows()
    row = int(np.clip(np.floor((dec_deg + 90.0) / BRICK_SIZE_DEG + 0.5), 0, len(decs) - 1))
    n = int(ns[row])
    width = 360.0 / n
    col = int(np.floor((ra_deg % 360.0) / width)) % n
    ra1, ra2 = col * width, (col + 1) * width
    ra_c = (col + 0.5) * width
    brickid = int(ns[:row].sum()) + col + 1
    return Brick(brick_name(ra_c, decs[row]), brickid, row, col, ra_c, float(decs[row]),
                 ra1, ra2, float(dec1s[row]), float(dec2s[row]))


def bricks_of(ra_deg: np.ndarray, dec_deg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised (brickname, brickid) for arrays of coordinates.

    Non-finite coordinates give brickname ``""`` and brickid 0.
    """
    ra = np.asarray(ra_deg, dtype=np.float64)
    dec = np.asarray(dec_deg, dtype=np.float64)
    names = np.full(ra.shape, "", dtype=object)
    ids = np.zeros(ra.shape, dtype=np.int64)
    ok = np.isfinite(ra) & np.isfinite(dec) & (np.abs(dec) <= 90)
    decs, _, _, ns = _rows()
    offsets = np.concatenate([[0], np.cumsum(ns)[:-1]])
    row = np.clip(np.floor((dec[ok] + 90.0) / BRICK_SIZE_DEG + 0.5).astype(np.int64), 0, len(decs) - 1)
    n = ns[row]
    width = 360.0 / n
    col = np.floor((ra[ok] % 360.0) / width).astype(np.int64) % n
    ids[ok] = offsets[row] + col + 1
    # name each distinct brick once (many rows share a brick)
    uniq, inverse = np.unique(ids[ok], return_inverse=True)
    urow = np.searchsorted(offsets, uniq - 1, side="right") - 1
    ucol = uniq - 1 - offsets[urow]
    uname = np.array([brick_name((c + 0.5) * 360.0 / ns[r], decs[r]) for r, c in zip(urow, ucol)], dtype=object)
    names[ok] = uname[inverse] if len(uniq) else names[ok]
    return names, ids



#: columns a survey-bricks table must have (lower case, the ``survey-bricks-dr10-south.fits.gz``
#: data model): the median PSF FWHM psfsize_<band> [arcsec] and the median 5-sigma point-source
#: depth psfdepth_<band> [AB mag; 0 where the band has no data] of each brick
SURVEY_BRICKS_COLUMNS = ("brickname", "ra", "dec", "psfsize_g", "psfsize_r", "psfsize_z",
                         "psfdepth_g", "psfdepth_r", "psfdepth_z")


def read_survey_bricks(path: str) -> "pd.DataFrame":
    """The survey-bricks table at ``path`` (a FITS table, ``.fits[.gz]``, HDU 1, or a CSV with
    the same columns; a local path or an fsspec URL) with lower-case columns, indexed by
    brickname, keeping ``SURVEY_BRICKS_COLUMNS`` and any ``nexp_<band>`` / ``galdepth_<band>``
    / ``ebv`` (array columns such as ``nexphist_<band>`` are dropped).  ValueError naming the
    file when it cannot be read or lacks a column."""
    import pandas as pd

    remote = "://" in str(path)
    try:
        if str(path).lower().endswith(".csv"):
            df = pd.read_csv(path)
        else:
            from astropy.io import fits
            from astropy.table import Table

            with fits.open(path, use_fsspec=remote) as h:
                t = Table(h[1].data)
            df = t[[c for c in t.colnames if t[c].ndim == 1]].to_pandas()
    except (OSError, ValueError, TypeError, IndexError) as exc:
        raise ValueError(f"survey-bricks table {str(path)!r} cannot be read: {type(exc).__name__}: {exc}") from None
    df.columns = [c.lower() for c in df.columns]
    missing = [c for c in SURVEY_BRICKS_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"survey-bricks table {str(path)!r} lacks column(s) {', '.join(missing)}")
    extra = [c for c in df.columns if c.startswith(("nexp_", "galdepth_")) or c == "ebv"]
    df = df[list(SURVEY_BRICKS_COLUMNS) + extra].copy()
    df["brickname"] = df["brickname"].map(lambda v: (v.decode() if isinstance(v, bytes) else str(v)).strip())
    return df.set_index("brickname")


def brick_conditions(table: "pd.DataFrame", ra_deg, dec_deg) -> "pd.DataFrame":
    """Per target (arrays of coordinates, degrees): ``brickname`` (the DR10 grid's), ``covered``
    (the brick is in ``table`` with data in every band: psfdepth > 0 in g, r and z), and for
    covered targets ``psfsize_<band>_arcsec``, ``psfdepth_<band>_mag`` (5-sigma AB) and
    ``psfdepth_<band>_ivar`` [1/nmgy^2, the sweeps' PSFDEPTH convention] (NaN elsewhere)."""
    import pandas as pd

    from lensaudit.survey.instrument import BANDS
    from lensaudit.survey.photometry import mag5sigma_to_depth_ivar

    names, _ = bricks_of(ra_deg, dec_deg)
    rows = table.reindex(pd.Index(names, name="brickname"))
    mag = rows[[f"psfdepth_{b}" for b in BANDS]].to_numpy(dtype=float)
    covered = _has_every_band(mag)
    out = pd.DataFrame({"brickname": names, "covered": covered})
    for i, b in enumerate(BANDS):
        out[f"psfsize_{b}_arcsec"] = np.where(covered, rows[f"psfsize_{b}"].to_numpy(dtype=float), np.nan)
        m = np.where(covered, mag[:, i], np.nan)
        out[f"psfdepth_{b}_mag"] = m
        out[f"psfdepth_{b}_ivar"] = np.where(covered, mag5sigma_to_depth_ivar(np.nan_to_num(m, nan=30.0)), np.nan)
    return out


def _has_every_band(psfdepth_mag: np.ndarray) -> np.ndarray:
    """(N,) True where every band's 5-sigma depth [AB mag] is finite and > 0 (0: no data)."""
    return np.isfinite(psfdepth_mag).all(axis=1) & (np.nan_to_num(psfdepth_mag) > 0).all(axis=1)


def covered_bricks(table: "pd.DataFrame") -> frozenset[str]:
    """The bricks of a survey-bricks table (``read_survey_bricks``) with data in g, r and z."""
    from lensaudit.survey.instrument import BANDS

    mag = table[[f"psfdepth_{b}" for b in BANDS]].to_numpy(dtype=float)
    return frozenset(table.index[_has_every_band(mag)])
