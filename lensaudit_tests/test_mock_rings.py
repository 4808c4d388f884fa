"""Ring galaxies of the mock sky: confusers with ring proxies, and resonance rings in the
images of ordinary galaxies (catalogue rows untouched, a random stream of their own)."""

from dataclasses import replace

import numpy as np
import pandas as pd

from lensaudit.mock.config import MOCK_SWEEP_BOXES, MockSkyConfig
from lensaudit.mock.confusers import RING_FLUX_FRACTION_R_RANGE, ring_draw
from lensaudit.mock.sky import generate_sweep

CFG = MockSkyConfig(n_objects_per_sweep=4000)


def test_resonance_rings_change_the_truth_only(lenscat_all):
    box = MOCK_SWEEP_BOXES[1]
    cat0, truth0 = generate_sweep(replace(CFG, ring_fraction=0.0), box, lenscat_all)
    cat1, truth1 = generate_sweep(CFG, box, lenscat_all)
    from lensaudit.survey.schema import SWEEP_COLUMNS

    cols = [c for c in cat0.columns if c not in ("role", "morphology")]
    assert {c[0] for c in SWEEP_COLUMNS} <= set(cols)
    pd.testing.assert_frame_equal(cat0[cols], cat1[cols])  # catalogue, pools and lenses: the same draws
    changed = truth0["morphology"] != truth1["morphology"]
    assert (truth1.loc[changed, "morphology"] == "ring").all() and (truth0.loc[changed, "morphology"] == "").all()
    assert (truth1.loc[changed, "role"] == "field").all()
    free = ((truth0["role"] == "field") & (truth0["morphology"] == "") & (cat0["type"].str.strip() != "PSF")).sum()
    assert changed.sum() == round(CFG.ring_fraction * free)


def test_ring_flux_is_a_log_uniform_fraction_of_the_host():
    rng = np.random.default_rng(0)
    host = np.array([5.0, 10.0, 20.0])
    draws = np.array([ring_draw(rng, host)[2] for _ in range(4000)])
    frac = draws[:, 1] / host[1]
    lo, hi = RING_FLUX_FRACTION_R_RANGE
    assert frac.min() >= lo and frac.max() <= hi
    # log-uniform: the median is the geometric mean of the bounds
    assert abs(np.median(np.log(frac)) - 0.5 * (np.log(lo) + np.log(hi))) < 0.1
    assert (draws[:, 0] >= draws[:, 1] * 10 ** (-0.4 * 0.7) - 1e-12).all()  # g - r <= 0.7
