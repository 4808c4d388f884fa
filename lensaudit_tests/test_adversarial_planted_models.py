"""The adversarial gates, run through the real measurement code with planted detectors.

Each planted model is a tiny torch module on the training preprocessing (``raw_robust``,
crop 64) whose response is known: one that scores rings high must turn the ring gate red,
a healthy one (blind to a lensing-free ring) green; null controls must never be identical to
their hosts, and an injection path that leaks the arc into the controls turns the null gate red.
"""

import numpy as np
import pandas as pd
import torch

from lensaudit.gates import adversarial_gates as ag
from lensaudit.selection.adversarial import ring_scores, score_batches
from lensaudit.selection.inject import inject_and_score
from lensaudit.stamps import radius_map

CROP = 64


class AnnulusModel(torch.nn.Module):
    """logit = gain * mean normalised flux in radii [r0, r1) of the crop - offset."""

    def __init__(self, r0: float, r1: float, gain: float, offset: float):
        super().__init__()
        r = torch.from_numpy(radius_map(CROP))
        self.register_buffer("mask", ((r >= r0) & (r < r1)).float())
        self.gain, self.offset = gain, offset

    def forward(self, x):
        m = (x * self.mask).sum(dim=(1, 2, 3)) / (self.mask.sum() * x.shape[1])
        return (self.gain * m - self.offset)[:, None]


def _hosts(n=60, seed=0):
    rng = np.random.default_rng(seed)
    stamps = torch.from_numpy(rng.normal(0, 0.002, (n, 3, 101, 101)).astype(np.float32))
    rows = pd.DataFrame({"galaxy_id": [f"h{i:03d}" for i in range(n)], "psfsize_g": 1.3, "psfsize_r": 1.2,
                         "psfsize_z": 1.1, "psfdepth_g": 2.5e4, "psfdepth_r": 2.5e4, "psfdepth_z": 2.5e3, "ebv": 0.02})
    return stamps, rows


def test_ring_gate_red_for_a_ring_lover_green_for_a_core_model():
    stamps, _ = _hosts()
    ring_lover = AnnulusModel(13.0, 17.0, gain=5.0, offset=5.0).eval()
    h = score_batches(ring_lover, stamps, CROP, "cpu")
    r = ring_scores(ring_lover, stamps, CROP, "cpu")
    assert not ag.synthetic_ring(h, r, threshold_logit=0.0).passed
    core = AnnulusModel(0.0, 3.0, gain=5.0, offset=5.0).eval()  # looks only at the core
    h, r = score_batches(core, stamps, CROP, "cpu"), ring_scores(core, stamps, CROP, "cpu")
    assert ag.synthetic_ring(h, r, threshold_logit=0.0).passed


def _params(n, seed=1):
    from lensaudit.injection.prior import draw_source_and_lens

    d = pd.DataFrame(draw_source_and_lens(np.random.default_rng(seed), n))
    d["theta_e_arcsec"] = 2.0
    d["src_mag_r"], d["src_mag_g"], d["src_mag_z"] = 20.0, 20.5, 19.8  # bright arcs
    for b, f in zip("grz", (1.3, 1.2, 1.1)):
        d[f"psf_fwhm_{b}_arcsec"] = f
    d["moffat_beta"] = 3.5
    return d


def test_null_controls_are_never_identical_and_a_leaked_arc_turns_the_gate_red():
    stamps, rows = _hosts()
    arc_model = AnnulusModel(4.0, 16.0, gain=20.0, offset=3.0).eval()
    host_logits = score_batches(arc_model, stamps, CROP, "cpu")
    params = _params(len(rows))
    pos = np.arange(len(rows))
    null = inject_and_score(arc_model, stamps, pos, params, rows, CROP, "cpu", seed=3, null=True)
    assert (null["added_rms_nmgy"] > 0).all() and (null["arc_snr_matched"] == 0).all()
    res = ag.null_controls(null["logit"], host_logits, null["added_rms_nmgy"], 0.0)
    assert res.passed, res.details
    # the planted fault: the "null" path adds the arc (a zero-flux switch that does nothing)
    leaked = inject_and_score(arc_model, stamps, pos, params, rows, CROP, "cpu", seed=3, null=False)
    assert (leaked["arc_snr_matched"] > 20).all()
    res = ag.null_controls(leaked["logit"], host_logits, leaked["added_rms_nmgy"], 0.0)
    assert not res.passed and res.details["pushed_over"] > 0


def test_extinction_dims_the_injected_arc():
    from lensaudit.survey.photometry import mw_transmission

    stamps, rows = _hosts(4)
    model = AnnulusModel(0.0, 3.0, 1.0, 0.0).eval()
    params = _params(4)
    clear = inject_and_score(model, stamps, np.arange(4), params, rows.assign(ebv=0.0), CROP, "cpu", seed=1)
    dusty = inject_and_score(model, stamps, np.arange(4), params, rows.assign(ebv=0.5), CROP, "cpu", seed=1)
    ratio = dusty["arc_snr_matched_g"] / clear["arc_snr_matched_g"]
    # same hosts, same noise: the noise-free arc's S/N scales exactly with the g-band transmission
    assert np.allclose(ratio.to_numpy(), mw_transmission(0.5, "g"), rtol=1e-4)


def test_brackets_change_one_thing_each():
    from lensaudit.selection.inject import BRACKETS, Variant, inject_batch

    stamps, rows = _hosts(6)
    params = _params(6)
    out = {}
    for v in (None, *BRACKETS):
        gen = torch.Generator().manual_seed(5)
        arc = inject_batch(stamps, np.arange(6), params, rows, "cpu", gen, variant=v).arc
        out["baseline" if v is None else v.name] = arc.double().sum(dim=(1, 2, 3)).numpy()
    base = out["baseline"]
    # the PSF shape redistributes light but keeps the lensed flux (within the stamp)
    for name in ("moffat_beta_2.5", "moffat_beta_4.5"):
        assert np.allclose(out[name], base, rtol=0.1), name
    # knots away from the Sersic centre change the magnification: a different, positive lensed flux
    assert (out["clumpy_sources"] > 0).all() and not np.allclose(out["clumpy_sources"], base, rtol=1e-3)
    assert not np.allclose(out["moffat_beta_2.5"], base, rtol=1e-6)  # broader wings leave the stamp
    assert (out["suppress_inner"] <= base + 1e-9).all() and (out["suppress_inner"] < base).any()
    clumpy = Variant("clumpy_sources", clumps=True).apply({k: params[k].to_numpy() for k in params})[0]
    frac = clumpy["clump_frac"].sum(axis=1)
    assert ((frac >= 0.1 - 1e-12) & (frac <= 0.4 + 1e-12)).all()
    assert (((clumpy["clump_frac"] > 0).sum(axis=1) >= 2) & ((clumpy["clump_frac"] > 0).sum(axis=1) <= 6)).all()


def test_arc_suppression_red_for_a_model_that_only_sees_the_core():
    """A detector reading the central light (the shortcut the plan warns about) does not lose
    score when the arc annulus is median-filled: the suppression gate goes red; an arc-reading
    detector loses score: green."""
    from lensaudit.selection.adversarial import suppress_annulus

    rng = np.random.default_rng(7)
    r = radius_map(101)
    n = 24
    yy, xx = np.mgrid[:101, :101] - 50
    arc_mask = (np.abs(r - 9) < 1.5) & (np.abs(np.arctan2(yy, xx)) < np.pi / 3)  # a 120-degree arc: the ring median stays at the sky
    lenses = rng.normal(0, 0.002, (n, 3, 101, 101)).astype(np.float32)
    lenses += (0.2 * np.exp(-(r / 2.5) ** 2))[None, None].astype(np.float32)  # the deflector's core
    lenses += np.where(arc_mask, 0.05, 0.0)[None, None].astype(np.float32) * rng.uniform(0.5, 1.5, (n, 1, 1, 1)).astype(np.float32)
    suppressed = suppress_annulus(lenses)
    core = AnnulusModel(0.0, 3.0, gain=5.0, offset=5.0).eval()
    arc_reader = AnnulusModel(6.0, 12.0, gain=20.0, offset=3.0).eval()
    for model, passes in ((core, False), (arc_reader, True)):
        before = score_batches(model, torch.from_numpy(lenses), CROP, "cpu")
        after = score_batches(model, torch.from_numpy(suppressed), CROP, "cpu")
        assert ag.arc_suppression(before, after).passed is passes
