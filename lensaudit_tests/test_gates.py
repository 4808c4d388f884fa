"""Every gate fails on a planted violation and cannot pass when it cannot be computed."""

import numpy as np
import pandas as pd
import pyarrow as pa

from lensaudit.gates import data_gates
from lensaudit.gates.schema_gates import schema_matches
from lensaudit.sampling.pools import NegativeCuts
from lensaudit_tests._rows import BASE


def _pool(n=5, **over):
    df = pd.DataFrame([dict(BASE, galaxy_id=f"g{i}", pool="N1", dec=2.0 + 0.01 * i) for i in range(n)])
    for k, v in over.items():
        df[k] = v
    return df


def test_n1_cut_gate_recomputes_each_cut():
    assert data_gates.n1_rows_satisfy_cuts(_pool(), NegativeCuts()).passed
    for col, val in [("dec", -18.0), ("nobs_r", 2), ("flux_z", 10.0), ("type", "EXP"), ("maskbits", 2),
                     ("brick_primary", False)]:
        df = _pool()
        df.loc[2, col] = val
        res = data_gates.n1_rows_satisfy_cuts(df, NegativeCuts())
        assert not res.passed and res.metric == 1, col
    assert not data_gates.n1_rows_satisfy_cuts(_pool().assign(pool="N2"), NegativeCuts()).passed  # no N1 rows
    # N2 rows obey the same cuts and carry a category
    df = _pool(confuser_category="")
    df.loc[3, ["pool", "confuser_category"]] = ["N2", "ring"]
    assert data_gates.n1_rows_satisfy_cuts(df, NegativeCuts()).passed
    df.loc[3, "flux_z"] = 5.0
    assert not data_gates.n1_rows_satisfy_cuts(df, NegativeCuts()).passed
    df.loc[3, ["flux_z", "confuser_category"]] = [20.0, ""]
    assert not data_gates.n1_rows_satisfy_cuts(df, NegativeCuts()).passed


def test_exclusion_gate():
    lenses = pd.DataFrame({"ra": [150.0], "dec": [2.04]})
    pool = _pool()
    assert data_gates.no_negative_near_known_lens(pool, lenses, 11.0).passed is False  # g4 sits on the lens
    pool = pool[pool.galaxy_id != "g4"]
    assert data_gates.no_negative_near_known_lens(pool, lenses, 11.0).passed
    pool.loc[pool.index[0], "ra"] = np.nan
    assert not data_gates.no_negative_near_known_lens(pool, lenses, 11.0).passed
    assert not data_gates.no_negative_near_known_lens(pool.iloc[:0], lenses, 11.0).passed


def _manifest():
    rows = []
    for split, pix in (("train", 1), ("val", 2)):
        rows.append(dict(galaxy_id=f"p{split}", label=1, tier="A", pool="positive", sample_weight=1.0, split=split,
                         confuser_category="",
                         healpix_128=pix, selected_for_nobs_z_bin="3-5", type_bin="DEV"))
        for i in range(100):
            pool = "N2" if i < 15 else "N1"
            rows.append(dict(galaxy_id=f"n{split}{i}", label=0, tier=pool, pool=pool, sample_weight=1.0, split=split,
                             confuser_category="ring" if pool == "N2" else "",
                             healpix_128=pix, selected_for_nobs_z_bin="3-5", type_bin="DEV"))
    return pd.DataFrame(rows)


def test_manifest_gates_pass_then_fail_on_planted_faults():
    m = _manifest()
    sf = pd.DataFrame(columns=["split", "nobs_z_bin", "type_bin", "shortfall"])
    assert data_gates.manifest_ratio(m, sf, 100, 0.05).passed
    assert data_gates.manifest_n2_fraction(m, 0.15).passed
    assert data_gates.manifest_labels_and_weights(m).passed
    assert data_gates.splits_disjoint(m, "training_manifest").passed
    # a test row copied into the train split
    leak = pd.concat([m, m[m.split == "val"].iloc[[5]].assign(split="train")], ignore_index=True)
    assert not data_gates.splits_disjoint(leak, "training_manifest").passed
    assert not data_gates.manifest_labels_and_weights(leak).passed  # duplicate galaxy_id
    # one negative missing without a recorded shortfall
    assert not data_gates.manifest_ratio(m.drop(index=50), sf, 100, 0.05).passed
    # ... and accounted for by a recorded shortfall: exact, and within the bound
    sf1 = pd.DataFrame([{"split": "train", "nobs_z_bin": "3-5", "type_bin": "DEV", "shortfall": 1}])
    assert data_gates.manifest_ratio(m.drop(index=50), sf1, 100, 0.05).passed
    m2 = m.copy()
    m2.loc[m2.pool == "N2", ["pool", "tier"]] = "N1"
    assert not data_gates.manifest_n2_fraction(m2, 0.15).passed
    m3 = m.copy()
    m3.loc[0, "sample_weight"] = 0.5
    assert not data_gates.manifest_labels_and_weights(m3).passed
    assert not data_gates.manifest_ratio(m[m.label == 0], sf, 100, 0.05).passed  # cannot be computed


def test_split_proportion_gate():
    df = pd.DataFrame({"split": ["train"] * 70 + ["val"] * 15 + ["test"] * 15, "healpix_128": range(100)})
    fr = {"train": 0.7, "val": 0.15, "test": 0.15}
    assert data_gates.split_proportions_ok(df, fr, 0.03).passed
    df.loc[:5, "split"] = "test"
    assert not data_gates.split_proportions_ok(df, fr, 0.03).passed


def test_match_rate_gate():
    matched = pd.DataFrame({"sep_arcsec": [0.1, 0.2, 1.4]})
    un = pd.DataFrame({"reason": ["outside_sweep_coverage", "no_tractor_row_within_radius"]})
    r = data_gates.positives_match_rate(matched, un, 0.9, 1.5)
    assert r.metric == 0.75 and not r.passed and r.severity == "WARN"
    assert data_gates.positives_match_rate(matched, un.iloc[:1], 0.9, 1.5).passed
    assert not data_gates.positives_match_rate(matched.iloc[:0], un.iloc[:1], 0.9, 1.5).passed


def test_schema_gate():
    declared = pa.schema([("a", pa.int64()), ("b", pa.string())])
    assert schema_matches("x", [declared], declared).passed
    assert not schema_matches("x", [pa.schema([("a", pa.int32()), ("b", pa.string())])], declared).passed
    assert not schema_matches("x", [], declared).passed


def test_unique_galaxy_id_gate():
    assert data_gates.unique_galaxy_ids(pd.Series(["a_1", "a_2"]), "sweep_catalog").passed
    r = data_gates.unique_galaxy_ids(pd.Series(["a_1", "a_2", "a_1"]), "sweep_catalog")
    assert not r.passed and r.details["examples"] == ["a_1"]
    assert not data_gates.unique_galaxy_ids(pd.Series([], dtype=str), "sweep_catalog").passed


def test_cli_gate_table_has_a_header_a_rule_and_one_row_per_gate():
    """``lensaudit gates`` prints its table with ``tabulate``: metrics exactly as
    ``GateResult.metric_text`` writes them (never re-parsed as numbers), every gate on one row."""
    from lensaudit.gates.registry import GATES
    from lensaudit.gates.result import ERROR, WARN, GateResult
    from lensaudit_cli.table import gate_table

    rows = [(GATES[0], None), (GATES[1], GateResult("g1", "a", True, ERROR, 1e-05, "<= 0.1")),
            (GATES[2], GateResult("g2", "a", False, WARN, None, "x"))]
    lines = gate_table(rows).splitlines()
    assert lines[0].split() == ["check", "asset", "passed", "severity", "metric", "threshold"]
    assert set(lines[1].replace(" ", "")) == {"-"} and len(lines) == 2 + len(rows)
    assert lines[2].split()[:4] == [GATES[0].name, GATES[0].asset, "not", "materialised"]
    assert lines[3].split() == ["g1", "a", "PASS", "ERROR", "1e-05", "<=", "0.1"]
    assert lines[4].split() == ["g2", "a", "FAIL", "WARN", "n/a", "x"]
