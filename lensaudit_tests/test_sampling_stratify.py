import numpy as np

from lensaudit.sampling.stratify import (nobs_z_bin, plan_n1, plan_n2, selection_key, trim_n2, type_bin)


def test_bins():
    assert nobs_z_bin([0, 1, 2, 3, 5, 6, 10, 11, 40]).tolist() == ["1-2", "1-2", "1-2", "3-5", "3-5", "6-10", "6-10",
                                                                     "11+", "11+"]
    assert type_bin(["SER", "DEV", "REX", "EXP", "PSF"]).tolist() == ["SER", "DEV", "REX", "OTHER", "OTHER"]


def test_selection_key_matches_spark_sha2_format():
    import hashlib

    assert selection_key("0001m040_4091", 42) == hashlib.sha256(b"0001m040_4091:42").hexdigest()


def test_n2_apportioned_and_capped():
    targets = {("train", "3-5", "DEV"): 300, ("train", "6-10", "DEV"): 100, ("val", "3-5", "SER"): 100}
    q = plan_n2(targets, {("train", "3-5", "DEV"): 1000, ("train", "6-10", "DEV"): 2, ("val", "3-5", "SER"): 1000}, 0.15)
    assert sum(q.values()) == round(0.15 * 500)
    assert q[("train", "6-10", "DEV")] == 2  # capped by availability, deficit moved elsewhere
    # no target of an OTHER type gets N2
    assert plan_n2({("train", "3-5", "OTHER"): 100}, {}, 0.15) == {}


def test_backfill_only_from_same_type_and_split_neighbour():
    targets = {("train", "1-2", "DEV"): 100, ("train", "3-5", "DEV"): 100}
    n2 = {("train", "1-2", "DEV"): 0, ("train", "3-5", "DEV"): 15}
    avail = {("train", "3-5", "DEV"): 150, ("train", "1-2", "SER"): 1000, ("val", "1-2", "DEV"): 1000}
    ranges, sf = plan_n1(targets, n2, avail)
    rows = {tuple(r[:3]) + (r[5],): (r[3], r[4]) for r in ranges.itertuples(index=False)}
    assert rows[("train", "3-5", "DEV", "3-5")] == (1, 85)
    assert rows[("train", "3-5", "DEV", "1-2")] == (86, 150)  # the 65 spare rows, after the stratum's own
    s12 = sf[(sf.nobs_z_bin == "1-2")].iloc[0]
    assert (s12.n1_backfilled, s12.shortfall, s12.reason, s12.backfill_from) == (65, 35, "pool_exhausted_after_backfill",
                                                                                 "3-5:65")


def test_other_type_shortfall_reason_and_trim():
    ranges, sf = plan_n1({("test", "3-5", "OTHER"): 200}, {}, {})
    assert len(ranges) == 0 and sf.iloc[0].reason == "no_negative_pool_for_type" and sf.iloc[0].shortfall == 200
    q = {("a", "3-5", "DEV"): 30, ("b", "3-5", "DEV"): 10}
    t = trim_n2(q, n1_total=85, n2_fraction=0.15)
    assert sum(t.values()) == 15 and t[("a", "3-5", "DEV")] > t[("b", "3-5", "DEV")]
    assert trim_n2(q, n1_total=1000, n2_fraction=0.15) == q
    assert np.isclose(15 / (85 + 15), 0.15)
