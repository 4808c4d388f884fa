"""The completeness grid (DESIGN s3 "Selection function").

Bin centres: theta_E 0.5 ... 3.0" step 0.25 (11), PSF FWHM (psfsize_r) 0.9 ... 1.8" step
0.15 (7), depth (psfdepth_r as 5-sigma AB mag) 22.5 ... 24.5 step 0.5 (5): 385 cells.
Each bin spans its centre +- half a step, lower edge inclusive: [c - s/2, c + s/2).
A host belongs to the (PSF, depth) bin of its own psfsize_r and psfdepth_r; a host
outside every bin is reported, never forced into the nearest one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from lensaudit.survey.photometry import depth_ivar_to_mag5sigma


@dataclass(frozen=True)
class Axis:
    name: str
    start: float
    step: float
    n: int

    @property
    def centres(self) -> np.ndarray:
        return np.round(self.start + self.step * np.arange(self.n), 6)

    @property
    def lo(self) -> np.ndarray:
        return np.round(self.centres - self.step / 2, 6)

    @property
    def hi(self) -> np.ndarray:
        return np.round(self.centres + self.step / 2, 6)

    def index(self, values) -> np.ndarray:
        """Bin index of each value, -1 outside the axis (or not finite)."""
        v = np.asarray(values, dtype=np.float64)
        f = np.floor((np.where(np.isfinite(v), v, self.lo[0] - self.step) - self.lo[0]) / self.step + 1e-9)
        i = f.astype(np.int64)
        ok = np.isfinite(v) & (i >= 0) & (i < self.n)
        return np.where(ok, i, -1)


THETA_E = Axis("theta_e", 0.5, 0.25, 11)
PSF = Axis("psf", 0.9, 0.15, 7)
DEPTH = Axis("depth", 22.5, 0.5, 5)
N_CELLS = THETA_E.n * PSF.n * DEPTH.n


def host_bins(hosts: pd.DataFrame) -> pd.DataFrame:
    """psf_bin, depth_bin (-1 outside the grid) and depth_r_mag5sigma of host rows."""
    depth_mag = depth_ivar_to_mag5sigma(hosts["psfdepth_r"].to_numpy(float))
    return pd.DataFrame({"psf_bin": PSF.index(hosts["psfsize_r"].to_numpy(float)),
                         "depth_bin": DEPTH.index(depth_mag), "depth_r_mag5sigma": depth_mag}, index=hosts.index)


def cells() -> pd.DataFrame:
    """The 385 cells in a fixed order (theta_E fastest last): cell id and bin edges."""
    t, p, d = np.meshgrid(np.arange(THETA_E.n), np.arange(PSF.n), np.arange(DEPTH.n), indexing="ij")
    t, p, d = t.ravel(), p.ravel(), d.ravel()
    return pd.DataFrame({
        "cell": np.arange(N_CELLS), "theta_e_bin": t, "psf_bin": p, "depth_bin": d,
        "theta_e_lo": THETA_E.lo[t], "theta_e_hi": THETA_E.hi[t], "psf_lo": PSF.lo[p], "psf_hi": PSF.hi[p],
        "depth_lo": DEPTH.lo[d], "depth_hi": DEPTH.hi[d]})
