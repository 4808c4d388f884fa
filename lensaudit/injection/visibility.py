"""Model-free arc visibility (DESIGN s3 "Selection function", the statistic of the detectability
decomposition; in `injection` because the realism comparison and the mock sky's known lenses
use it too).

Two statistics, both batched in torch so that they run where the stamps are:

* **observability** (what the decomposition and the miss taxonomy use): the optimal,
  matched-filter S/N of the *known noise-free* injected arc m_b against the host's noise,
  S/N_b = sqrt(sum_pix m_b^2) / sigma_ap,b with sigma_ap,b^2 the noise variance of the
  template-weighted sum (for white noise sigma_pix^2, so S/N_b = sqrt(sum (m_b/sigma_pix)^2)).
  Correlated noise (real DR10 coadds: 5x5 block sums carry 1.4-1.6x the white-noise value)
  is counted through the host's own aperture-noise factor
  f_b = sigma(5x5 box sums) / (5 sigma_pix), measured robustly (1.4826 MAD) over the
  non-overlapping 5x5 boxes that lie entirely in the host's outer ring r >= 35 px, so
  S/N_b = sqrt(sum (m_b/sigma_pix)^2) / f_b.  Combined over bands in quadrature.  It sees
  complete rings (no azimuthal-median subtraction).  An injection is *observable* when the
  combined S/N >= ``OBSERVABLE_MATCHED_SNR`` = 20, the total-S/N detectability criterion
  of Collett (2015, ApJ 811, 20) for lens forecasts.
* the **annulus S/N** (``annulus_snr``): the residual over the azimuthal (1-px ring) median
  summed *without clipping* over 4 <= r < 16 px (the annulus of
  ``lensaudit.injection.realism``), divided by sigma_pix sqrt(N_pix), sigma_pix = 1.4826 MAD
  of the outer ring r >= 35 px.  It is a statistic of a stamp, not of a known model (real
  lenses have none); a complete round ring is removed by the ring median (a known blind
  spot, the reason it is not the observability statistic).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from lensaudit.detector.preprocess import nanmedian_last
from lensaudit.injection.annulus import OUTER_RING_PX, outer_sigma
from lensaudit.stamps import radius_map

#: combined matched-filter S/N at which an injected arc counts as observable (Collett 2015)
OBSERVABLE_MATCHED_SNR = 20.0
#: side of the square apertures of the correlated-noise factor [pixels]
NOISE_BOX_PX = 5


@lru_cache(maxsize=8)
def _box_index(size: int, box: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and column indices, in the box-sum grid, of ``_box_origins``' apertures on ``device`` (uploaded once)."""
    org = _box_origins(size, box)
    return torch.as_tensor(org[:, 0] // box, device=device), torch.as_tensor(org[:, 1] // box, device=device)


def _box_origins(size: int, box: int) -> np.ndarray:
    """(K, 2) top-left corners of the non-overlapping box x box apertures lying entirely in r >= 35 px."""
    r = radius_map(size)
    out = [(i, j) for i in range(0, size - box + 1, box) for j in range(0, size - box + 1, box)
           if (r[i:i + box, j:j + box] >= OUTER_RING_PX).all()]
    return np.asarray(out, dtype=np.int64)


def noise_correlation_factor(stamps: torch.Tensor, box: int = NOISE_BOX_PX,
                             sigma: torch.Tensor | None = None) -> torch.Tensor:
    """(N, 3) f = robust sigma of the box x box aperture sums in the outer ring / (box * sigma_pix):
    1 for white noise, > 1 for positively correlated noise (DR10 coadds ~1.4-1.6 at 5x5)."""
    n, c, h, w = stamps.shape
    x = stamps.to(torch.float64)
    sums = torch.nn.functional.avg_pool2d(torch.nan_to_num(x, nan=0.0).reshape(n * c, 1, h, w), box, stride=box,
                                          divisor_override=1).reshape(n, c, h // box, w // box)
    ii, jj = _box_index(h, box, str(x.device))
    ap = sums[:, :, ii, jj]  # (N, C, K)
    med = nanmedian_last(ap)
    sig_ap = 1.4826 * nanmedian_last((ap - med[..., None]).abs())
    if sigma is None:
        sigma = outer_sigma(stamps)
    return sig_ap / (box * sigma.to(sig_ap.dtype)).clamp(min=1e-30)


def matched_energy(arc_model: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """(N, 3) float64 sum over pixels of (arc / sigma)^2 for noise-free arcs (N, 3, H, W)
    [nmgy/pixel] and per-pixel noise ``sigma`` (N, 3) [nmgy]."""
    # one float64 copy, divided and squared in place (the values of (arc / sigma) ** 2)
    return matched_energy_of_terms(arc_model.to(torch.float64, copy=True).div_(sigma.to(torch.float64)[:, :, None, None])
                                   .square_())


def matched_energy_of_terms(terms: torch.Tensor) -> torch.Tensor:
    """(N, 3) sum over pixels of the (N, 3, H, W) float64 terms (arc / sigma)^2 (``selection.fused_add``
    writes the same terms on a GPU and sums them here: the same reduction of the same values)."""
    return terms.sum(dim=(-2, -1))


def snr_from_matched_energy(energy: torch.Tensor, corr: torch.Tensor) -> torch.Tensor:
    """(N, 3) matched-filter S/N from ``matched_energy`` and the aperture-noise factor ``corr`` (N, 3)."""
    return torch.sqrt(energy) / corr.to(torch.float64)


def matched_snr(arc_model: torch.Tensor, sigma: torch.Tensor, corr: torch.Tensor) -> torch.Tensor:
    """(N, 3) matched-filter S/N of noise-free arcs (N, 3, H, W) [nmgy/pixel] against per-pixel
    noise ``sigma`` (N, 3) [nmgy] with aperture-noise factor ``corr`` (N, 3)."""
    return snr_from_matched_energy(matched_energy(arc_model, sigma), corr)


def combined(snr_bands) -> np.ndarray:
    """Quadrature sum over bands (NaN bands count 0)."""
    return np.sqrt(np.nansum(np.asarray(snr_bands, float) ** 2, axis=1))


def observable(matched_combined) -> np.ndarray:
    """True where the combined matched-filter S/N reaches ``OBSERVABLE_MATCHED_SNR``."""
    return np.nan_to_num(np.asarray(matched_combined, float), nan=0.0) >= OBSERVABLE_MATCHED_SNR
