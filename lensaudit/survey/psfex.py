"""PSFEx PSF models (DR9 / DR10 calibration files) evaluated at a CCD position, resampled to the coadd.

File format (PSFEx, Bertin 2011; legacypipe's calib/psfex and psfex-single files): HDU 1 is a
binary table whose ``PSF_MASK`` holds the polynomial basis, (n_terms, H, W) in PSF pixels of
``PSF_SAMP`` CCD pixels each.  The polynomial metadata (``POLNAME1/2``, ``POLZERO1/2``,
``POLSCAL1/2``, ``POLDEG1``, ``POLNGRP``, ``PSF_SAMP``, ``PSF_FWHM``) are header keywords in a
file PSFEx wrote itself and one-row table columns in legacypipe's "merged" files; both are read.

Convention (the one legacypipe/tractor's ``PsfExModel`` uses, and PSFEx's own ``poly_func``):
with dx = (x - POLZERO1) / POLSCAL1 and dy = (y - POLZERO2) / POLSCAL2, the PSF is
sum_k c_k basis[k] with the terms ordered by the power of y, then of x:
1, x, x^2, ..., y, x y, ..., y^2, ... (degree 2: 1, dx, dx^2, dy, dx dy, dy^2; term (i, j) =
dx^i dy^j sits at index i + (deg + 1) j - j (j - 1) / 2).  (x, y) are pixel coordinates of
the image the model belongs to, in the frame POLZERO is stored in: legacypipe evaluates its
models at 0-based pixel coordinates (the first pixel's centre is 0) without adding 1, and its
survey-ccds ``psfnorm`` (sqrt(sum P^2) at (W//2, H//2)) is reproduced that way to 1e-6 on the
vendored rows (``lensaudit_tests/test_psfex.py``); a file written by PSFEx itself refers to
SExtractor's 1-based X_IMAGE, so pass x + 1 there (a one-pixel shift changes the PSF by
~1e-5 of its norm).  The basis centre is pixel (W//2, H//2) of the stamp (PSFEx's).

Resampling to the coadd (``psf_at``): the model image (CCD pixels) is sampled at the
positions of the coadd pixel grid through the CCD's local CD matrix (coadd pixel offset ->
sky offset -> CCD pixel offset: A = CD_ccd^-1 CD_coadd, so the coadd kernel has the coadd's
orientation and 0.262"/pixel scale) with cubic B-spline interpolation
(``scipy.ndimage.map_coordinates``, order 3, zero outside the stamp); without a CD matrix only
the scale changes (``DECAM_CCD_PIXSCALE_ARCSEC`` -> ``PIXSCALE_ARCSEC``, no rotation).  The
PSFEx model already includes the CCD pixel response; the coadd's pixels are within 0.5 % of the
CCD's, so the model is sampled, not re-integrated, and the coadd's own resampling kernel is
not added.  The result is re-centred (its first moments moved to the centre pixel by shifting
the sampling grid, three iterations), cropped to an odd (2h+1)^2 kernel and normalised to unit
sum (negative wing pixels of the PSFEx model are kept).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from lensaudit.survey.instrument import COADD_CD_SIGN, DECAM_CCD_PIXSCALE_ARCSEC, PIXSCALE_ARCSEC


class PsfexFormatError(ValueError):
    """A file that is not a PSFEx model this module can evaluate (the message names what is missing)."""


#: metadata every PSFEx model needs (lower case: table column or header keyword)
REQUIRED = ("poldeg1", "polzero1", "polzero2", "polscal1", "polscal2", "psf_samp", "polname1", "polname2")
_BAND_IN_NAME = re.compile(r"_oo[ik]_([a-zA-Z])_")


@dataclass(frozen=True)
class PsfexModel:
    """One CCD's PSFEx model.  ``basis`` (n_terms, H, W) float64 in PSF pixels of ``samp`` CCD
    pixels; ``zero`` / ``scale`` = (POLZERO1, POLZERO2) / (POLSCAL1, POLSCAL2) [CCD pixels];
    ``fwhm_pix``: PSF_FWHM [CCD pixels] (PSFEx's median FWHM of its PSF stars, a SExtractor
    catalogue statistic, not a measurement of the model; NaN when absent); ``band``: from a
    FILTER/BAND entry or the CP file name (``..._ooi_<band>_...``), None when neither says."""

    path: str
    basis: np.ndarray
    degree: int
    zero: tuple[float, float]
    scale: tuple[float, float]
    samp: float
    fwhm_pix: float
    band: str | None
    expnum: int | None
    ccdname: str | None

    @property
    def name(self) -> str:
        return Path(self.path).name


def _value(row, cols: dict, header, key: str):
    """Column ``key`` of the one row (case-insensitive) or header keyword ``key``; None if neither."""
    if key in cols:
        v = row[cols[key]]
        return v.item() if hasattr(v, "item") and np.ndim(v) == 0 else v
    return header.get(key.upper())


def read_psfex(path, ccdname: str | None = None) -> PsfexModel:
    """Read a PSFEx model (HDU 1).  A merged file with one row per CCD needs ``ccdname``.
    Raises ``PsfexFormatError`` naming the missing columns / keywords or the inconsistency."""
    from astropy.io import fits

    path = str(path)
    try:
        with fits.open(path, memmap=False) as hdul:
            if len(hdul) < 2 or not isinstance(hdul[1], fits.BinTableHDU):
                raise PsfexFormatError(f"{path}: not a PSFEx file (HDU 1 is not a binary table)")
            header, data = hdul[1].header, hdul[1].data
            cols = {c.lower(): c for c in data.columns.names}
            if "psf_mask" not in cols:
                raise PsfexFormatError(f"{path}: not a PSFEx file (no PSF_MASK column)")
            if len(data) == 0:
                raise PsfexFormatError(f"{path}: the PSFEx table has no row")
            i = 0
            if len(data) > 1:
                if ccdname is None or "ccdname" not in cols:
                    raise PsfexFormatError(f"{path}: {len(data)} PSFEx rows; name the CCD (ccdname=...)")
                names = [str(c).strip() for c in data[cols["ccdname"]]]
                if ccdname not in names:
                    raise PsfexFormatError(f"{path}: no row for CCD {ccdname!r} (has {names})")
                i = names.index(ccdname)
            row = data[i]
            missing = [k for k in REQUIRED if _value(row, cols, header, k) is None]
            if missing:
                raise PsfexFormatError(f"{path}: not a PSFEx model: missing {', '.join(k.upper() for k in missing)} "
                                       "(neither table column nor header keyword)")
            get = lambda k: _value(row, cols, header, k)  # noqa: E731
            basis = np.array(row[cols["psf_mask"]], dtype=np.float64)
            extra = {k: get(k) for k in ("psf_fwhm", "polngrp", "polnaxis", "filter", "band", "expnum", "ccdname",
                                         "psfaxis1", "psfaxis2")}
    except OSError as e:
        raise PsfexFormatError(f"{path}: cannot read as FITS ({e})") from None
    name1, name2 = str(get("polname1")).strip(), str(get("polname2")).strip()
    if not (name1.startswith("X") and name1.endswith("IMAGE") and name2.startswith("Y") and name2.endswith("IMAGE")):
        raise PsfexFormatError(f"{path}: polynomial axes {name1!r}, {name2!r}; only X_IMAGE, Y_IMAGE are supported")
    if extra["polngrp"] not in (None, 1) or extra["polnaxis"] not in (None, 2):
        raise PsfexFormatError(f"{path}: POLNGRP {extra['polngrp']} / POLNAXIS {extra['polnaxis']}; "
                               "only one group of two axes is supported")
    degree = int(get("poldeg1"))
    n_terms = (degree + 1) * (degree + 2) // 2
    if basis.ndim == 2:
        basis = basis[None]
    if basis.ndim == 3 and basis.shape[0] >= n_terms and extra["psfaxis1"] is not None and extra["psfaxis2"] is not None:
        # a merged file of several CCDs pads every mask to the largest; PSFAXIS1/2 give this one's (x, y) size
        basis = basis[:n_terms, :int(extra["psfaxis2"]), :int(extra["psfaxis1"])]
    if basis.ndim != 3 or basis.shape[0] != n_terms:
        raise PsfexFormatError(f"{path}: PSF_MASK shape {basis.shape} does not hold the {n_terms} terms of degree {degree}")
    scale = (float(get("polscal1")), float(get("polscal2")))
    samp = float(get("psf_samp"))
    if not (np.isfinite(basis).all() and samp > 0 and all(np.isfinite(s) and s > 0 for s in scale)):
        raise PsfexFormatError(f"{path}: non-finite basis or non-positive PSF_SAMP / POLSCAL")
    band = extra["band"] or extra["filter"]
    if band is None:
        m = _BAND_IN_NAME.search(Path(path).name)
        band = m.group(1) if m else None
    band = str(band).strip()[:1].lower() if band is not None else None
    fwhm = extra["psf_fwhm"]
    return PsfexModel(path=path, basis=basis, degree=degree, zero=(float(get("polzero1")), float(get("polzero2"))),
                      scale=scale, samp=samp, fwhm_pix=float(fwhm) if fwhm is not None else float("nan"), band=band,
                      expnum=int(extra["expnum"]) if extra["expnum"] is not None else None,
                      ccdname=str(extra["ccdname"]).strip() if extra["ccdname"] is not None else None)


def polynomial_terms(dx: float, dy: float, degree: int) -> np.ndarray:
    """PSFEx's polynomial terms in its order: dx^i dy^j for j = 0..deg, i = 0..deg-j (x fastest)."""
    return np.array([dx ** i * dy ** j for j in range(degree + 1) for i in range(degree + 1 - j)])


def evaluate_native(model: PsfexModel, x_pix: float, y_pix: float) -> np.ndarray:
    """(H, W) model image at CCD pixel (x_pix, y_pix) (the module's convention), in PSF pixels,
    not normalised: sum_k term_k basis[k]."""
    dx = (x_pix - model.zero[0]) / model.scale[0]
    dy = (y_pix - model.zero[1]) / model.scale[1]
    return np.tensordot(polynomial_terms(dx, dy, model.degree), model.basis, axes=(0, 0))


def ccd_cd_matrix(row) -> np.ndarray:
    """2x2 CD matrix [deg / CCD pixel] of a survey-ccds row (cd1_1, cd1_2, cd2_1, cd2_2)."""
    return np.array([[float(row["cd1_1"]), float(row["cd1_2"])], [float(row["cd2_1"]), float(row["cd2_2"])]])


def ccd_pixscale_arcsec(cd: np.ndarray) -> float:
    """Pixel scale [arcsec / pixel] of a CD matrix: 3600 sqrt(|det CD|) (legacypipe's)."""
    return 3600.0 * float(np.sqrt(abs(np.linalg.det(cd))))


def coadd_cd_matrix(pixscale_arcsec: float = PIXSCALE_ARCSEC) -> np.ndarray:
    """CD matrix [deg / pixel] of a Legacy Surveys coadd: diag(-s, s) / 3600 (east left, north up)."""
    return np.diag([COADD_CD_SIGN[0] * pixscale_arcsec, COADD_CD_SIGN[1] * pixscale_arcsec]) / 3600.0


def _sample(img: np.ndarray, a: np.ndarray, samp: float, half: int, shift_uv) -> np.ndarray:
    """(2h+1)^2 samples of ``img`` at coadd pixel offsets (du, dv) + shift, mapped to CCD pixels by ``a``."""
    o = np.arange(-half, half + 1, dtype=np.float64)
    du, dv = np.meshgrid(o + shift_uv[0], o + shift_uv[1], indexing="xy")  # du along columns, dv along rows
    dx = a[0, 0] * du + a[0, 1] * dv
    dy = a[1, 0] * du + a[1, 1] * dv
    h, w = img.shape
    rows, cols = h // 2 + dy / samp, w // 2 + dx / samp
    return ndimage.map_coordinates(img, [rows, cols], order=3, mode="constant", cval=0.0)


def first_moments(kernel: np.ndarray) -> tuple[float, float]:
    """(x, y) first moments [pixels] of a kernel about its centre pixel (x along columns)."""
    half = kernel.shape[0] // 2
    o = np.arange(-half, half + 1, dtype=np.float64)
    s = kernel.sum()
    return float((kernel.sum(axis=0) * o).sum() / s), float((kernel.sum(axis=1) * o).sum() / s)


def default_half_width(model: PsfexModel, ccd_pixscale: float, pixscale_arcsec: float) -> int:
    """The largest h whose (2h+1)^2 coadd kernel lies inside the model's stamp."""
    n = min(model.basis.shape[1:]) // 2
    return int(np.floor(n * model.samp * ccd_pixscale / pixscale_arcsec + 1e-9))


def psf_at(model: PsfexModel, x_pix: float, y_pix: float, *, ccd_cd: np.ndarray | None = None,
           pixscale_arcsec: float = PIXSCALE_ARCSEC, half_width: int | None = None, recentre: int = 3) -> np.ndarray:
    """(2h+1, 2h+1) unit-sum PSF kernel in coadd pixels (``pixscale_arcsec``, coadd orientation) of
    ``model`` at CCD pixel (x_pix, y_pix).  ``ccd_cd``: the CCD's CD matrix [deg / pixel]
    (``ccd_cd_matrix`` of its survey-ccds row); None: ``DECAM_CCD_PIXSCALE_ARCSEC``, no rotation.
    ``half_width``: h (default: the largest that fits the model's stamp); ``recentre``: moment
    re-centring iterations (0: PSFEx's own centre)."""
    if ccd_cd is None:
        ccd_scale = DECAM_CCD_PIXSCALE_ARCSEC
        a = np.eye(2) * (pixscale_arcsec / ccd_scale)
    else:
        ccd_cd = np.asarray(ccd_cd, dtype=np.float64)
        ccd_scale = ccd_pixscale_arcsec(ccd_cd)
        a = np.linalg.solve(ccd_cd, coadd_cd_matrix(pixscale_arcsec))
    half = default_half_width(model, ccd_scale, pixscale_arcsec) if half_width is None else int(half_width)
    if half < 1:
        raise ValueError(f"PSF kernel half width {half} < 1")
    img = evaluate_native(model, x_pix, y_pix)
    shift = np.zeros(2)
    k = _sample(img, a, model.samp, half, shift)
    for _ in range(recentre):
        mx, my = first_moments(k)
        shift += (mx, my)
        k = _sample(img, a, model.samp, half, shift)
    s = k.sum()
    if not np.isfinite(s) or s <= 0:
        raise ValueError(f"{model.name}: the PSF at ({x_pix}, {y_pix}) has non-positive flux {s}")
    return k / s


def halfmax_fwhm_pix(kernel: np.ndarray, upsample: int = 8) -> float:
    """FWHM [pixels] of a kernel from the area A above half its maximum, FWHM = 2 sqrt(A / pi),
    on a cubic-spline ``upsample`` x finer grid (a direct, model-free size; exact for a round
    profile)."""
    n = kernel.shape[0]
    c = (np.arange(n * upsample) + 0.5) / upsample - 0.5
    rr, cc = np.meshgrid(c, c, indexing="ij")
    fine = ndimage.map_coordinates(kernel, [rr.ravel(), cc.ravel()], order=3).reshape(rr.shape)
    area = float((fine > fine.max() / 2).sum()) / upsample ** 2
    return 2.0 * float(np.sqrt(area / np.pi))


def model_position(model: PsfexModel, key: str) -> tuple[float, float]:
    """A deterministic CCD position for ``key``: (POLZERO + POLSCAL (u - 1/2)) per axis with u, v in
    [0, 1) from sha256(key), i.e. uniform over the range PSFEx fitted its polynomial on."""
    d = hashlib.sha256(key.encode()).digest()
    u = int.from_bytes(d[:8], "big") / 2.0 ** 64
    v = int.from_bytes(d[8:16], "big") / 2.0 ** 64
    return model.zero[0] + model.scale[0] * (u - 0.5), model.zero[1] + model.scale[1] * (v - 0.5)


def default_models() -> list[Path]:
    """The real DR9 DECam PSFEx models vendored with the tests (``lensaudit_tests/data/real``),
    sorted by path; a clear error when the checkout does not hold them."""
    root = Path(__file__).resolve().parents[2] / "lensaudit_tests" / "data" / "real"
    paths = sorted(root.glob("dr9_decam*/**/*-psfex.fits"))
    if not paths:
        raise FileNotFoundError(f"no vendored PSFEx models under {root}; configure psfex_models explicitly")
    return paths
