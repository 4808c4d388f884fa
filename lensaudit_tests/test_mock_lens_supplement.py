"""The mock sky's own known lenses (lensaudit.mock.lens_supplement): one catalogue for the
sky, the positives, the 11" exclusion and its gate."""

from dataclasses import replace

import numpy as np
import pytest
import pandas as pd

from lensaudit.config import get_profile
from lensaudit.gates.data_gates import no_negative_near_known_lens
from lensaudit.gates.gate_spec import StoreView
from lensaudit.mock.config import MOCK_SWEEP_BOXES, MockSkyConfig
from lensaudit.mock.lens_supplement import MOCK_LENS_REF, known_lenses, mock_lens_entries
from lensaudit.mock.writer import read_truth, write_mock_sweep
from lensaudit.survey.reader import read_catalog_fits

CFG = MockSkyConfig(n_objects_per_sweep=2000, lens_supplement_per_sweep=6)


def test_entries_are_deterministic_inside_their_boxes_and_labelled_mock():
    a, b = mock_lens_entries(CFG), mock_lens_entries(CFG)
    pd.testing.assert_frame_equal(a, b)
    assert len(a) == 6 * len(CFG.sweep_boxes) and a["lens_id"].is_unique
    assert (a["ref"] == MOCK_LENS_REF).all() and a["lens_id"].str.startswith("mock_").all()
    assert set(a["grading"]) <= {"confident", "probable"} and set(a["lens_type"]) == {"galaxy"}
    for box in CFG.sweep_boxes:
        stem = box.name.removeprefix("sweep-").removesuffix(".fits")
        rows = a[a["lens_id"].str.startswith(f"mock_{stem}_")]
        assert len(rows) == 6 and box.contains(rows["ra"], rows["dec"]).all()
    assert mock_lens_entries(MockSkyConfig()).empty


def test_known_lenses_is_lenscat_plus_the_supplement(lenscat_all):
    assert known_lenses(lenscat_all, None) is lenscat_all
    assert known_lenses(lenscat_all, MockSkyConfig()) is lenscat_all  # no supplement configured
    both = known_lenses(lenscat_all, CFG)
    assert len(both) == len(lenscat_all) + 6 * len(CFG.sweep_boxes) and both["lens_id"].is_unique
    assert len(known_lenses(both, CFG)) == len(both)  # idempotent


def test_the_sky_places_a_lens_with_the_mock_prior_at_every_supplement_entry(tmp_path, lenscat_all):
    box = MOCK_SWEEP_BOXES[2]
    p = write_mock_sweep(CFG, box.name, tmp_path / "s", tmp_path / "t", lenscat_all)
    t = read_catalog_fits(p).to_pandas()
    truth = read_truth(tmp_path / "t")
    entries = mock_lens_entries(CFG)
    mine = truth[truth["lens_id"].isin(entries["lens_id"])].merge(entries, on="lens_id")
    assert len(mine) == 6
    rows = t.assign(galaxy_id=t.brickname + "_" + t.objid.astype(str)).set_index("galaxy_id").loc[mine.galaxy_id]
    sep = np.hypot((rows.ra.to_numpy() - mine.ra.to_numpy()) * np.cos(np.deg2rad(mine.dec.to_numpy())),
                   rows.dec.to_numpy() - mine.dec.to_numpy()) * 3600
    assert sep.max() < 1.0
    true = mine[mine["is_true_lens"]]
    lo, hi = CFG.lens_theta_e_range
    assert true["theta_e_arcsec"].between(lo, hi).all()
    lo, hi = CFG.lens_src_mag_r_range
    assert true["src_mag_r"].between(lo, hi).all()


def test_exclusion_gate_sees_the_mock_lenses_of_a_mock_home(tmp_path):
    profile = replace(get_profile("tiny"), mock=CFG)
    (tmp_path / "mock_sky").mkdir()
    view = StoreView(tmp_path, profile)
    lens = mock_lens_entries(CFG).iloc[0]
    near = pd.DataFrame({"galaxy_id": ["g1"], "ra": [lens.ra + 8.0 / 3600 / np.cos(np.deg2rad(lens.dec))],
                         "dec": [lens.dec]})
    far = near.assign(dec=lens.dec + 0.01)
    assert not no_negative_near_known_lens(near, view.lenscat_all, 11.0).passed  # planted: 8" from a mock lens
    assert no_negative_near_known_lens(far, view.lenscat_all, 11.0).passed
    # a home without the mock sky audits against lenscat alone
    real_view = StoreView(tmp_path / "elsewhere", profile)
    assert not real_view.lenscat_all["lens_id"].str.startswith("mock_").any()


def test_known_lenses_are_the_ones_a_survey_would_find(tmp_path, lenscat_all):
    """Every true lens of the sky passes its grade's discovery threshold, and the stored S/N is
    the matched-filter S/N of the arc the mock renders at the lens's PSF and depth."""
    from lensaudit.mock.discovery import arc_matched_snr, discovery_threshold

    box = MOCK_SWEEP_BOXES[2]
    p = write_mock_sweep(CFG, box.name, tmp_path / "s", tmp_path / "t", lenscat_all)
    cat = read_catalog_fits(p).to_pandas()
    cat["galaxy_id"] = cat.brickname + "_" + cat.objid.astype(str)
    truth = read_truth(tmp_path / "t")
    true = truth[truth["is_true_lens"].fillna(False).astype(bool)].merge(
        known_lenses(lenscat_all, CFG)[["lens_id", "grading"]], on="lens_id")
    assert len(true) >= 6 and "grading_x" not in true
    need = np.array([discovery_threshold(g, CFG.discovery_snr_tier_b) for g in true["grading"]])
    assert (true["discovery_snr_matched"].to_numpy() >= need).all()
    t = true.iloc[0]
    row = cat.set_index("galaxy_id").loc[t.galaxy_id]
    again = arc_matched_snr(t, row.shape_e1, row.shape_e2, row[["psfsize_g", "psfsize_r", "psfsize_z"]].to_numpy(float),
                            row[["psfdepth_g", "psfdepth_r", "psfdepth_z"]].to_numpy(float))
    assert again == pytest.approx(t.discovery_snr_matched, rel=1e-4)


def test_discovery_redraws_faint_arcs_and_keeps_the_best_when_none_passes(monkeypatch):
    import lensaudit.mock.discovery as discovery
    from lensaudit.injection.prior import draw_source_and_lens
    from lensaudit.mock.sky import arc_truth
    from lensaudit.survey.photometry import mag5sigma_to_depth_ivar

    base = {k: v[0] for k, v in arc_truth(draw_source_and_lens(np.random.default_rng(0), 1, (2.0, 2.0),
                                                                (30.0, 30.0))).items()}
    truth = pd.DataFrame([{**base, "grading": g, "is_true_lens": t} for g, t in (("confident", True), ("probable", False))])
    rows = pd.DataFrame({"shape_e1": [0.1, 0.1], "shape_e2": [0.0, 0.0]}
                        | {f"psfsize_{b}": [1.2, 1.2] for b in "grz"}
                        | {f"psfdepth_{b}": [mag5sigma_to_depth_ivar(23.5)] * 2 for b in "grz"})

    def bright(rng):
        return arc_truth(draw_source_and_lens(rng, 1, (2.0, 2.0), (20.0, 20.0)))

    out = discovery.select_discovered(truth, rows, np.random.default_rng(1), bright, tier_b_snr=10.0)
    assert out.loc[0, "src_mag_r"] == 20.0 and out.loc[0, "discovery_snr_matched"] >= 20.0
    assert np.isnan(out.loc[1, "discovery_snr_matched"]) and out.loc[1, "src_mag_r"] == 30.0  # not a lens: untouched
    again = discovery.select_discovered(truth, rows, np.random.default_rng(1), bright, tier_b_snr=10.0)
    pd.testing.assert_frame_equal(out, again)  # same stream, same draws

    monkeypatch.setattr(discovery, "MAX_DRAWS", 3)
    never = discovery.select_discovered(truth, rows, np.random.default_rng(1),
                                        lambda rng: arc_truth(draw_source_and_lens(rng, 1, (2.0, 2.0), (31.0, 32.0))), 10.0)
    assert never.loc[0, "discovery_snr_matched"] < 20.0 and never.loc[0, "src_mag_r"] == 30.0  # the best of 3 draws
    # an arc whose S/N is not finite is never "found": its draw is kept, its S/N NaN
    monkeypatch.setattr(discovery, "arc_matched_snr", lambda *a, **k: float("nan"))
    broken = discovery.select_discovered(truth, rows, np.random.default_rng(1), bright, 10.0)
    assert np.isnan(broken.loc[0, "discovery_snr_matched"]) and broken.loc[0, "src_mag_r"] == 30.0
