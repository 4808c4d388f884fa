"""raw_robust preprocessing: a regression test on a real DR10 cutout, and its edge cases."""

from pathlib import Path

import numpy as np
import pytest

from lensaudit.cutouts.npz import read_npz
from lensaudit.detector.preprocess import raw_robust


def test_regression_on_a_real_cutout(real_data):
    c = read_npz(real_data / "dr10_cutouts_lens_candidates" / "0001m040_4091.npz")
    y, deg = raw_robust(c.data[None], crop=64)
    assert y.shape == (1, 3, 64, 64) and y.dtype == np.float32 and not deg.any()
    # independent recomputation (float64) of the definition
    x = c.data.astype(np.float64)
    yy, xx = np.mgrid[:101, :101]
    r = np.hypot(xx - 50, yy - 50)
    ann = (r >= 20) & (r <= 32)
    for b in range(3):
        med = np.median(x[b][ann])
        mad = 1.4826 * np.median(np.abs(x[b][ann] - med))
        want = np.clip((x[b, 18:82, 18:82] - med) / mad, -10, 10)
        assert np.allclose(y[0, b], want, atol=1e-5 * max(1.0, np.abs(want).max()))
    # the stored reference array (a change of preprocessing must be deliberate)
    ref = np.load(Path(__file__).parent / "data" / "raw_robust_0001m040_4091_crop64.npy")
    assert np.abs(y[0] - ref).max() <= 1e-6


def test_edge_cases():
    rng = np.random.default_rng(0)
    x = rng.normal(0, 0.01, (2, 3, 101, 101)).astype(np.float32)
    x[0, 1] = 0.0  # a flat band: MAD 0 -> reported, set to 0
    x[1, :, 50, 50] = np.nan
    y, deg = raw_robust(x, crop=101)
    assert deg.tolist() == [[False, True, False], [False, False, False]]
    assert (y[0, 1] == 0).all() and np.isfinite(y).all() and np.abs(y).max() <= 10
    with pytest.raises(ValueError):
        raw_robust(x, crop=102)
    with pytest.raises(ValueError):
        raw_robust(x[0], crop=64)
