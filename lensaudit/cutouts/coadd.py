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
from the neighbouring bricks is not done).

Two ways in: ``cutouts`` (many targets; the Spark cutouts job uses it) groups the targets
by brick and reads and decompresses each brick band once for all of them, holding one
brick band at a time; ``cutout`` (one target; the CLI) keeps opened brick bands in an LRU
cache of ``cache_bricks`` entries.  Both give the same stamps byte for byte.
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

    def _load(self, brick: str, band: str):
        """(image, wcs, weight, kind) of one brick band, read and decompressed now (no
        cache); None when the image is not there.  Raises OSError / ValueError / TypeError
        for an unreadable file."""
        image = self._open(self._path(brick, "image", band))
        if image is None:
            return None
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
        return image[0], image[1], weight, kind

    def _brick_band(self, brick: str, band: str):
        key = (brick, band)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        entry = self._load(brick, band)
        self._cache[key] = entry
        while len(self._cache) > self.cache_bricks:
            self._cache.popitem(last=False)
        return entry

    @staticmethod
    def _band_failure(entry, band: str) -> str:
        """The brick-level reason this band gives no stamp ('' when it can)."""
        if entry is None:
            return f"missing_band_{band}"
        if entry[3] == "missing":
            return f"missing_invvar_{band}"
        return ""

    @staticmethod
    def _plane(entry, x: float, y: float, size: int):
        """The stamp of one band at pixel (x, y) (the centring rule of the module): (plane,
        meta) or (None, {"reason": "brick_edge", x_pix, y_pix})."""
        image, _, weight, kind = entry
        h = size // 2
        x0, y0 = int(np.ceil(x - size / 2)), int(np.ceil(y - size / 2))
        xc, yc = x0 + h, y0 + h
        ny, nx = image.shape
        if xc - h < 0 or yc - h < 0 or xc + h + 1 > nx or yc + h + 1 > ny:
            return None, {"reason": "brick_edge", "x_pix": float(x), "y_pix": float(y)}
        plane = image[yc - h:yc + h + 1, xc - h:xc + h + 1].astype(np.float32)
        if kind == "zeros":
            good = plane != 0
        else:
            w = weight[yc - h:yc + h + 1, xc - h:xc + h + 1]
            good = np.isfinite(w) & (w > 0)
        plane = np.where(good & np.isfinite(plane), plane, np.float32(np.nan))
        return plane, {"x_pix": float(x), "y_pix": float(y), "dx_pix": float(x - xc), "dy_pix": float(y - yc)}

    @staticmethod
    def _precheck(ra: float, dec: float, bands: str, size: int) -> Cutout | None:
        if not (np.isfinite(ra) and np.isfinite(dec)):
            return Cutout.failure(bands, "invalid_coords")
        if size % 2 != 1:
            return Cutout.failure(bands, f"size must be odd, got {size}")
        return None

    def cutout(self, ra: float, dec: float, bands: str = BANDS, size: int = STAMP_PIX) -> Cutout:
        """One stamp; brick bands come from the LRU cache (read on a miss)."""
        bad = self._precheck(ra, dec, bands, size)
        if bad is not None:
            return bad
        brick = brick_at(ra, dec).brickname
        planes, meta = [], {"ra": float(ra), "dec": float(dec), "brickname": brick, "source": "coadd"}
        for band in bands:
            try:
                entry = self._brick_band(brick, band)
            except (OSError, ValueError, TypeError) as exc:
                return Cutout.failure(bands, f"unreadable_brick_{band}: {type(exc).__name__}: {exc}", brickname=brick)
            why = self._band_failure(entry, band)
            if why:
                return Cutout.failure(bands, why, brickname=brick)
            x, y = entry[1].world_to_pixel_values(ra, dec)
            plane, pmeta = self._plane(entry, x, y, size)
            if plane is None:
                return Cutout.failure(bands, pmeta.pop("reason"), brickname=brick, **pmeta)
            planes.append(plane)
            meta[f"nodata_from_{band}"] = entry[3]
            meta.update(pmeta)
        return Cutout(True, bands, np.stack(planes), "", meta)

    def cutouts(self, ra, dec, bands: str = BANDS, size: int = STAMP_PIX) -> list[Cutout]:
        """Many stamps, grouped by brick: each brick's band is read and decompressed once
        for all its targets (world -> pixel for all of them in one WCS call), its stamps are
        cut, and it is dropped before the next band (one brick band in memory at a time;
        the LRU cache is neither read nor filled).  Same results as ``cutout`` per target,
        byte for byte (tested), in the input order."""
        ra = np.asarray(ra, dtype=np.float64).ravel()
        dec = np.asarray(dec, dtype=np.float64).ravel()
        if ra.shape != dec.shape:
            raise ValueError(f"ra and dec differ in length: {ra.size} and {dec.size}")
        out: list[Cutout | None] = [self._precheck(float(a), float(d), bands, size) for a, d in zip(ra, dec)]
        groups: dict[str, list[int]] = {}
        for i in range(ra.size):
            if out[i] is None:
                groups.setdefault(brick_at(float(ra[i]), float(dec[i])).brickname, []).append(i)
        for brick, idx in groups.items():
            planes = {i: [] for i in idx}
            metas = {i: {"ra": float(ra[i]), "dec": float(dec[i]), "brickname": brick, "source": "coadd"} for i in idx}
            live = list(idx)
            for band in bands:
                if not live:
                    break
                try:
                    entry = self._load(brick, band)
                except (OSError, ValueError, TypeError) as exc:
                    why = f"unreadable_brick_{band}: {type(exc).__name__}: {exc}"
                    entry = None
                else:
                    why = self._band_failure(entry, band)
                if why:
                    for i in live:
                        out[i] = Cutout.failure(bands, why, brickname=brick)
                    live = []
                    break
                xs, ys = entry[1].world_to_pixel_values(ra[live], dec[live])
                still = []
                for i, x, y in zip(live, np.atleast_1d(xs), np.atleast_1d(ys)):
                    plane, pmeta = self._plane(entry, x, y, size)
                    if plane is None:
                        out[i] = Cutout.failure(bands, pmeta.pop("reason"), brickname=brick, **pmeta)
                        continue
                    planes[i].append(plane)
                    metas[i][f"nodata_from_{band}"] = entry[3]
                    metas[i].update(pmeta)
                    still.append(i)
                live = still
                del entry
            for i in live:
                out[i] = Cutout(True, bands, np.stack(planes[i]), "", metas[i])
        return out
