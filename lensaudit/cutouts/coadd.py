"""Cutouts from Legacy Surveys coadd bricks: ``legacysurvey-<brick>-image-<band>.fits.fz``
(+ ``-invvar-``) read with astropy, from a local directory or an fsspec URL prefix, in
the Legacy Surveys layout ``<root>/coadd/<bri>/<brick>/`` (``<root>`` may already end in
``coadd``) or flat in ``<root>``.

Centring rule (that of ``astropy.nddata.Cutout2D``): (x, y) = the TAN WCS's
``world_to_pixel`` of (ra, dec) (0-based, pixel centres at integers); the stamp starts at
column ceil(x - size/2) and row ceil(y - size/2), with no resampling, so the target lies
within half a pixel of stamp pixel (size//2, size//2) (a target exactly half-way between
two pixels goes to the lower one); the offset (dx_pix, dy_pix) from that pixel centre is
recorded.  No-data pixels become NaN, and they must be known: by default the
``-invvar-`` image is required (invvar <= 0 or non-finite = no data); without it the
``-nexp-`` image is used (nexp == 0 = no data); with neither the cutout is a failure with
reason ``missing_invvar_<band>`` (a no-data pixel stored as 0 would otherwise pass QC as
a real zero-flux pixel).  ``nodata="zeros"`` opts in to reading exact zeros of the image
as no data when no weight map exists.  A non-finite image pixel is NaN too.  Brick edge:
the stamp comes from the brick that contains (ra, dec) on the DR10 grid; a stamp that
would leave that brick's image is a failure with reason ``brick_edge`` (assembling it
from the neighbouring bricks is not done).  Open bricks are kept in an LRU cache;
callers sort their objects by brick.
"""

from __future__ import annotations

import os
from collections import OrderedDict

import numpy as np

from lensaudit.cutouts.result import Cutout
from lensaudit.survey.bricks import brick_at
from lensaudit.survey.instrument import BANDS, STAMP_PIX


class CoaddSource:
    def __init__(self, root: str, cache_bricks: int = 8, nodata: str = "invvar"):
        if nodata not in ("invvar", "zeros"):
            raise ValueError(f"nodata must be 'invvar' (invvar, else nexp, required) or 'zeros', got {nodata!r}")
        self.root = root.rstrip("/")
        self.cache_bricks = cache_bricks
        self.nodata = nodata
        self._cache: OrderedDict = OrderedDict()

    def _path(self, brick: str, kind: str, band: str) -> tuple[str, ...]:
        name = f"legacysurvey-{brick}-{kind}-{band}.fits.fz"
        return (f"{self.root}/coadd/{brick[:3]}/{brick}/{name}", f"{self.root}/{brick[:3]}/{brick}/{name}",
                f"{self.root}/{name}")

    def _open(self, path_options) -> tuple[np.ndarray, object] | None:
        from astropy.io import fits
        from astropy.wcs import WCS

        for path in path_options:
            remote = "://" in path
            if not remote and not os.path.exists(path):
                continue
            try:
                with fits.open(path, use_fsspec=remote) as h:
                    hdu = h[1] if len(h) > 1 and h[1].data is not None else h[0]
                    if hdu.data is None:
                        raise OSError("empty HDU")
                    return np.asarray(hdu.data), WCS(hdu.header)
            except FileNotFoundError:
                continue
        return None

    def _brick_band(self, brick: str, band: str):
        key = (brick, band)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        image = self._open(self._path(brick, "image", band))
        entry = None
        if image is not None:
            weight, kind = None, "zeros"
            if self.nodata == "invvar":
                for kind in ("invvar", "nexp"):
                    opened = self._open(self._path(brick, kind, band))
                    if opened is not None:
                        weight = opened[0]
                        break
                else:
                    kind = "missing"
            if weight is not None and weight.shape != image[0].shape:
                raise ValueError(f"{kind} shape {weight.shape} differs from the image's {image[0].shape}")
            entry = (image[0], image[1], weight, kind)
        self._cache[key] = entry
        while len(self._cache) > self.cache_bricks:
            self._cache.popitem(last=False)
        return entry

    def cutout(self, ra: float, dec: float, bands: str = BANDS, size: int = STAMP_PIX) -> Cutout:
        if not (np.isfinite(ra) and np.isfinite(dec)):
            return Cutout.failure(bands, "invalid_coords")
        if size % 2 != 1:
            return Cutout.failure(bands, f"size must be odd, got {size}")
        brick = brick_at(ra, dec).brickname
        h = size // 2
        planes, meta = [], {"ra": float(ra), "dec": float(dec), "brickname": brick, "source": "coadd"}
        for band in bands:
            try:
                entry = self._brick_band(brick, band)
            except (OSError, ValueError, TypeError) as exc:
                return Cutout.failure(bands, f"unreadable_brick_{band}: {type(exc).__name__}: {exc}", brickname=brick)
            if entry is None:
                return Cutout.failure(bands, f"missing_band_{band}", brickname=brick)
            image, wcs, weight, kind = entry
            if kind == "missing":
                return Cutout.failure(bands, f"missing_invvar_{band}", brickname=brick)
            x, y = wcs.world_to_pixel_values(ra, dec)
            x0, y0 = int(np.ceil(x - size / 2)), int(np.ceil(y - size / 2))
            xc, yc = x0 + h, y0 + h
            ny, nx = image.shape
            if xc - h < 0 or yc - h < 0 or xc + h + 1 > nx or yc + h + 1 > ny:
                return Cutout.failure(bands, "brick_edge", brickname=brick, x_pix=float(x), y_pix=float(y))
            plane = image[yc - h:yc + h + 1, xc - h:xc + h + 1].astype(np.float32)
            if kind == "zeros":
                good = plane != 0
            else:
                w = weight[yc - h:yc + h + 1, xc - h:xc + h + 1]
                good = np.isfinite(w) & (w > 0)
            plane = np.where(good & np.isfinite(plane), plane, np.float32(np.nan))
            planes.append(plane)
            meta[f"nodata_from_{band}"] = kind
            meta.update({"x_pix": float(x), "y_pix": float(y), "dx_pix": float(x - xc), "dy_pix": float(y - yc)})
        return Cutout(True, bands, np.stack(planes), "", meta)
