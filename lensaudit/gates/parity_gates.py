"""Gates of the sky/type parity of positives and negatives (issue "gates that can fail",
DESIGN s3): every manifest positive lies in the negatives' domain, positives and negatives
are balanced in depth, PSF and declination, and the manifest's positives follow the split
fractions.  Targets come from ``lensaudit.spec`` (never from the producing profile).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import chisquare

from lensaudit.gates.gate_spec import GateSpec, spec
from lensaudit.gates.result import ERROR, GateResult, cannot_compute
from lensaudit.sampling.parity import BALANCE_COLUMNS, balance_frame, parity_failures, standardised_mean_difference
from lensaudit.spec import DATA, PARITY, interval_tag

ASSET = "training_manifest"


def positives_in_domain(manifest: pd.DataFrame, excluded: pd.DataFrame, sweep_rows: pd.DataFrame) -> GateResult:
    """Every manifest positive passes the parity cuts (recomputed on its sweep row with the
    spec's values) and every excluded positive fails the cut its reason names."""
    name = "manifest_positives_in_domain"
    pos = manifest[manifest["label"] == 1]
    if pos.empty:
        return cannot_compute(name, ASSET, ERROR, "no positives in the manifest", "0 positives outside the domain")
    rows = sweep_rows.set_index("galaxy_id").reindex(pos["galaxy_id"])
    missing = int(rows["dec"].isna().sum())
    reason = parity_failures(rows.reset_index().fillna({"type": ""}), PARITY.dec_min_deg, PARITY.dec_max_deg,
                             PARITY.min_nobs, PARITY.types)
    outside = pos["galaxy_id"].to_numpy()[(reason != "").to_numpy()]
    ex_reason = parity_failures(excluded, PARITY.dec_min_deg, PARITY.dec_max_deg, PARITY.min_nobs, PARITY.types)
    wrong = excluded.loc[(ex_reason.to_numpy() != excluded["reason"].to_numpy()), "galaxy_id"].tolist()
    bad = len(outside) + missing + len(wrong)
    return GateResult(name, ASSET, bad == 0, ERROR, float(bad), "0 positives outside the negatives' domain",
                      bound=(None, 0.0), details={"positives": int(len(pos)), "outside_domain": list(outside[:20]), "without_sweep_row": missing,
                       "excluded": int(len(excluded)), "excluded_with_wrong_reason": wrong[:20],
                       "excluded_by_reason": excluded["reason"].value_counts().to_dict() if len(excluded) else {}})


def positive_negative_balance(manifest: pd.DataFrame, seed: int = 0) -> GateResult:
    """For depth (5-sigma mag), PSF FWHM and declination: the one-sided ``balance_level``
    bootstrap lower bound of |SMD(positives, negatives)| stays <= the spec's bound (a
    region/depth shortcut otherwise)."""
    name = "manifest_positive_negative_balance"
    thr = f"{PARITY.balance_level:.0%} lower bound of |SMD| <= {PARITY.max_abs_smd} for {', '.join(BALANCE_COLUMNS)}"
    pos, neg = manifest[manifest["label"] == 1], manifest[manifest["label"] == 0]
    if len(pos) < PARITY.balance_min_rows or len(neg) < PARITY.balance_min_rows:
        return cannot_compute(name, ASSET, ERROR, f"{len(pos)} positives / {len(neg)} negatives", thr)
    a, b = balance_frame(pos), balance_frame(neg)
    rng = np.random.default_rng(seed)
    details, worst = {}, 0.0
    for col in BALANCE_COLUMNS:
        x, y = a[col].to_numpy(), b[col].to_numpy()
        smd = standardised_mean_difference(x, y)
        boots = np.array([abs(standardised_mean_difference(x[rng.integers(0, len(x), len(x))],
                                                           y[rng.integers(0, len(y), len(y))])) for _ in range(PARITY.balance_n_boot)])
        lower = float(np.nanpercentile(boots, round(100 * (1 - PARITY.balance_level), 9)))
        details[col] = {"smd": smd, f"abs_smd_lower{interval_tag(PARITY.balance_level)}": lower}
        worst = max(worst, lower)
    return GateResult(name, ASSET, worst <= PARITY.max_abs_smd, ERROR, worst, thr, details, bound=(None, PARITY.max_abs_smd))


def manifest_split_fractions(manifest: pd.DataFrame, fractions: dict) -> GateResult:
    """The manifest's positives per split are consistent with the spec's split fractions:
    chi-square goodness of fit p > ``min_split_pvalue`` (a proportion check that respects the
    few positives)."""
    name = "training_manifest_split_fractions"
    pos = manifest[manifest["label"] == 1]
    keys = list(fractions)
    counts = np.array([(pos["split"] == k).sum() for k in keys], float)
    thr = f"chi-square p > {PARITY.min_split_pvalue} against {'/'.join(f'{fractions[k]:g}' for k in keys)}"
    if counts.sum() < PARITY.min_split_positives:
        return cannot_compute(name, ASSET, ERROR, f"{int(counts.sum())} positives < {PARITY.min_split_positives}", thr)
    expected = np.array([fractions[k] for k in keys]) * counts.sum()
    p = float(chisquare(counts, expected).pvalue)
    return GateResult(name, ASSET, p > PARITY.min_split_pvalue, ERROR, p, thr, bound=(PARITY.min_split_pvalue, None), details={"positives_per_split": dict(zip(keys, counts.astype(int).tolist())),
                       "fractions": {k: float(c / counts.sum()) for k, c in zip(keys, counts)}})


def specs() -> list[GateSpec]:
    from lensaudit.tables import read_table

    def sweeps(v):
        return v.memo("parity_sweep_rows", lambda: read_table(
            v.home, "sweep_catalog", columns=["galaxy_id", "dec", "nobs_g", "nobs_r", "nobs_z", "type"]))

    return [
        spec("manifest_positives_in_domain", ASSET, ERROR, True,
              f"every manifest positive satisfies the negatives' sky/type cuts ({PARITY.dec_min_deg:g} < dec < "
              f"{PARITY.dec_max_deg:g} deg, nobs >= {PARITY.min_nobs} in g, r, z, TYPE in {'/'.join(PARITY.types)}), "
              "recomputed on its sweep row; excluded positives carry the right reason",
              lambda v: positives_in_domain(v.table("training_manifest"),
                                            v.table("training_manifest_excluded_positives"), sweeps(v))),
        spec("manifest_positive_negative_balance", ASSET, ERROR, True,
              f"positives and negatives balanced in r depth, r PSF and dec: {PARITY.balance_level:.0%} lower bound of |SMD| <= "
              f"{PARITY.max_abs_smd}", lambda v: positive_negative_balance(v.table("training_manifest"))),
        spec("training_manifest_split_fractions", ASSET, ERROR, True,
              f"manifest positives per split consistent with the split fractions (chi-square p > {PARITY.min_split_pvalue})",
              lambda v: manifest_split_fractions(v.table("training_manifest"), DATA.split_fractions)),
    ]
