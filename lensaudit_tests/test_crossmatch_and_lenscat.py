import numpy as np
import pandas as pd

from lensaudit.catalogs.crossmatch import nearest_rows, resolve_matches
from lensaudit.catalogs.lenscat_catalog import galaxy_lenses


def test_nearest_within_radius_edges():
    lens_ra, lens_dec = np.array([150.0, 150.0, 151.0, np.nan]), np.array([2.0, 3.0, 2.0, 0.0])
    row_ra = np.array([150.0, 150.0, 151.0])
    row_dec = np.array([2.0 + 1.49 / 3600, 3.0 + 1.51 / 3600, 2.0 + 0.2 / 3600])
    idx, sep = nearest_rows(lens_ra, lens_dec, row_ra, row_dec, 1.5)
    assert idx.tolist() == [0, -1, 2, -1]
    assert sep[0] == np.float64(sep[0]) and abs(sep[0] - 1.49) < 1e-6 and np.isinf(sep[1])


def test_resolve_reasons():
    lenses = pd.DataFrame({"lens_id": ["L0", "L1", "L2", "L3", "L4"], "ra": [1.0, 1.0, 5.0, 9.0, np.nan],
                           "dec": [0.0, 0.0, 0.0, 0.0, 0.0]})
    cand = pd.DataFrame({"lens_id": ["L0", "L1", "L2"], "galaxy_id": ["g", "g", "h"], "sep_arcsec": [0.3, 0.1, 0.5]})
    covered = np.array([True, True, True, False, False])
    matched, unmatched = resolve_matches(lenses, cand, covered)
    assert matched["lens_id"].tolist() == ["L1", "L2"]
    reasons = dict(zip(unmatched["lens_id"], unmatched["reason"]))
    assert reasons == {"L0": "row_taken_by_closer_lens", "L3": "outside_sweep_coverage", "L4": "invalid_coords"}
    assert len(matched) + len(unmatched) == len(lenses)  # nothing lost


def test_galaxy_lenses_counts_every_removal(lenscat_all):
    cat, counts = galaxy_lenses(lenscat_all)
    removed = sum(v for k, v in counts.items() if k.startswith("removed_"))
    assert counts["lenscat_entries"] == removed + counts["kept"] == len(lenscat_all)
    assert set(cat["tier"]) == {"A", "B"}
    assert (cat.loc[cat.tier == "A", "sample_weight"] == 1.0).all() and (cat.loc[cat.tier == "B", "sample_weight"] == 0.5).all()
    assert cat["lens_id"].is_unique and (cat["lens_type"] == "galaxy").all()
