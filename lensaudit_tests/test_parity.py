"""Sky/type parity of positives with the negatives: exclusion with reasons and its gates (planted faults)."""

import numpy as np
import pandas as pd

from lensaudit.gates.parity_gates import manifest_split_fractions, positive_negative_balance, positives_in_domain
from lensaudit.sampling.parity import split_positives
from lensaudit.splits import SPLIT_FRACTIONS


def _rows(n, seed=0, dec=(0.0, 20.0), depth=(1500.0, 3000.0), label=0, prefix="n"):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "galaxy_id": [f"{prefix}{i:05d}" for i in range(n)], "label": label,
        "split": rng.choice(list(SPLIT_FRACTIONS), n, p=list(SPLIT_FRACTIONS.values())),
        "dec": rng.uniform(*dec, n), "psfdepth_r": rng.uniform(*depth, n), "psfsize_r": rng.uniform(0.9, 1.6, n),
        "nobs_g": np.int16(4), "nobs_r": np.int16(4), "nobs_z": np.int16(5), "type": "DEV"})


def test_positives_outside_the_domain_are_excluded_with_the_first_reason():
    pos = _rows(6, label=1, prefix="p")
    pos.loc[0, "dec"] = -25.0  # DES-deep sky south of the negatives' limit
    pos.loc[1, "nobs_r"] = 2
    pos.loc[2, "type"] = "PSF"
    pos.loc[3, ["dec", "type"]] = [40.0, "EXP"]  # two failures: the first in the cascade is recorded
    kept, excluded = split_positives(pos, -18.0, 32.0, 3, ("SER", "DEV", "REX"))
    assert list(kept.galaxy_id) == ["p00004", "p00005"]
    assert list(excluded.reason) == ["dec_range", "nobs_r", "type", "dec_range"]


def test_domain_gate_red_for_a_planted_positive_and_a_wrong_reason():
    neg, pos = _rows(500), _rows(60, seed=1, label=1, prefix="p")
    man = pd.concat([pos, neg], ignore_index=True)
    sweeps = man[["galaxy_id", "dec", "nobs_g", "nobs_r", "nobs_z", "type"]]
    empty = pos.iloc[:0].assign(reason="")
    assert positives_in_domain(man, empty, sweeps).passed
    south = sweeps.copy()
    south.loc[0, "dec"] = -30.0  # a positive from deeper southern imaging slipped into the manifest
    res = positives_in_domain(man, empty, south)
    assert not res.passed and res.details["outside_domain"] == ["p00000"]
    lying = pos.iloc[[1]].assign(reason="type")  # excluded, but it passes every cut
    assert not positives_in_domain(man, lying, sweeps).passed


def test_balance_gate_red_when_positives_sit_in_deeper_sky():
    neg, pos = _rows(2000), _rows(80, seed=2, label=1, prefix="p")
    assert positive_negative_balance(pd.concat([pos, neg])).passed
    deep = pos.assign(psfdepth_r=pos.psfdepth_r * 6.0)  # ~2 mag deeper: a depth shortcut
    res = positive_negative_balance(pd.concat([deep, neg]))
    assert not res.passed and res.details["psfdepth_r_mag5sigma"]["abs_smd_lower95"] > 0.25


def test_manifest_split_gate_red_when_positives_pile_into_one_split():
    pos = _rows(90, seed=3, label=1, prefix="p")
    assert manifest_split_fractions(pos, SPLIT_FRACTIONS).passed
    assert not manifest_split_fractions(pos.assign(split="train"), SPLIT_FRACTIONS).passed
    assert not manifest_split_fractions(pos.iloc[:5], SPLIT_FRACTIONS).passed  # too few: cannot be computed
