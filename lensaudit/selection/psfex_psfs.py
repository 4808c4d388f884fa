"""Injection PSFs from real PSFEx models (the selection function's ``psf_model = "psfex"``).

For each host and band: the model of that band (from the configured set, default the real
DR9 DECam models vendored with the tests, ``survey.psfex.default_models``) whose FWHM is
nearest the host's PSF size ``psfsize_<band>`` [arcsec] (each model's FWHM: the half-maximum
area FWHM, ``survey.psfex.halfmax_fwhm_pix``, of its coadd kernel at POLZERO; ties go to the
first model in path order), evaluated at a deterministic CCD position
(``survey.psfex.model_position`` of "<galaxy_id>:<band>:<seed>": uniform over the range the
model's polynomial was fitted on) and resampled to the coadd (``survey.psfex.psf_at``: 0.262"
pixels, unit sum, centred).  Every kernel has the same odd size (2h+1), h the largest that
fits every model's stamp, so a batch stacks to (N, 3, K, K) for ``render_arcs(psf_kernels=...)``.
The choice depends only on the host row, the band and the seed, never on the batch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from lensaudit.survey.instrument import BANDS, DECAM_CCD_PIXSCALE_ARCSEC, PIXSCALE_ARCSEC
from lensaudit.survey.psfex import (default_half_width, default_models, halfmax_fwhm_pix, model_position, psf_at,
                                    read_psfex)

PSF_MODELS = ("moffat", "psfex")


class PsfexPsfs:
    """Per-host PSFEx kernels; ``paths`` the models (None: the vendored ones), ``seed`` the
    position seed.  ``kernels(host_rows)`` -> (N, 3, K, K) float64, cached per galaxy_id."""

    def __init__(self, paths=None, seed: int = 0, pixscale_arcsec: float = PIXSCALE_ARCSEC):
        paths = [Path(p) for p in (default_models() if not paths else paths)]
        self.models = [read_psfex(p) for p in paths]
        self.seed, self.pixscale = int(seed), float(pixscale_arcsec)
        self.by_band = {b: [i for i, m in enumerate(self.models) if m.band == b] for b in BANDS}
        missing = [b for b, ix in self.by_band.items() if not ix]
        if missing:
            raise ValueError(f"no PSFEx model for band(s) {missing} among {[m.name for m in self.models]}")
        self.half_width = min(default_half_width(m, DECAM_CCD_PIXSCALE_ARCSEC, self.pixscale) for m in self.models)
        self.fwhm_arcsec = np.array([halfmax_fwhm_pix(self._kernel(m, *m.zero)) * self.pixscale for m in self.models])
        self._cache: dict[str, np.ndarray] = {}

    def _kernel(self, model, x, y) -> np.ndarray:
        return psf_at(model, x, y, pixscale_arcsec=self.pixscale, half_width=self.half_width)

    def choice(self, galaxy_id: str, band: str, psfsize_arcsec: float) -> tuple[int, float, float]:
        """(model index, x, y [CCD pixels]) of a host's band."""
        ix = self.by_band[band]
        i = ix[int(np.argmin(np.abs(self.fwhm_arcsec[ix] - float(psfsize_arcsec))))]
        x, y = model_position(self.models[i], f"{galaxy_id}:{band}:{self.seed}")
        return i, x, y

    def host_kernels(self, row) -> np.ndarray:
        gid = str(row["galaxy_id"])
        if gid not in self._cache:
            ks = []
            for b in BANDS:
                i, x, y = self.choice(gid, b, row[f"psfsize_{b}"])
                ks.append(self._kernel(self.models[i], x, y))
            self._cache[gid] = np.stack(ks)
        return self._cache[gid]

    def kernels(self, host_rows: pd.DataFrame) -> np.ndarray:
        """(N, 3, K, K) unit-sum kernels [0.262" pixels] of each row's host, bands g, r, z."""
        return np.stack([self.host_kernels(r) for _, r in host_rows.iterrows()]) if len(host_rows) else \
            np.zeros((0, len(BANDS), 2 * self.half_width + 1, 2 * self.half_width + 1))


def injection_psfs(psf_model: str, paths=(), seed: int = 0) -> PsfexPsfs | None:
    """None for the Moffat default, a ``PsfexPsfs`` for "psfex"; ValueError for another name."""
    if psf_model == "moffat":
        return None
    if psf_model == "psfex":
        return PsfexPsfs(list(paths) or None, seed=seed)
    raise ValueError(f"unknown psf_model {psf_model!r}; choose one of {list(PSF_MODELS)}")


def sigma_pix_from_kernels(psfdepth_ivar: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """(N, 3) per-pixel sky sigma [nmgy] implied by the PSF depth [1/nmgy^2] and the pixel
    kernels (N, 3, K, K) actually used: sigma = sqrt(sum P^2 / depth) (as ``inject.sigma_pix``)."""
    return torch.sqrt((kernels ** 2).sum(dim=(-2, -1)) / psfdepth_ivar)
