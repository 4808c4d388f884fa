"""Every gate, bound to the stored assets it judges.

``GATES`` is the single list that both the Dagster asset checks (``assets/_wiring``, one
multi-asset check per asset) and the ``lensaudit gates`` command evaluate, so a gate is
written once.  The gate type and the stored-data view are in ``lensaudit.gates.gate_spec``;
gate families with their own ``specs()`` (parity, integrity) are appended at the end.
"""

from __future__ import annotations


import numpy as np
import pandas as pd

from lensaudit.gates.gate_spec import GateSpec, StoreView, schema_gate as _schema_gate, spec as _spec
from lensaudit.gates import data_gates, integrity_gates, parity_gates
from lensaudit.gates.result import ERROR, WARN, GateResult, cannot_compute
from lensaudit.spec import DATA, MODEL, REALISM as R, negative_cuts
from lensaudit.store import read_asset
from lensaudit.survey.instrument import BANDS


def _shortcut_single(v: StoreView, which: int) -> GateResult:
    from lensaudit.cutouts.features import FEATURES
    from lensaudit.gates.shortcut_gates import feature_auc_table, single_feature_gates

    table = v.memo("shortcut_auc_table", lambda: feature_auc_table(v.table("shortcut_features"), FEATURES))
    return single_feature_gates(table, DATA.shortcut_yellow, DATA.shortcut_red)[which]


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
    return core_only_lr_gate(*parts["train"], *parts["val"], warn=DATA.core_lr_warn)


def _realism(v: StoreView, which: str) -> list[GateResult]:
    from lensaudit.gates.realism_gates import arc_noise_gates, colour_gates, snr_quantile_gates

    if which == "noise":
        noise = v.table("injection_realism_arc_noise")
        return arc_noise_gates([noise.loc[noise["band"] == b, "value"].to_numpy(float) for b in BANDS])
    rec = v.table("injection_realism")
    inj, real = rec[rec["kind"] == "injected"], rec[rec["kind"] == "real"]
    if which == "snr":
        return snr_quantile_gates(inj["snr_combined"].to_numpy(float), real["snr_combined"].to_numpy(float))
    keys = ("colour_g_r", "colour_r_z", "colour_g_r_err", "colour_r_z_err", "snr_g", "snr_r", "snr_z")
    return colour_gates({k: inj[k].to_numpy(float) for k in keys}, {k: real[k].to_numpy(float) for k in keys})


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
                                                    DATA.min_match_rate, DATA.match_radius_arcsec),
          plot="positives_separation.png"),
    _schema_gate("negative_pool"),
    _spec("no_negative_near_known_lens", "negative_pool", ERROR, True,
          "no negative within the exclusion radius of any lenscat entry",
          lambda v: data_gates.no_negative_near_known_lens(v.table("negative_pool"), v.lenscat_all,
                                                           DATA.exclusion_radius_arcsec)),
    _spec("n1_rows_satisfy_cuts", "negative_pool", ERROR, True, "every N1 row satisfies every parity cut",
          lambda v: data_gates.n1_rows_satisfy_cuts(v.table("negative_pool"), negative_cuts())),
    _schema_gate("spatial_splits"),
    _spec("spatial_splits_splits_disjoint", "spatial_splits", ERROR, True,
          "no galaxy_id and no HEALPix pixel in two splits",
          lambda v: data_gates.splits_disjoint(v.table("spatial_splits"), "spatial_splits")),
    _spec("spatial_splits_split_proportions", "spatial_splits", ERROR, True,
          "train/val/test proportions within +-{:g} of {}".format(
              DATA.split_tolerance, "/".join(f"{x:.2f}" for x in DATA.split_fractions.values())),
          lambda v: data_gates.split_proportions_ok(v.table("spatial_splits"), DATA.split_fractions,
                                                    DATA.split_tolerance), plot="spatial_splits_sky.png"),
    _schema_gate("training_manifest"),
    _spec("training_manifest_splits_disjoint", "training_manifest", ERROR, True,
          "disjointness re-verified on the manifest rows",
          lambda v: data_gates.splits_disjoint(v.table("training_manifest"), "training_manifest")),
    _spec("manifest_ratio_per_stratum", "training_manifest", ERROR, True,
          f"{DATA.negatives_per_positive}:1 per (split, nobs_z_bin, type_bin) with shortfalls accounted, total "
          f"shortfall <= {DATA.max_shortfall_fraction}",
          lambda v: data_gates.manifest_ratio(v.table("training_manifest"), v.table("training_manifest_shortfalls"),
                                              DATA.negatives_per_positive, DATA.max_shortfall_fraction)),
    _spec("manifest_n2_fraction", "training_manifest", ERROR, True,
          f"N2 fraction of the negatives {DATA.n2_fraction:g} +- {DATA.n2_tolerance:g}",
          lambda v: data_gates.manifest_n2_fraction(v.table("training_manifest"), DATA.n2_fraction, DATA.n2_tolerance)),
    _spec("manifest_labels_and_weights", "training_manifest", ERROR, True,
          "labels, tiers, pools and sample weights consistent; galaxy_id unique",
          lambda v: data_gates.manifest_labels_and_weights(v.table("training_manifest"))),
    _schema_gate("cutouts"),
    _spec("cutouts_complete", "cutouts", ERROR, True,
          "every manifest row in the index, failures with reasons, failure rate within bound",
          lambda v: data_gates.cutouts_complete(v.table("training_manifest"), v.table("cutouts"),
                                                DATA.max_cutout_failure_rate)),
    _schema_gate("shortcut_features"),
    _spec("shortcut_single_feature_red", "shortcut_features", ERROR, False,
          f"no single feature separates positives from negatives ({DATA.shortcut_level:.0%} lower bound of max(AUC,1-AUC) "
          f"<= {DATA.shortcut_red})",
          lambda v: _shortcut_single(v, 0), plot="shortcut_feature_auc.png"),
    _spec("shortcut_single_feature_yellow", "shortcut_features", WARN, False,
          f"no single feature flags ({DATA.shortcut_level:.0%} lower bound of max(AUC,1-AUC) <= {DATA.shortcut_yellow})",
          lambda v: _shortcut_single(v, 1), plot="shortcut_feature_auc.png"),
    _spec("shortcut_core_only_lr", "shortcut_features", WARN, False,
          f"logistic regression on the central r < 10 px pixels: val AUC <= {DATA.core_lr_warn}", _core_lr),
    _schema_gate("injection_realism"),
    _realism_spec("realism_arc_snr_median", "snr", 0, "median unclipped arc annulus S/N (N(0,1) on noise), "
                  f"max(q, {R.snr_floor:g}) injected / real lenses in [{R.snr_ratio_lo:g}, {R.snr_ratio_hi:g}]"),
] + [_realism_spec(f"realism_arc_snr_{q}", "snr", i, f"{q} unclipped arc annulus S/N, {R.snr_level:.0%} bootstrap "
                   f"interval of max(q, {R.snr_floor:g}) injected / real meets [{R.snr_ratio_lo:g}, {R.snr_ratio_hi:g}]")
     for i, q in ((1, "p10"), (2, "p90"))
] + [_realism_spec(f"realism_colour_{b1}_{b2}", "colour", i, f"median arc-only {b1}-{b2} (injected model vs "
                   f"host-subtracted real arcs, S/N >= {R.colour_min_snr:g} in {b1} and {b2}) within "
                   f"{R.colour_tol_mag:g} mag")
     for i, (b1, b2) in enumerate((("g", "r"), ("r", "z")))
] + [_realism_spec(f"realism_arc_noise_{b}", "noise", i, "noise added in the arc footprint / real-pixel Poisson "
                   f"sigma: KS distance to N(0,1) <= {R.noise_max_ks:g} ({b})")
     for i, b in enumerate(BANDS)]


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
              f"95% lower bound of the test ROC AUC > {MODEL.min_auc_lo95:g}", lambda v: mg.auc_better_than_chance(_evaluated(v)),
              plot="detector_roc.png"),
        _spec("detector_metrics_have_intervals", mg.ASSET, ERROR, False,
              "every evaluation metric carries 68% and 95% intervals (or is marked insufficient)",
              lambda v: mg.metrics_have_intervals(_evaluated(v)), plot="detector_reliability.png"),
    ]


GATES += _model_gates()


def _operating_threshold(v: StoreView) -> float | None:
    """The primary operating threshold recomputed from the stored validation scores (the
    spec's FPR, ``lensaudit.spec.PRIMARY``), never read from a producer's summary."""
    from lensaudit.evaluation.operating import operating_thresholds, threshold_logit
    from lensaudit.evaluation.run import val_scores
    from lensaudit.spec import PRIMARY

    def compute():
        val = val_scores(v.home, v.profile.detector.audit_arch)
        return threshold_logit(operating_thresholds(val["logit"].to_numpy(float), val["label"].to_numpy(int)), PRIMARY)
    return v.memo("operating_threshold", compute)


def _adversarial(v: StoreView, which: str) -> GateResult:
    from lensaudit.gates import adversarial_gates as ag
    from lensaudit.selection.completeness import detections

    if which in ("null", "ring", "suppress"):
        adv = v.table("adversarial_scores")
        part = adv[adv["test"] == {"null": "null_control", "ring": "synthetic_ring", "suppress": "arc_suppression"}[which]]
        if which == "null":
            return ag.null_controls(part["logit_after"], part["logit_before"], part["added_rms_nmgy"],
                                    _operating_threshold(v))
        if which == "ring":
            return ag.synthetic_ring(part["logit_before"], part["logit_after"], _operating_threshold(v))
        return ag.arc_suppression(part["logit_before"], part["logit_after"])
    t = _operating_threshold(v)
    inj = v.table("completeness_injections")
    if t is None:
        return cannot_compute(f"adversarial_trend_{which}", ag.ASSET, ERROR,
                              "no operating threshold from the validation scores")
    det, host_fp = detections(inj, t)
    keep = ~host_fp
    x = inj["theta_e_arcsec" if which == "theta_e" else "arc_snr_matched"].to_numpy(float)
    return ag.trend_gate(x[keep], inj["logit"].to_numpy(float)[keep], det[keep], inj["galaxy_id"].to_numpy()[keep], which)


def _selection_gates() -> list[GateSpec]:
    from lensaudit.gates import selection_gates as sg
    from lensaudit.spec import PRIMARY, SELECTION as S

    op = f"the validation-split FPR-{PRIMARY.target_fpr:g} threshold"
    adv = [("null", "adversarial_null_controls",
            f"null controls (arc noise, no arc) score low: mean p <= {S.null_max_mean_probability}, "
            f"<= {S.null_max_pushed_fraction:.0%} pushed over {op}, never identical to the host"),
           ("ring", "adversarial_synthetic_ring",
            f"a lensing-free Gaussian ring pushes <= {S.ring_max_pushed_fraction:.0%} of hosts over {op}"),
           ("suppress", "adversarial_arc_suppression",
            f"real test lenses with the arc annulus median-filled lose score ({S.suppression_level:.0%} interval > 0)"),
           ("theta_e", "adversarial_trend_theta_e",
            f"completeness rises with theta_E at {op}: {S.trend_one_sided_level:.0%} lower bounds of Spearman rho "
            "and of the top-minus-bottom tercile completeness > 0 (host-cluster bootstrap)"),
           ("snr", "adversarial_trend_snr",
            f"completeness rises with the arc's matched-filter S/N at {op}: {S.trend_one_sided_level:.0%} lower "
            "bounds of Spearman rho and of the top-minus-bottom tercile completeness > 0 (host-cluster bootstrap)")]
    return [
        _spec("injection_hosts_held_out", "injection_hosts", ERROR, True,
              "hosts are test-split negatives only (no train/val row or pixel, no positive)",
              lambda v: sg.hosts_held_out(v.table("injection_hosts"), v.table("training_manifest"))),
        _spec("injection_host_bins_populated", "injection_hosts", WARN, False,
              "every (PSF, depth) bin holds enough distinct hosts",
              lambda v: sg.host_bins_populated(v.table("injection_host_bins"))),
        _spec("completeness_table_valid", "completeness_table", ERROR, True,
              f"385 cells at {op} (recomputed from the validation scores), counts match the injections under the "
              f"detection rule, Beta intervals, sufficient = n >= {S.sufficient_n}",
              lambda v: sg.completeness_table_valid(v.table("completeness_table"), v.table("completeness_injections"),
                                                    _operating_threshold(v)),
              plot="completeness_heatmaps.png"),
    ] + [_spec(name, "completeness_table", ERROR, False, desc, lambda v, w=which: _adversarial(v, w))
         for which, name, desc in adv]


GATES += _selection_gates()


def gates_for(asset: str) -> list[GateSpec]:
    return [g for g in GATES if g.asset == asset]


def evaluate_all(view: StoreView) -> list[tuple[GateSpec, GateResult | None]]:
    """Evaluate every gate whose asset is stored; None for assets never materialised."""
    return [(g, g.evaluate(view) if view.has(g.asset) else None) for g in GATES]

GATES += parity_gates.specs()
GATES += integrity_gates.specs()
