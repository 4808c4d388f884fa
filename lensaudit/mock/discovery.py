"""Which of the mock sky's lenses a survey would have found: the discovery selection of its
known lenses.

A catalogue of known lenses is a *discovered* sample: lenses enter lenscat because a search
saw their arcs.  The mock sky's known lenses are therefore drawn from their arc prior
(``MockSkyConfig.lens_theta_e_range`` / ``lens_src_mag_r_range``, the injection prior's family)
*and* selected as a survey selects them: a true lens keeps its draw only when its arc, as the
mock renders it at the lens's own PSF and depth, reaches the model-free matched-filter S/N of
``lensaudit.injection.visibility`` (the statistic that splits injections into observable /
not) at its grade's threshold -- ``OBSERVABLE_MATCHED_SNR`` (20, the total-S/N criterion of
Collett 2015, ApJ 811, 20) for tier A (``confident``), ``MockSkyConfig.discovery_snr_tier_b``
for tier B (``probable``: marginal detections).  Otherwise the lens's source and lens
parameters are drawn again (rejection sampling, its own random stream), at most
``MAX_DRAWS`` times, keeping the best draw if none passes (recorded).

This is also why the realism gates compare the known lenses with the *observable*
injections (``lensaudit.gates.realism_gates``): the injection prior deliberately reaches
invisible arcs (to measure where completeness falls to 0), a discovered sample does not.
Real DR10 lens candidates read an annulus S/N of ~10 in the median (the six real cutouts in
``lensaudit_tests/data/real``), the whole injection prior ~1.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from lensaudit.injection.visibility import OBSERVABLE_MATCHED_SNR, combined, matched_snr
from lensaudit.survey.instrument import BANDS, PIXSCALE_ARCSEC, STAMP_PIX

#: rejection-sampling draws per lens before the best draw is kept
MAX_DRAWS = 200

def arc_matched_snr(truth_row, lens_e1: float, lens_e2: float, psfsize: np.ndarray, psfdepth: np.ndarray,
                    size: int = STAMP_PIX, pixscale: float = PIXSCALE_ARCSEC) -> float:
    """Combined matched-filter S/N of one true lens's noise-free arc as the mock renders it
    (``render.render_arc`` convolved with the stamp's Moffat PSFs) against the white sky sigma
    its psfdepth (1/nmgy^2, per band g, r, z) implies (``noise_block_factor`` changes the
    images only, never the truth)."""
    from lensaudit.mock.render import arc_parameters, convolve_stamp, render_arc, stamp_psfs

    kernels, sigma = stamp_psfs(np.asarray(psfsize, float)[None], np.asarray(psfdepth, float)[None], pixscale)
    arc = render_arc(arc_parameters(lens_e1, lens_e2, truth_row), size, pixscale).to(torch.float32)
    img = convolve_stamp(arc, kernels[0])
    snr = matched_snr(img[None], torch.as_tensor(np.asarray(sigma[0], float))[None],
                      torch.ones((1, len(BANDS)), dtype=torch.float64))
    return float(combined(snr.numpy())[0])


def discovery_threshold(grading: str, tier_b_snr: float) -> float:
    """Matched-filter S/N a lens of this lenscat grading needs to be known."""
    return OBSERVABLE_MATCHED_SNR if grading == "confident" else float(tier_b_snr)


def select_discovered(truth: pd.DataFrame, lens_rows: pd.DataFrame, rng: np.random.Generator, draw,
                      tier_b_snr: float) -> pd.DataFrame:
    """``truth`` (one row per lens, as ``sky._lenses``: ``is_true_lens``, ``grading`` and the arc
    parameters) with every true lens's arc redrawn until it passes its grade's discovery
    threshold; adds ``discovery_snr_matched`` (NaN for label-noise non-lenses).  ``lens_rows``:
    the lenses' catalogue rows in the same order (shape_e1/e2, psfsize_*, psfdepth_*);
    ``draw(rng)`` returns one prior draw as the truth's arc columns (``sky.arc_truth``, 1-element
    arrays)."""
    out = truth.reset_index(drop=True).copy()
    snr = np.full(len(out), np.nan)
    rows = lens_rows.reset_index(drop=True)
    for i in np.flatnonzero(out["is_true_lens"].to_numpy(bool)):
        row = rows.iloc[i]
        psf = row[[f"psfsize_{b}" for b in BANDS]].to_numpy(float)
        depth = row[[f"psfdepth_{b}" for b in BANDS]].to_numpy(float)
        need = discovery_threshold(out.at[i, "grading"], tier_b_snr)
        cand = out.loc[i]
        best, best_s = cand.copy(), -np.inf
        for _ in range(MAX_DRAWS):
            s = arc_matched_snr(cand, row["shape_e1"], row["shape_e2"], psf, depth)
            s = s if np.isfinite(s) else -np.inf  # an arc that cannot be rendered is never found
            if s > best_s:
                best, best_s = cand.copy(), s
            if s >= need:
                break
            cand = cand.copy()
            for k, v in draw(rng).items():
                cand[k] = float(v[0])
        out.loc[i] = best
        snr[i] = best_s if np.isfinite(best_s) else np.nan
    out["discovery_snr_matched"] = snr
    return out
