"""Every gate of the data half, bound to the stored assets it judges.

``GATES`` is the single list that both the Dagster asset checks (``assets/``) and the
``lensaudit gates`` command evaluate, so a gate is written once.  ``StoreView`` reads
what is stored under ``$LENSAUDIT_HOME/assets`` (cached per view).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from lensaudit.config import Profile
from lensaudit.gates import data_gates
from lensaudit.gates.result import ERROR, WARN, GateResult, cannot_compute
from lensaudit.gates.schema_gates import schema_matches
from lensaudit.store import asset_files, read_asset
from lensaudit.tables import SCHEMAS


@dataclass
class StoreView:
    home: Path
    profile: Profile
    _memo: dict = field(default_factory=dict, repr=False)

    def has(self, asset: str) -> bool:
        return bool(asset_files(self.home, asset))

    def memo(self, key: str, compute: Callable):
        """``compute()`` once per view (stored tables are read once for all gates)."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    def table(self, asset: str) -> pd.DataFrame:
        return self.memo(f"table:{asset}", lambda: read_asset(self.home, asset))

    @cached_property
    def lenscat_all(self) -> pd.DataFrame:
        from lensaudit.catalogs.lenscat_catalog import load_lenscat

        return load_lenscat()


@dataclass(frozen=True)
class GateSpec:
    name: str
    asset: str
    severity: str
    blocking: bool
    description: str
    evaluate: Callable[[StoreView], GateResult]
    plot: str = ""  # a PNG under $LENSAUDIT_HOME/plots/ that the asset draws for this gate


def _schema_gate(asset: str) -> GateSpec:
    def run(v: StoreView) -> GateResult:
        return schema_matches(asset, [pq.read_schema(f) for f in asset_files(v.home, asset)], SCHEMAS[asset])

    return GateSpec(f"{asset}_schema", asset, ERROR, True, f"stored {asset} matches its declared column schema", run)


def _guard(spec_name: str, asset: str, severity: str, fn):
    def run(v: StoreView) -> GateResult:
        try:
            return fn(v)
        except FileNotFoundError as exc:
            return cannot_compute(spec_name, asset, severity, str(exc))
        except (KeyError, ValueError) as exc:
            return cannot_compute(spec_name, asset, severity, f"{type(exc).__name__}: {exc}")
    return run


def _spec(name, asset, severity, blocking, description, fn, plot: str = "") -> GateSpec:
    return GateSpec(name, asset, severity, blocking, description, _guard(name, asset, severity, fn), plot)


def _shortcut_single(v: StoreView, which: int) -> GateResult:
    from lensaudit.cutouts.features import FEATURES
    from lensaudit.gates.shortcut_gates import feature_auc_table, single_feature_gates

    table = v.memo("shortcut_auc_table", lambda: feature_auc_table(v.table("shortcut_features"), FEATURES))
    return single_feature_gates(table, v.profile.shortcut_yellow, v.profile.shortcut_red)[which]


def _core_lr(v: StoreView) -> GateResult:
    from lensaudit.cutouts.features import core_pixels
    from lensaudit.cutouts.store import CutoutReader
    from lensaudit.gates.shortcut_gates import core_only_lr_gate

    index = v.table("cutouts")
    ok = index[index["cutout_ok"]].sort_values("galaxy_id")
    reader = CutoutReader(v.home / "cutout_store")
    parts = {}
    for split in ("train", "val"):
        rows = ok[ok["split"] == split]
        step = max(1, len(rows) // v.profile.core_lr_max_rows)
        rows = rows.iloc[::step]
        parts[split] = (core_pixels(reader.read(rows)) if len(rows) else np.zeros((0, 1)), rows["label"].to_numpy())
    return core_only_lr_gate(*parts["train"], *parts["val"], warn=v.profile.core_lr_warn)


def _realism(v: StoreView, which: str) -> list[GateResult]:
    from lensaudit.gates.realism_gates import background_ks_gates, colour_gates, snr_quantile_gates

    rec = v.table("injection_realism")
    inj, real = rec[rec["kind"] == "injected"], rec[rec["kind"] == "real"]
    if which == "snr":
        return snr_quantile_gates(inj["snr_combined"].to_numpy(float), real["snr_combined"].to_numpy(float))
    if which == "colour":
        keys = ("colour_g_r", "colour_r_z")
        return colour_gates({k: inj[k].to_numpy(float) for k in keys}, {k: real[k].to_numpy(float) for k in keys})
    bg = v.table("injection_realism_background")
    def pixels(kind):
        return [bg.loc[(bg["kind"] == kind) & (bg["band"] == b), "value"].to_numpy(float) for b in "grz"]
    inj_bg, plain_bg = pixels("injected"), pixels("plain")
    n = min(min(len(a) for a in inj_bg), min(len(a) for a in plain_bg))
    return background_ks_gates(np.stack([a[:n] for a in inj_bg]), np.stack([a[:n] for a in plain_bg]))


def _realism_spec(name: str, which: str, i: int, description: str) -> GateSpec:
    return _spec(name, "injection_realism", ERROR, True, description,
                 lambda v: v.memo(f"realism:{which}", lambda: _realism(v, which))[i], plot="injection_realism.png")


GATES: list[GateSpec] = [
    _schema_gate("lens_catalog"),
    _schema_gate("sweep_catalog"),
    _spec("sweep_catalog_unique_galaxy_id", "sweep_catalog", ERROR, True,
          "no galaxy_id in two rows or two sweeps (bricks straddle sweep boundaries)",
          lambda v: data_gates.unique_galaxy_ids(read_asset(v.home, "sweep_catalog", columns=["galaxy_id"])["galaxy_id"],
                                                 "sweep_catalog")),
    _schema_gate("positives"),
    _spec("positives_match_rate", "positives", WARN, False,
          "match rate of covered lenses and separation distribution",
          lambda v: data_gates.positives_match_rate(v.table("positives"), v.table("positives_unmatched"),
                                                    v.profile.min_match_rate, v.profile.match_radius_arcsec),
          plot="positives_separation.png"),
    _schema_gate("negative_pool"),
    _spec("no_negative_near_known_lens", "negative_pool", ERROR, True,
          "no negative within the exclusion radius of any lenscat entry",
          lambda v: data_gates.no_negative_near_known_lens(v.table("negative_pool"), v.lenscat_all,
                                                           v.profile.cuts.exclusion_radius_arcsec)),
    _spec("n1_rows_satisfy_cuts", "negative_pool", ERROR, True, "every N1 row satisfies every parity cut",
          lambda v: data_gates.n1_rows_satisfy_cuts(v.table("negative_pool"), v.profile.cuts)),
    _schema_gate("spatial_splits"),
    _spec("spatial_splits_splits_disjoint", "spatial_splits", ERROR, True,
          "no galaxy_id and no HEALPix pixel in two splits",
          lambda v: data_gates.splits_disjoint(v.table("spatial_splits"), "spatial_splits")),
    _spec("spatial_splits_split_proportions", "spatial_splits", ERROR, True,
          "train/val/test proportions within tolerance of 0.70/0.15/0.15",
          lambda v: data_gates.split_proportions_ok(v.table("spatial_splits"), v.profile.split_fractions,
                                                    v.profile.split_tolerance), plot="spatial_splits_sky.png"),
    _schema_gate("training_manifest"),
    _spec("training_manifest_splits_disjoint", "training_manifest", ERROR, True,
          "disjointness re-verified on the manifest rows",
          lambda v: data_gates.splits_disjoint(v.table("training_manifest"), "training_manifest")),
    _spec("manifest_ratio_per_stratum", "training_manifest", ERROR, True,
          "100:1 per (split, nobs_z_bin, type_bin) with shortfalls accounted",
          lambda v: data_gates.manifest_ratio(v.table("training_manifest"), v.table("training_manifest_shortfalls"),
                                              v.profile.manifest.negatives_per_positive,
                                              v.profile.max_shortfall_fraction)),
    _spec("manifest_n2_fraction", "training_manifest", ERROR, True, "N1:N2 = 85:15 over the manifest",
          lambda v: data_gates.manifest_n2_fraction(v.table("training_manifest"), v.profile.manifest.n2_fraction)),
    _spec("manifest_labels_and_weights", "training_manifest", ERROR, True,
          "labels, tiers, pools and sample weights consistent; galaxy_id unique",
          lambda v: data_gates.manifest_labels_and_weights(v.table("training_manifest"))),
    _schema_gate("cutouts"),
    _spec("cutouts_complete", "cutouts", ERROR, True,
          "every manifest row in the index, failures with reasons, failure rate within bound",
          lambda v: data_gates.cutouts_complete(v.table("training_manifest"), v.table("cutouts"),
                                                v.profile.max_cutout_failure_rate)),
    _schema_gate("shortcut_features"),
    _spec("shortcut_single_feature_red", "shortcut_features", ERROR, False,
          "no single feature separates positives from negatives (68% lower bound of max(AUC,1-AUC) <= 0.70)",
          lambda v: _shortcut_single(v, 0), plot="shortcut_feature_auc.png"),
    _spec("shortcut_single_feature_yellow", "shortcut_features", WARN, False,
          "no single feature flags (68% lower bound of max(AUC,1-AUC) <= 0.60)",
          lambda v: _shortcut_single(v, 1), plot="shortcut_feature_auc.png"),
    _spec("shortcut_core_only_lr", "shortcut_features", WARN, False,
          "logistic regression on the central r < 10 px pixels: val AUC <= 0.70", _core_lr),
    _schema_gate("injection_realism"),
    _realism_spec("realism_arc_snr_median", "snr", 0, "median arc annulus S/N, injected / real lenses in [0.5, 2]"),
    _realism_spec("realism_arc_snr_p10", "snr", 1, "p10 arc annulus S/N, injected / real lenses in [0.5, 2]"),
    _realism_spec("realism_arc_snr_p90", "snr", 2, "p90 arc annulus S/N, injected / real lenses in [0.5, 2]"),
    _realism_spec("realism_colour_g_r", "colour", 0, "median annulus g-r, injected vs real, within 0.2 mag"),
    _realism_spec("realism_colour_r_z", "colour", 1, "median annulus r-z, injected vs real, within 0.2 mag"),
    _realism_spec("realism_background_ks_g", "bg", 0, "outer-ring pixels, injected vs plain hosts, KS p > 0.05 (g)"),
    _realism_spec("realism_background_ks_r", "bg", 1, "outer-ring pixels, injected vs plain hosts, KS p > 0.05 (r)"),
    _realism_spec("realism_background_ks_z", "bg", 2, "outer-ring pixels, injected vs plain hosts, KS p > 0.05 (z)"),
]


def _evaluated(v: StoreView) -> dict[str, dict]:
    """evaluation.json of every profile architecture that has one."""
    from lensaudit.evaluation.run import report_json

    def load():
        out = {}
        for arch in v.profile.detector.archs:
            try:
                out[arch] = report_json(v.home, arch)
            except FileNotFoundError:
                continue
        return out
    return v.memo("detector_reports", load)


def _rows_disjoint(v: StoreView) -> GateResult:
    from lensaudit.detector.run import detector_dir
    from lensaudit.evaluation.run import scored_rows
    from lensaudit.gates.model_gates import evaluation_rows_disjoint

    used, test = {}, {}
    for arch in _evaluated(v):
        test[arch] = scored_rows(v.home, arch)
        p = detector_dir(v.home, arch) / "rows.parquet"
        if p.is_file():
            used[arch] = pd.read_parquet(p)
    return evaluation_rows_disjoint(used, test)


def _model_gates() -> list[GateSpec]:
    from lensaudit.gates import model_gates as mg

    return [
        _spec("detector_rows_disjoint", mg.ASSET, ERROR, True,
              "split disjointness re-verified on the exact rows trained, validated and scored", _rows_disjoint),
        _spec("detector_auc_better_than_chance", mg.ASSET, ERROR, True,
              "95% lower bound of the test ROC AUC > 0.5", lambda v: mg.auc_better_than_chance(_evaluated(v)),
              plot="detector_roc.png"),
        _spec("detector_metrics_have_intervals", mg.ASSET, ERROR, False,
              "every evaluation metric carries 68% and 95% intervals (or is marked insufficient)",
              lambda v: mg.metrics_have_intervals(_evaluated(v)), plot="detector_reliability.png"),
    ]


GATES += _model_gates()


def _adversarial(v: StoreView, which: str) -> GateResult:
    from lensaudit.gates import adversarial_gates as ag

    adv = v.table("adversarial_scores")
    part = adv[adv["test"] == {"null": "null_injection", "ring": "synthetic_ring", "suppress": "arc_suppression"}.get(
        which, "")]
    if which == "null":
        return ag.null_injection_ks(part["logit_after"], part["logit_before"])
    if which == "ring":
        return ag.synthetic_ring(part["logit_before"], part["logit_after"],
                                 float(v.table("completeness_table")["threshold_logit"].iloc[0]))
    if which == "suppress":
        return ag.arc_suppression(part["logit_before"], part["logit_after"])
    inj = v.table("completeness_injections")
    return ag.spearman_positive(inj["logit"], inj["theta_e_arcsec" if which == "theta_e" else "snr_combined"], which)


def _selection_gates() -> list[GateSpec]:
    from lensaudit.gates import selection_gates as sg

    adv = [("null", "adversarial_null_injection_ks", "null (zero-flux) injection scores ~ plain host scores: KS p > 0.05"),
           ("ring", "adversarial_synthetic_ring", "a lensing-free Gaussian ring pushes <= 5% of hosts over threshold"),
           ("suppress", "adversarial_arc_suppression", "real lenses with the arc annulus median-filled lose score"),
           ("theta_e", "adversarial_spearman_theta_e", "Spearman rho(score, theta_E) > 0 on injections"),
           ("snr", "adversarial_spearman_snr", "Spearman rho(score, arc annulus S/N) > 0 on injections")]
    return [
        _spec("injection_hosts_held_out", "injection_hosts", ERROR, True,
              "hosts are test-split negatives only (no train/val row or pixel, no positive)",
              lambda v: sg.hosts_held_out(v.table("injection_hosts"), v.table("training_manifest"))),
        _spec("injection_host_bins_populated", "injection_hosts", WARN, False,
              "every (PSF, depth) bin holds enough distinct hosts",
              lambda v: sg.host_bins_populated(v.table("injection_host_bins"))),
        _spec("completeness_table_valid", "completeness_table", ERROR, True,
              "385 cells, counts match the injections, Beta intervals, sufficient = n >= 200",
              lambda v: sg.completeness_table_valid(v.table("completeness_table"), v.table("completeness_injections")),
              plot="completeness_heatmaps.png"),
    ] + [_spec(name, "completeness_table", ERROR, False, desc, lambda v, w=which: _adversarial(v, w))
         for which, name, desc in adv]


GATES += _selection_gates()


def gates_for(asset: str) -> list[GateSpec]:
    return [g for g in GATES if g.asset == asset]


def evaluate_all(view: StoreView) -> list[tuple[GateSpec, GateResult | None]]:
    """Evaluate every gate whose asset is stored; None for assets never materialised."""
    return [(g, g.evaluate(view) if view.has(g.asset) else None) for g in GATES]


from lensaudit.gates import integrity_gates  # noqa: E402 - the integrity family registers last

GATES += integrity_gates.specs()
