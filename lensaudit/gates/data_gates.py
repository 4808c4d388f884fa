"""Gates of the data half: crossmatch, negative pools, splits, manifest (DESIGN s3-s4).

Each function takes plain DataFrames and returns a GateResult; none of them reads the
store or imports Dagster.  Verifications are written independently of the code that
produced the data (they recompute the cuts and distances from the stored columns).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from lensaudit.catalogs.lenscat_catalog import SAMPLE_WEIGHT_OF_TIER
from lensaudit.gates.gate_spec import GateSpec, schema_gate, spec
from lensaudit.survey.photometry import nmgy_to_mag
from lensaudit.gates.result import ERROR, WARN, GateResult, cannot_compute
from lensaudit.sampling.exclusion import LensNeighbourIndex
from lensaudit.spec import DATA, negative_cuts
from lensaudit.splits import SPLIT_ORDER, split_proportions, verify_disjoint
from lensaudit.survey.maskbits import mask_of


def unique_galaxy_ids(galaxy_ids: pd.Series, asset: str) -> GateResult:
    """galaxy_id (<brickname>_<objid>) is unique over every stored partition."""
    name = f"{asset}_unique_galaxy_id"
    if galaxy_ids.empty:
        return cannot_compute(name, asset, ERROR, "no rows", "0 duplicates")
    dup = galaxy_ids[galaxy_ids.duplicated(keep=False)]
    return GateResult(name, asset, dup.empty, ERROR, float(dup.nunique()), "0 duplicated ids", bound=(None, 0.0), details={"rows": int(len(galaxy_ids)), "duplicated_ids": int(dup.nunique()),
                       "examples": sorted(dup.unique().tolist())[:5]})


def positives_match_rate(matched: pd.DataFrame, unmatched: pd.DataFrame, min_rate: float, radius_arcsec: float) -> GateResult:
    """Match rate among lenses covered by the sweeps read (WARN below ``min_rate``)."""
    name, asset = "positives_match_rate", "positives"
    covered_unmatched = unmatched[unmatched["reason"] != "outside_sweep_coverage"]
    n_cov = len(matched) + len(covered_unmatched)
    if n_cov == 0:
        return cannot_compute(name, asset, WARN, "no lens lies inside the sweeps read", f">= {min_rate}")
    rate = len(matched) / n_cov
    sep = matched["sep_arcsec"].to_numpy() if len(matched) else np.array([np.nan])
    details = {
        "matched": int(len(matched)), "covered_lenses": int(n_cov),
        "unmatched_by_reason": {k: int(v) for k, v in unmatched["reason"].value_counts().items()},
        "sep_arcsec_p50": float(np.nanmedian(sep)), "sep_arcsec_p90": float(np.nanpercentile(sep, 90)),
        "sep_arcsec_max": float(np.nanmax(sep)),
    }
    ok = rate >= min_rate and details["sep_arcsec_max"] <= radius_arcsec
    return GateResult(name, asset, bool(ok), WARN, rate, f">= {min_rate} and max sep <= {radius_arcsec}\"", details,
                      bound=(min_rate, None))


def no_negative_near_known_lens(pool: pd.DataFrame, lenscat_all: pd.DataFrame, radius_arcsec: float) -> GateResult:
    name, asset = "no_negative_near_known_lens", "negative_pool"
    if pool.empty:
        return cannot_compute(name, asset, ERROR, "negative pool is empty", f"> {radius_arcsec}\"")
    index = LensNeighbourIndex(lenscat_all["ra"].to_numpy(), lenscat_all["dec"].to_numpy())
    sep = index.nearest_arcsec(pool["ra"].to_numpy(), pool["dec"].to_numpy(), max_arcsec=radius_arcsec * 3)
    bad = np.isnan(sep) | (sep <= radius_arcsec)  # NaN: invalid coordinates cannot be verified
    finite = sep[np.isfinite(sep)]
    min_sep = float(finite.min()) if len(finite) else float("inf")
    return GateResult(name, asset, not bad.any(), ERROR, float(bad.sum()), f"0 rows within {radius_arcsec}\"", bound=(None, 0.0), details={"rows_checked": int(len(pool)), "violations": int(bad.sum()),
                       "min_sep_arcsec_within_3x_radius": min_sep,
                       "example_ids": pool.loc[bad, "galaxy_id"].head(5).tolist()})


def n1_rows_satisfy_cuts(pool: pd.DataFrame, cuts) -> GateResult:
    """Recompute every parity cut from the stored columns, on every pool row (N2 rows
    pass the same cuts) and require an N1 pool; N2 rows must carry a category."""
    name, asset = "n1_rows_satisfy_cuts", "negative_pool"
    if not (pool["pool"] == "N1").any():
        return cannot_compute(name, asset, ERROR, "no N1 rows", "0 violations")
    n1 = pool
    with np.errstate(divide="ignore", invalid="ignore"):
        mag_z = nmgy_to_mag(n1["flux_z"].to_numpy(np.float64))
    checks = {
        "dec_range": (n1["dec"] > cuts.dec_min_deg) & (n1["dec"] < cuts.dec_max_deg),
        "nobs_g": n1["nobs_g"] >= cuts.min_nobs, "nobs_r": n1["nobs_r"] >= cuts.min_nobs,
        "nobs_z": n1["nobs_z"] >= cuts.min_nobs,
        "type": n1["type"].isin(cuts.types),
        "mag_z": pd.Series(mag_z < cuts.max_mag_z, index=n1.index),
        "maskbits": (n1["maskbits"].astype(np.int64) & mask_of(cuts.excluded_maskbits)) == 0,
        "brick_primary": n1["brick_primary"].astype(bool),
    }
    checks["n2_category"] = ~((n1["pool"] == "N2") & (n1["confuser_category"].fillna("") == "")) if "confuser_category" in n1 \
        else pd.Series(True, index=n1.index)
    violations = {k: int((~v.to_numpy()).sum()) for k, v in checks.items()}
    total = sum(violations.values())
    return GateResult(name, asset, total == 0, ERROR, float(total), "0 violations", bound=(None, 0.0), details={"rows": int(len(n1)), "n1_rows": int((n1["pool"] == "N1").sum()), "violations_by_cut": violations})


def splits_disjoint(df: pd.DataFrame, asset: str, keys=("galaxy_id", "healpix_128")) -> GateResult:
    name = f"{asset}_splits_disjoint"
    if df.empty:
        return cannot_compute(name, asset, ERROR, "no rows", "0 shared keys")
    shared = verify_disjoint(df, keys)
    n_shared = sum(len(v) for v in shared.values())
    return GateResult(name, asset, n_shared == 0, ERROR, float(n_shared), "0 keys in two splits", bound=(None, 0.0), details={k: {"n_in_several_splits": len(v), "examples": [str(x) for x in v[:5]]} for k, v in shared.items()}
                      | {"rows": int(len(df))})


def split_proportions_ok(df: pd.DataFrame, fractions: dict, tolerance: float, asset: str = "spatial_splits") -> GateResult:
    name = f"{asset}_split_proportions"
    if df.empty:
        return cannot_compute(name, asset, ERROR, "no rows", f"+-{tolerance}")
    props = split_proportions(df["split"])
    dev = max(abs(props[s] - fractions[s]) for s in SPLIT_ORDER)
    return GateResult(name, asset, bool(dev <= tolerance), ERROR, float(dev), f"max |p - target| <= {tolerance}",
                      bound=(None, tolerance), details={"proportions": props, "targets": dict(fractions), "rows": int(len(df)),
                       "pixels": int(df["healpix_128"].nunique()) if "healpix_128" in df else None})


def manifest_ratio(manifest: pd.DataFrame, shortfalls: pd.DataFrame, ratio: int, max_shortfall_fraction: float) -> GateResult:
    """Per stratum: negatives drawn for it + recorded shortfall == ratio x positives, and
    the total shortfall stays within ``max_shortfall_fraction`` of the target."""
    name, asset = "manifest_ratio_per_stratum", "training_manifest"
    pos = manifest[manifest["label"] == 1]
    if pos.empty:
        return cannot_compute(name, asset, ERROR, "no positives in the manifest", f"{ratio}:1")
    keys = ["split", "selected_for_nobs_z_bin", "type_bin"]
    n_pos = pos.groupby(keys).size()
    n_neg = manifest[manifest["label"] == 0].groupby(keys).size()
    sf = shortfalls.set_index(["split", "nobs_z_bin", "type_bin"])["shortfall"] if len(shortfalls) else pd.Series(dtype=int)
    bad, rows = [], []
    for k, p in n_pos.items():
        got = int(n_neg.get(k, 0))
        short = int(sf.get(k, 0))
        rows.append({"stratum": "/".join(k), "positives": int(p), "negatives": got, "shortfall": short})
        if got + short != ratio * p or short < 0:
            bad.append("/".join(k))
    orphan = [("/".join(k)) for k in n_neg.index if k not in n_pos.index]
    target = int(ratio * len(pos))
    short_frac = float(sf.clip(lower=0).sum() / target) if target else float("nan")
    ok = not bad and not orphan
    severity = ERROR
    passed = ok and short_frac <= max_shortfall_fraction
    return GateResult(name, asset, bool(passed), severity, short_frac, f"accounting exact, shortfall <= {max_shortfall_fraction}",
                      bound=(None, max_shortfall_fraction), details={"strata": rows[:40], "accounting_errors": bad, "negatives_in_strata_without_positives": orphan,
                       "total_target": target, "shortfall_fraction": short_frac})


def manifest_n2_fraction(manifest: pd.DataFrame, target: float, tolerance: float = DATA.n2_tolerance) -> GateResult:
    name, asset = "manifest_n2_fraction", "training_manifest"
    neg = manifest[manifest["label"] == 0]
    if neg.empty:
        return cannot_compute(name, asset, ERROR, "no negatives", f"{target} +- {tolerance}")
    frac = float((neg["pool"] == "N2").mean())
    return GateResult(name, asset, abs(frac - target) <= tolerance, ERROR, frac, f"{target} +- {tolerance}",
                      bound=(target - tolerance, target + tolerance), details={"n1": int((neg["pool"] == "N1").sum()), "n2": int((neg["pool"] == "N2").sum()),
                       "by_category": {k: int(v) for k, v in neg.loc[neg["pool"] == "N2", "confuser_category"].value_counts().items()}})


def manifest_labels_and_weights(manifest: pd.DataFrame) -> GateResult:
    """tier <-> label <-> pool <-> sample_weight are consistent; galaxy_id is unique."""
    name, asset = "manifest_labels_and_weights", "training_manifest"
    if manifest.empty:
        return cannot_compute(name, asset, ERROR, "empty manifest", "0 inconsistent rows")
    expected_label = manifest["tier"].map({"A": 1, "B": 1, "N1": 0, "N2": 0})
    expected_weight = manifest["tier"].map(SAMPLE_WEIGHT_OF_TIER)
    bad = (expected_label.isna() | (expected_label != manifest["label"])
           | ~np.isclose(expected_weight.fillna(-1), manifest["sample_weight"])
           | ((manifest["label"] == 0) & (manifest["pool"] != manifest["tier"])))
    dups = int(manifest["galaxy_id"].duplicated().sum())
    n_bad = int(bad.sum()) + dups
    return GateResult(name, asset, n_bad == 0, ERROR, float(n_bad), "0", bound=(None, 0.0), details={"inconsistent_rows": int(bad.sum()), "duplicate_galaxy_ids": dups,
                       "tiers": {k: int(v) for k, v in manifest["tier"].value_counts().items()}})


def manifest_positives_are_known_lenses(manifest: pd.DataFrame, lenscat_all: pd.DataFrame,
                                        radius_arcsec: float) -> GateResult:
    """Every manifest positive names a known lens (``StoreView.lenscat_all``: lenscat and the
    profile's mock lenses, recomputed, never the stored catalogue), lies within the crossmatch
    radius of that lens's catalogue position and carries the tier of its grading
    (``TIER_OF_GRADING``); no lens gives two positives."""
    from lensaudit.catalogs.lenscat_catalog import TIER_OF_GRADING
    from lensaudit.sampling.geometry import arcsec_of_chord, unit_vectors

    name, asset = "manifest_positives_are_known_lenses", "training_manifest"
    threshold = f"0 positives off their known lens (> {radius_arcsec:g}\"), of another tier or without one"
    pos = manifest[manifest["label"] == 1].reset_index(drop=True)
    if pos.empty:
        return cannot_compute(name, asset, ERROR, "no positives in the manifest", threshold)
    if lenscat_all is None or lenscat_all.empty:
        return cannot_compute(name, asset, ERROR, "no known-lens catalogue", threshold)
    cat = lenscat_all.drop_duplicates("lens_id").set_index("lens_id").reindex(pos["lens_id"].astype(str))
    unknown = cat["ra"].isna().to_numpy()
    with np.errstate(invalid="ignore"):
        sep = arcsec_of_chord(np.linalg.norm(unit_vectors(pos["ra"].to_numpy(float), pos["dec"].to_numpy(float))
                                             - unit_vectors(cat["ra"].to_numpy(float), cat["dec"].to_numpy(float)), axis=1))
    far = ~unknown & ~(sep <= radius_arcsec)
    wrong_tier = ~unknown & (cat["grading"].map(TIER_OF_GRADING).to_numpy() != pos["tier"].to_numpy())
    twice = pos["lens_id"].duplicated(keep=False).to_numpy()
    bad = unknown | far | wrong_tier | twice
    examples = {k: pos.loc[m, "galaxy_id"].astype(str).head(5).tolist()
                for k, m in (("unknown_lens", unknown), ("off_its_lens", far), ("tier_not_its_grading", wrong_tier),
                             ("lens_used_twice", twice)) if m.any()}
    return GateResult(name, asset, not bad.any(), ERROR, float(bad.sum()), threshold, bound=(None, 0.0),
                      details={"positives": int(len(pos)), "unknown_lens": int(unknown.sum()), "off_its_lens": int(far.sum()),
                               "tier_not_its_grading": int(wrong_tier.sum()), "lens_used_twice": int(twice.sum()),
                               "examples": examples})


def cutouts_complete(manifest: pd.DataFrame, index: pd.DataFrame, max_failure_rate: float) -> GateResult:
    """Every manifest row of the materialised sweep partitions has an index row, failures
    carry a reason, and the failure rate is within bound."""
    name, asset = "cutouts_complete", "cutouts"
    if index.empty:
        return cannot_compute(name, asset, ERROR, "empty cutout index", f"failure rate <= {max_failure_rate}")
    expected = manifest[manifest["sweep"].isin(index["sweep"].unique())]
    missing = sorted(set(expected["galaxy_id"]) - set(index["galaxy_id"]))
    dups = int(index["galaxy_id"].duplicated().sum())
    no_reason = int(((~index["cutout_ok"]) & (index["fail_reason"].fillna("") == "")).sum())
    rate = float((~index["cutout_ok"]).mean())
    ok = not missing and not dups and not no_reason and rate <= max_failure_rate
    return GateResult(name, asset, bool(ok), ERROR, rate, f"all rows present, failure rate <= {max_failure_rate}",
                      bound=(None, max_failure_rate), details={"expected_rows": int(len(expected)), "index_rows": int(len(index)), "missing": len(missing),
                       "missing_examples": missing[:5], "duplicates": dups, "failures_without_reason": no_reason,
                       "fail_reasons": {k: int(v) for k, v in index.loc[~index["cutout_ok"], "fail_reason"]
                                        .str.split(":").str[0].value_counts().items()}})


def specs() -> list[GateSpec]:
    """GateSpecs of this family (concatenated by ``lensaudit.gates.registry``)."""
    from lensaudit.tables import read_table

    fractions = "/".join(f"{x:.2f}" for x in DATA.split_fractions.values())
    return [
        schema_gate("lens_catalog"),
        schema_gate("sweep_catalog"),
        spec("sweep_catalog_unique_galaxy_id", "sweep_catalog", ERROR, True,
             "no galaxy_id in two rows or two sweeps (bricks straddle sweep boundaries)",
             lambda v: unique_galaxy_ids(read_table(v.home, "sweep_catalog", columns=["galaxy_id"])["galaxy_id"],
                                         "sweep_catalog")),
        schema_gate("positives"),
        spec("positives_match_rate", "positives", WARN, False,
             "match rate of covered lenses and separation distribution",
             lambda v: positives_match_rate(v.table("positives"), v.table("positives_unmatched"),
                                            DATA.min_match_rate, DATA.match_radius_arcsec),
             plot="positives_separation.png"),
        schema_gate("negative_pool"),
        spec("no_negative_near_known_lens", "negative_pool", ERROR, True,
             "no negative within the exclusion radius of any lenscat entry",
             lambda v: no_negative_near_known_lens(v.table("negative_pool"), v.lenscat_all,
                                                   DATA.exclusion_radius_arcsec)),
        spec("n1_rows_satisfy_cuts", "negative_pool", ERROR, True, "every N1 row satisfies every parity cut",
             lambda v: n1_rows_satisfy_cuts(v.table("negative_pool"), negative_cuts())),
        schema_gate("spatial_splits"),
        spec("spatial_splits_splits_disjoint", "spatial_splits", ERROR, True,
             "no galaxy_id and no HEALPix pixel in two splits",
             lambda v: splits_disjoint(v.table("spatial_splits"), "spatial_splits")),
        spec("spatial_splits_split_proportions", "spatial_splits", ERROR, True,
             f"train/val/test proportions within +-{DATA.split_tolerance:g} of {fractions}",
             lambda v: split_proportions_ok(v.table("spatial_splits"), DATA.split_fractions, DATA.split_tolerance),
             plot="spatial_splits_sky.png"),
        schema_gate("training_manifest"),
        spec("training_manifest_splits_disjoint", "training_manifest", ERROR, True,
             "disjointness re-verified on the manifest rows",
             lambda v: splits_disjoint(v.table("training_manifest"), "training_manifest")),
        spec("manifest_ratio_per_stratum", "training_manifest", ERROR, True,
             f"{DATA.negatives_per_positive}:1 per (split, nobs_z_bin, type_bin) with shortfalls accounted, total "
             f"shortfall <= {DATA.max_shortfall_fraction}",
             lambda v: manifest_ratio(v.table("training_manifest"), v.table("training_manifest_shortfalls"),
                                      DATA.negatives_per_positive, DATA.max_shortfall_fraction)),
        spec("manifest_n2_fraction", "training_manifest", ERROR, True,
             f"N2 fraction of the negatives {DATA.n2_fraction:g} +- {DATA.n2_tolerance:g}",
             lambda v: manifest_n2_fraction(v.table("training_manifest"), DATA.n2_fraction, DATA.n2_tolerance)),
        spec("manifest_labels_and_weights", "training_manifest", ERROR, True,
             "labels, tiers, pools and sample weights consistent; galaxy_id unique",
             lambda v: manifest_labels_and_weights(v.table("training_manifest"))),
        spec("manifest_positives_are_known_lenses", "training_manifest", ERROR, True,
             f"every positive names a known lens (lenscat and the profile's mock lenses, recomputed), lies within "
             f"{DATA.match_radius_arcsec:g}\" of it and carries its grading's tier; one positive per lens",
             lambda v: manifest_positives_are_known_lenses(v.table("training_manifest"), v.lenscat_all,
                                                           DATA.match_radius_arcsec)),
        schema_gate("cutouts"),
        spec("cutouts_complete", "cutouts", ERROR, True,
             "every manifest row in the index, failures with reasons, failure rate within bound",
             lambda v: cutouts_complete(v.table("training_manifest"), v.table("cutouts"), DATA.max_cutout_failure_rate)),
    ]
