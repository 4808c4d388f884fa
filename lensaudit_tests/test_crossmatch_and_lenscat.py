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


def test_load_lenscat_equals_the_packages_catalog(lenscat_all):
    """load_lenscat reads lenscat's data/catalog.csv without importing the package (~10 s of
    astropy / ligo.skymap); it must give lenscat.catalog's entries value for value, in its order."""
    import warnings

    import numpy as np

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import lenscat

    cat = lenscat.catalog
    assert len(lenscat_all) == len(cat) > 30000
    assert lenscat_all["lens_id"].is_unique
    for ours, theirs in (("lens_name", "name"), ("zlens", "zlens"), ("lens_type", "type"), ("grading", "grading"),
                         ("ref", "ref")):
        assert (lenscat_all[ours].to_numpy() == np.asarray(cat[theirs]).astype(str)).all(), ours
    for ours, theirs in (("ra", "RA"), ("dec", "DEC")):
        assert lenscat_all[ours].dtype == np.float64
        np.testing.assert_array_equal(lenscat_all[ours].to_numpy(), np.asarray(cat[theirs], dtype=np.float64))


def test_load_lenscat_refuses_a_catalogue_it_does_not_know(tmp_path, monkeypatch):
    import pytest

    from lensaudit.catalogs import lenscat_catalog

    bad = tmp_path / "catalog.csv"
    bad.write_text("name,RA,DEC\nA,1.0,2.0\n")
    monkeypatch.setattr(lenscat_catalog, "lenscat_csv", lambda: bad)
    lenscat_catalog.load_lenscat.cache_clear()
    try:
        with pytest.raises(ValueError, match=r"lacks the columns .*'RA \[deg\]'"):
            lenscat_catalog.load_lenscat()
    finally:
        lenscat_catalog.load_lenscat.cache_clear()
