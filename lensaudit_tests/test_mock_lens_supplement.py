"""The mock sky's own known lenses (lensaudit.mock.lens_supplement): one catalogue for the
sky, the positives, the 11" exclusion and its gate."""

from dataclasses import replace

import numpy as np
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
