import numpy as np
import pytest

from lensaudit.sampling.confusers import (bright_neighbour_proxy, category_names, edge_on_proxy, ellipticity_1mq,
                                          flag_names, large_galaxy_proxy, bright_early_type_proxy, blue_clumpy_proxy)
from lensaudit.sampling.exclusion import LensNeighbourIndex
from lensaudit.sampling.pools import N1_CUT_ORDER, N2_CUT_ORDER, PASS, classify_negatives, removal_counts, status_names
from lensaudit_tests._rows import rows

FAR_LENS = LensNeighbourIndex(np.array([10.0]), np.array([-40.0]))


def classify(*overrides, lens_index=FAR_LENS):
    res = classify_negatives(rows(*overrides), lens_index)
    return {"n1_status": status_names(res["n1_code"], N1_CUT_ORDER), "n2_status": status_names(res["n2_code"], N2_CUT_ORDER),
            "confuser_category": category_names(res["confuser_code"]), "confuser_flags": flag_names(res["confuser_flag_bits"]),
            "n1_code": res["n1_code"]}


def n1(*overrides, lens_index=FAR_LENS):
    return classify(*overrides, lens_index=lens_index)["n1_status"].tolist()


def test_base_row_passes():
    assert n1({}) == [PASS]


def test_dec_boundaries():
    assert n1({"dec": -18.0}, {"dec": -17.9999}, {"dec": 31.9999}, {"dec": 32.0}, {"dec": -30.0}) == \
        ["dec_range", PASS, PASS, "dec_range", "dec_range"]


@pytest.mark.parametrize("band", ["g", "r", "z"])
def test_nobs_boundary_per_band(band):
    assert n1({f"nobs_{band}": 2}, {f"nobs_{band}": 3}) == [f"nobs_{band}", PASS]


def test_nobs_counted_per_band_in_order():
    status = classify({"nobs_g": 1, "nobs_r": 1}, {"nobs_r": 2}, {"nobs_z": 0}, {})["n1_code"]
    c = removal_counts(status, N1_CUT_ORDER)
    assert (c["removed_nobs_g"], c["removed_nobs_r"], c["removed_nobs_z"], c["kept"]) == (1, 1, 1, 1)
    assert c["rows_in"] == sum(v for k, v in c.items() if k != "rows_in")


def test_z_mag_boundary():
    # z = 20.0 exactly (flux 10 nmgy) is cut: the rule is z < 20.0
    assert n1({"flux_z": 10.0}, {"flux_z": 10.0001}, {"flux_z": 0.0}, {"flux_z": -3.0}, {"flux_z": np.nan}) == \
        ["mag_z", PASS, "mag_z", "mag_z", "mag_z"]


def test_types():
    assert n1(*({"type": t} for t in ("SER", "DEV", "REX", "EXP", "PSF", "DUP"))) == \
        [PASS, PASS, PASS, "type", "type", "type"]


@pytest.mark.parametrize("bit,cut", [(1, True), (5, True), (6, True), (7, True), (11, True), (12, True), (13, True),
                                     (0, False), (2, False), (8, False), (16, False)])
def test_maskbits(bit, cut):
    assert n1({"maskbits": 1 << bit}) == (["maskbits"] if cut else [PASS])


def test_exclusion_radius_edge():
    lens_ra, lens_dec = 150.0, 2.0
    idx = LensNeighbourIndex(np.array([lens_ra]), np.array([lens_dec]))
    offs = np.array([0.0, 10.99, 11.0 - 1e-7, 11.01, 30.0]) / 3600.0
    got = n1(*({"ra": lens_ra, "dec": lens_dec + o} for o in offs), lens_index=idx)
    assert got == ["near_known_lens", "near_known_lens", "near_known_lens", PASS, PASS]


def test_invalid_coords_counted_not_dropped():
    res = classify({"ra": np.nan}, {"dec": np.nan}, {})
    assert res["n1_status"].tolist() == ["invalid_coords", "invalid_coords", PASS]
    assert res["n2_status"].tolist()[:2] == ["invalid_coords", "invalid_coords"]


def test_not_primary():
    assert n1({"brick_primary": False}) == ["not_brick_primary"]


def test_n2_applies_every_n1_cut_and_needs_a_proxy():
    res = classify({"flux_r": 6.0}, {"type": "REX", "flux_r": 1.0, "flux_g": 0.2, "shape_r": 0.5},
                   {"flux_z": 1.0, "flux_r": 6.0})
    assert res["n1_status"].tolist() == [PASS, PASS, "mag_z"]
    assert res["n2_status"].tolist() == [PASS, "no_confuser_proxy", "mag_z"]
    assert res["confuser_category"][0] == "bright_early_type"
    assert res["n2_status"][1] == "no_confuser_proxy" and res["confuser_category"][1] == ""
    assert res["confuser_flags"][0] == "bright_early_type"  # DEV with flux_r 6: only this proxy holds


def test_bright_early_type_proxy_boundaries():
    t = np.array(["DEV", "DEV", "SER", "SER", "EXP"])
    assert bright_early_type_proxy(t, np.array([5.0, 4.999, 6.0, 6.0, 9.0]), np.array([4.0, 4.0, 4.0, 3.99, 4.0])).tolist() == \
        [True, False, True, False, False]


def test_edge_on_proxy_boundaries():
    # 1 - q = 0.5 <=> |e| = 1/3
    e = np.array([1 / 3, 1 / 3 - 1e-6, 0.5, 0.5])
    r = np.array([0.6, 1.0, 0.5999, 0.6])
    assert ellipticity_1mq(1 / 3, 0.0) == pytest.approx(0.5)
    assert edge_on_proxy(e, np.zeros(4), r).tolist() == [True, False, False, True]


def test_blue_and_large_proxies():
    fr = 10 ** (-0.4 * (20.5 - 22.5))  # r = 20.5
    g_of = lambda gr: fr * 10 ** (-0.4 * gr)  # noqa: E731
    out = blue_clumpy_proxy(np.array([g_of(0.4), g_of(0.41), g_of(0.1)]), np.array([fr, fr, fr * 0.99]),
                            np.ones(3), np.ones(3))
    assert out.tolist() == [True, False, False]
    assert large_galaxy_proxy(np.array([2.0, 1.99, 3.0]), np.array([3.0, 9.0, 2.99])).tolist() == [True, False, False]


def test_bright_neighbour_edges():
    dec0 = 2.0
    seps = [2.99, 3.0 + 1e-6, 6.0 - 1e-6, 6.01]
    ra, dec, flux, cand = [], [], [], []
    for i, s in enumerate(seps):
        base_ra = 150.0 + i * 0.1
        ra += [base_ra, base_ra]
        dec += [dec0, dec0 + s / 3600.0]
        flux += [10.0, 3.0]
        cand += [True, False]
    out = bright_neighbour_proxy(np.array(ra), np.array(dec), np.array(flux), np.array(cand))
    assert out[0::2].tolist() == [False, True, True, False]
    # a neighbour below 30 % of the flux does not count
    out = bright_neighbour_proxy(np.array([150.0, 150.0]), np.array([2.0, 2.0 + 4 / 3600]), np.array([10.0, 2.99]),
                                 np.array([True, False]))
    assert out.tolist() == [False, False]


def test_bright_neighbour_crowded_field_is_exact():
    # 12 faint sources within 2" (closer than 3") and one bright at 5": more than k=8 neighbours
    rng = np.random.default_rng(0)
    ra = np.concatenate([[150.0], 150.0 + rng.uniform(-1.4, 1.4, 12) / 3600, [150.0]])
    dec = np.concatenate([[2.0], 2.0 + rng.uniform(-1.4, 1.4, 12) / 3600, [2.0 + 5 / 3600]])
    flux = np.concatenate([[10.0], np.full(12, 1.0), [4.0]])
    cand = np.zeros(14, bool)
    cand[0] = True
    assert bright_neighbour_proxy(ra, dec, flux, cand)[0]
    assert not bright_neighbour_proxy(ra[:-1], dec[:-1], flux[:-1], cand[:-1])[0]


def test_flags_and_categories_decode():
    assert category_names(np.array([0, 1, 5])).tolist() == ["", "bright_early_type", "bright_neighbour"]
    assert flag_names(np.array([0, 1 | 4, 16])).tolist() == ["", "bright_early_type|blue_clumpy", "bright_neighbour"]


@pytest.mark.parametrize("half_width_deg", [0.01, 5.0, 60.0])
def test_pair_search_is_exact(half_width_deg):
    from scipy.spatial import cKDTree

    from lensaudit.sampling.confusers import _pairs_within
    from lensaudit.sampling.geometry import chord_of_arcsec, unit_vectors

    rng = np.random.default_rng(3)
    n = 4000
    ra = 45.0 + rng.uniform(-half_width_deg, half_width_deg, n)
    dec = 10.0 + rng.uniform(-half_width_deg, half_width_deg, n) / 2
    ra[: n // 2] = ra[n // 2:] + rng.normal(0, 4 / 3600, n // 2)  # many close pairs near 6"
    dec[: n // 2] = dec[n // 2:] + rng.normal(0, 4 / 3600, n // 2)
    xyz = unit_vectors(ra, dec)
    r = chord_of_arcsec(6.0)
    want = {tuple(p) for p in cKDTree(xyz).query_pairs(r, output_type="ndarray")}
    got = {tuple(sorted(p)) for p in _pairs_within(xyz, r)}
    assert got == want and len(want) > 100


def test_proxy_overlap_reports_how_much_of_n1_each_proxy_covers():
    import pandas as pd

    from lensaudit.sampling.confusers import proxy_overlap

    pool = pd.DataFrame({"pool": ["N1"] * 4 + ["N2"] * 2,
                         "confuser_category": ["", "", "", "", "bright_early_type", "edge_on"],
                         "confuser_flags": ["", "bright_early_type", "bright_early_type|edge_on", "",
                                            "bright_early_type", "edge_on"]})
    o = proxy_overlap(pool)
    assert o["n1_fraction_any_proxy"] == 0.5 and o["n1_fraction_by_proxy"]["bright_early_type"] == 0.5
    assert o["n1_fraction_by_proxy"]["edge_on"] == 0.25 and o["n2_share_by_category"] == {"bright_early_type": 0.5,
                                                                                         "edge_on": 0.5}
