"""Gates of the selection function: host split, the completeness table's integrity."""

from __future__ import annotations

import numpy as np
import pandas as pd

from lensaudit.gates.gate_spec import GateSpec, StoreView, audit_sample, spec, with_audit_rng
from lensaudit.gates.result import ERROR, WARN, GateResult, cannot_compute
from lensaudit.evaluation.metrics import beta_bounds
from lensaudit.selection.completeness import detections
from lensaudit.spec import INTERVAL_LEVELS, OPERATING_POINTS, PRIMARY, SELECTION, interval_tag
from lensaudit.selection.grid import N_CELLS
from lensaudit.selection.hosts import host_leaks
from lensaudit.tables import table_asset


def hosts_held_out(hosts: pd.DataFrame, manifest: pd.DataFrame) -> GateResult:
    """Every host is a test-split negative outside every train/val HEALPix pixel (blocking)."""
    name = "injection_hosts_held_out"
    if hosts.empty:
        return cannot_compute(name, "injection_hosts", ERROR, "no hosts", "0 leaked hosts")
    leaks = host_leaks(hosts, manifest)
    n_bad = len(set(leaks["not_in_test_split"]) | set(leaks["positives"]) | set(leaks["in_train_or_val_pixel"]))
    return GateResult(name, "injection_hosts", n_bad == 0, ERROR, float(n_bad), "0 hosts from train/val or positives",
                      bound=(None, 0.0), details={k: (v[:10] if isinstance(v, list) else v) for k, v in leaks.items()})


def host_bins_populated(bins: pd.DataFrame) -> GateResult:
    """Flags (PSF, depth) bins with too few distinct hosts (WARN: the cells are reported, not filled)."""
    name = "injection_host_bins_populated"
    thin = bins[bins["too_few"]]
    return GateResult(name, "injection_hosts", thin.empty, WARN, float(len(thin)), "0 thin (PSF, depth) bins",
                      bound=(None, 0.0), details={"thin_bins": thin[["psf_lo", "psf_hi", "depth_lo", "depth_hi", "n_hosts"]].to_dict("records")[:40],
                       "bins": int(len(bins))})


def completeness_table_valid(table: pd.DataFrame, injections: pd.DataFrame, threshold_logit: float | None,
                             seed: int = 0, others: dict | None = None) -> GateResult:
    """385 cells; the table's threshold is the operating threshold recomputed from the
    validation scores; n, k and n_host_fp agree with the per-injection table under the
    detection rule (injected crosses, host does not); intervals are ``beta_bounds``;
    ``sufficient`` is n >= the spec's 200; and every column equals the table that
    ``completeness.completeness_table`` recomputes from the injections (the completeness itself,
    the observable fraction, the conditional recall, the host-cluster bootstrap with the
    selection's ``seed``: the same numbers on any device).  ``others``: {operating point name:
    (its stored table, its threshold recomputed from the validation scores or None)}, each
    recomputed the same way."""
    name = "completeness_table_valid"
    if table.empty:
        return cannot_compute(name, "completeness_table", ERROR, "empty table", f"{N_CELLS} valid cells")
    if threshold_logit is None:
        return cannot_compute(name, "completeness_table", ERROR, "no operating threshold from the validation scores",
                              f"{N_CELLS} valid cells")
    problems = {}
    if len(table) != N_CELLS or table["cell"].nunique() != N_CELLS:
        problems["cells"] = f"{len(table)} rows, {table['cell'].nunique()} distinct cells"
    stored_thr = float(table["threshold_logit"].iloc[0])
    if not np.isclose(stored_thr, threshold_logit, rtol=0, atol=1e-9):
        problems["threshold"] = f"table threshold {stored_thr:.6g} != validation-split threshold {threshold_logit:.6g}"
    det, host_fp = detections(injections, threshold_logit)
    cnt = pd.DataFrame({"cell": injections["cell"].to_numpy(int), "n": ~host_fp, "k": det, "fp": host_fp}
                       ).groupby("cell").sum()
    t = table.set_index("cell")
    got = cnt.reindex(t.index, fill_value=0)
    for col, stored in (("n", "n"), ("k", "k"), ("fp", "n_host_fp")):
        if stored not in t or not (got[col].to_numpy() == t[stored].to_numpy()).all():
            problems[f"counts_{stored}"] = f"{stored} differs from the per-injection table"
    for level in INTERVAL_LEVELS:
        tag = interval_tag(level)
        lo, hi = beta_bounds(t["k"], t["n"], level)
        if not (np.allclose(lo, t[f"lo{tag}"], atol=1e-9) and np.allclose(hi, t[f"hi{tag}"], atol=1e-9)):
            problems[f"interval{tag}"] = "differs from the Beta(k+1, n-k+1) interval"
    if not (t["sufficient"] == (t["n"] >= SELECTION.sufficient_n)).all():
        problems["sufficient"] = f"not n >= {SELECTION.sufficient_n}"
    if not problems:
        problems.update(recomputed_differences(table, injections, threshold_logit, str(table["threshold_name"].iloc[0]),
                                               seed))
    for point, (other, thr) in (others or {}).items():
        if thr is None:
            problems[point] = "no threshold at this operating point from the validation scores, yet a table is stored"
        elif other.empty:
            problems[point] = f"no table stored, though the validation split resolves this point ({thr:.6g})"
        elif not np.isclose(float(other["threshold_logit"].iloc[0]), thr, rtol=0, atol=1e-9):
            problems[point] = f"threshold is not the validation split's {thr:.6g}"
        else:
            problems.update({f"{point}: {k}": m for k, m in
                             recomputed_differences(other, injections, thr, point, seed).items()})
    return GateResult(name, "completeness_table", not problems, ERROR, float(len(problems)), "0 problems",
                      bound=(None, 0.0), details={"problems": problems, "cells_with_injections": int((t["n"] > 0).sum()),
                       "sufficient_cells": int(t["sufficient"].sum()), "injections": int(len(injections)),
                       "host_false_positive_injections": int(host_fp.sum()), "threshold_logit": threshold_logit})


def recomputed_differences(table: pd.DataFrame, injections: pd.DataFrame, threshold_logit: float, point: str,
                           seed: int) -> dict[str, str]:
    """{column: what differs} between a stored completeness table and the one recomputed from the
    injections at ``threshold_logit`` (floats to 1e-9, NaN where NaN; every other column equal)."""
    from lensaudit.selection.completeness import completeness_table

    want = completeness_table(injections, threshold_logit, point, seed=seed).set_index("cell").sort_index()
    got = table.set_index("cell").sort_index()
    if len(got) != len(want) or not (got.index == want.index).all():
        return {f"recomputed_{c}": "missing" if c not in got else "other cells" for c in want.columns}
    return {f"recomputed_{c}": bad if bad == "missing" else f"{bad} cells differ from the table recomputed from the "
            "injections" for c, bad in column_differences(got, want).items()}


def column_differences(got: pd.DataFrame, want: pd.DataFrame) -> dict[str, int | str]:
    """{column of ``want``: "missing", or how many rows differ} between a stored table and its
    recomputation, both indexed alike (floats to 1e-9, NaN where NaN; every other column equal)."""
    out: dict[str, int | str] = {}
    for col in want.columns:
        if col not in got:
            out[col] = "missing"
            continue
        a, b = got[col].to_numpy(), want[col].to_numpy()
        if np.issubdtype(b.dtype, np.floating):
            bad = int((~np.isclose(a.astype(float), b, rtol=0, atol=1e-9, equal_nan=True)).sum())
        else:
            bad = int((a != b).sum())
        if bad:
            out[col] = bad
    return out


def missed_injections_recomputed(missed: pd.DataFrame, injections: pd.DataFrame,
                                 threshold_logit: float | None) -> GateResult:
    """The stored missed-injection list (``failure_missed_injections``) is the one
    ``failure_modes.attribute_misses`` recomputes from the injections at the primary threshold
    recomputed from the validation scores: no miss left out, no row that is not a miss, no
    row twice, every cause the rule's."""
    from lensaudit.selection.failure_modes import attribute_misses

    name, asset = "failure_missed_injections_recomputed", "failure_modes"
    threshold = "0 rows differ from the misses recomputed from the injections"
    if threshold_logit is None:
        return cannot_compute(name, asset, ERROR, "no operating threshold from the validation scores", threshold)
    if injections.empty:
        return cannot_compute(name, asset, ERROR, "no injections", threshold)
    want = attribute_misses(injections, threshold_logit).set_index("injection_id")["cause"].astype(str)
    if "cause" not in missed or "injection_id" not in missed:
        return cannot_compute(name, asset, ERROR, "the stored list has no injection_id or cause column", threshold)
    got = missed.drop_duplicates("injection_id").set_index("injection_id")["cause"].astype(str)
    both = want.index.intersection(got.index)
    problems = {"missed_left_out": want.index.difference(got.index),
                "listed_but_not_missed": got.index.difference(want.index),
                "cause_differs": both[want.loc[both].to_numpy() != got.loc[both].to_numpy()],
                "listed_twice": pd.Index(missed.loc[missed["injection_id"].duplicated(), "injection_id"])}
    n_bad = sum(len(ids) for ids in problems.values())
    return GateResult(name, asset, n_bad == 0, ERROR, float(n_bad), threshold, bound=(None, 0.0),
                      details={"rows": {"stored": int(len(missed)), "recomputed": int(len(want))},
                               "problems": {k: len(ids) for k, ids in problems.items()},
                               "examples": {k: ids.astype(str).tolist()[:5] for k, ids in problems.items() if len(ids)},
                               "threshold_logit": threshold_logit})


def operating_thresholds_all(v: StoreView) -> dict[str, float | None]:
    """{operating point: its threshold logit, None where the validation split cannot resolve it},
    recomputed from the stored validation scores, never read from a producer's summary."""
    from lensaudit.evaluation.operating import operating_thresholds, threshold_logit
    from lensaudit.evaluation.run import val_scores

    def compute():
        val = val_scores(v.home, v.profile.detector.audit_arch)
        ops = operating_thresholds(val["logit"].to_numpy(float), val["label"].to_numpy(int))
        return {p.name: threshold_logit(ops, p) for p in OPERATING_POINTS}
    return v.memo("operating_thresholds_all", compute)


def _other_points(v: StoreView) -> dict:
    """{point: (stored table, recomputed threshold)} for every operating point but the primary
    whose table is stored or whose threshold the validation split resolves."""
    from lensaudit.store import asset_files
    from lensaudit.tables import read_table

    where = v._where("completeness_table")  # an audit folder's own tables, never the home's beside them
    thresholds = operating_thresholds_all(v)
    out = {}
    for point in OTHER_POINT_TABLES:
        stored = bool(asset_files(where, OTHER_POINT_TABLES[point]))
        if stored or thresholds[point] is not None:
            out[point] = (read_table(where, OTHER_POINT_TABLES[point]) if stored else pd.DataFrame(), thresholds[point])
    return out


def operating_threshold(v: StoreView) -> float | None:
    """The primary operating threshold (the spec's FPR, ``lensaudit.spec.PRIMARY``) recomputed
    from the stored validation scores."""
    return operating_thresholds_all(v)[PRIMARY.name]


#: {operating point: its completeness table} for every point but the primary (whose table is the asset)
OTHER_POINT_TABLES = {p.name: table_asset(p.name) for p in OPERATING_POINTS if p.name != PRIMARY.name}
REDERIVE_ROWS = 32  # injections re-derived evenly spaced in injection_id order (and as many drawn at random)
#: matched-filter S/N, magnification and noise correlation re-derived on the CPU vs stored: the renderers agree
#: to <= 1 % in flux (a GPU's fused renderer vs the CPU's), so 2 %; a units slip is orders of magnitude
REDERIVE_RTOL = 2e-2
#: stored minus re-derived injection logit: the re-injection draws its own arc noise (the asset's stream
#: cannot be replayed for a sample), so only the median shift and gross outliers are judged.  On the demo
#: home (CPU, 64 injections): median -0.0009, largest |difference| 0.12.  The row bound is set by the tail:
#: all 6,160 injections of a demo home (6361255) re-injected with fresh arc noise, twice: |difference| 99.9th
#: percentile 0.92-0.94, largest 1.35-1.51, 5-6 rows beyond 1.0 per redraw -- with a bound of 1.0 a healthy
#: home failed ~5 % of gate runs (a 64-row sample).  3.0 is twice the largest seen; a forged row beyond it is red
LOGIT_MEDIAN_TOL = 0.1
LOGIT_ROW_TOL = 3.0


def injection_hosts_of(v: StoreView, galaxy_ids: pd.Series):
    """(their distinct ``injection_hosts`` rows, those hosts' stamps as a float32 tensor, each id's
    position among them) for the hosts of some injections; None if one is not an injection host."""
    import torch

    from lensaudit.cutouts.store import CutoutReader

    hosts = v.table("injection_hosts").drop_duplicates("galaxy_id").set_index("galaxy_id")
    uniq = pd.Index(pd.unique(galaxy_ids))
    if not uniq.isin(hosts.index).all():
        return None
    host_rows = hosts.loc[uniq].reset_index()
    stamps = torch.from_numpy(CutoutReader(v.home / "cutout_store").read(host_rows.assign(cutout_ok=True)))
    return host_rows, stamps, uniq.get_indexer(galaxy_ids)


def injections_rederived(v: StoreView, rng: np.random.Generator, n_rows: int = REDERIVE_ROWS) -> GateResult:
    """Every injection's ``observable`` is ``observable(arc_snr_matched)``; a sample of
    injections is re-injected on the CPU (``inject.inject_and_score``: the same parameters,
    host and PSF model) and its noise-free numbers (magnification, matched-filter S/N per band
    and combined, noise correlation) equal the stored ones within ``REDERIVE_RTOL``; with the
    home's own detector, the hosts' logits re-score within the GPU tolerance of
    ``integrity_gates.RESCORE_TOL`` and the injections'
    logits differ from the stored ones by a median within ``LOGIT_MEDIAN_TOL`` and by at most
    ``LOGIT_ROW_TOL`` (the arc noise is drawn anew)."""
    from lensaudit.injection.visibility import observable
    from lensaudit.selection.failure_run import PARAM_KEYS
    from lensaudit.selection.inject import inject_and_score
    from lensaudit.selection.adversarial import score_batches
    from lensaudit.selection.psfex_psfs import injection_psfs
    from lensaudit.survey.instrument import BANDS

    name, asset = "completeness_injections_rederived", "completeness_table"
    threshold = (f"observable = f(matched S/N) on every row; {2 * n_rows} re-injected rows within {REDERIVE_RTOL:g} "
                 f"(noise-free numbers), logit median shift <= {LOGIT_MEDIAN_TOL:g}")
    inj = v.table("completeness_injections")
    if inj.empty:
        return cannot_compute(name, asset, ERROR, "no injections", threshold)
    flag = observable(inj["arc_snr_matched"].to_numpy(float)) != inj["observable"].to_numpy(bool)
    order = inj.sort_values("injection_id", kind="stable").reset_index(drop=True)
    s = order.iloc[audit_sample(len(order), n_rows, rng)].reset_index(drop=True)
    got = injection_hosts_of(v, s["galaxy_id"])
    if got is None:
        return cannot_compute(name, asset, ERROR, "an injection's host is not an injection_hosts row", threshold)
    host_rows, stamps, pos = got
    sel, det = v.profile.selection, v.profile.detector
    own = det.audit_arch in det.archs  # an external detector's logits are its own business: not re-scored here
    model, crop = None, 64
    if own:
        from lensaudit.selection.run import load_detector

        model, _, crop = load_detector(v.home, v.profile, "cpu")
    psf = injection_psfs(sel.psf_model, sel.psfex_models, sel.seed)
    res = inject_and_score(model if own else _no_detector(), stamps, pos, s[list(PARAM_KEYS)], host_rows, crop, "cpu",
                           sel.seed, chunk=len(s), psf=psf)
    cols = ["magnification", "arc_snr_matched", *(f"arc_snr_matched_{b}" for b in BANDS),
            *(f"noise_corr_{b}" for b in BANDS)]
    want, got = s[cols].to_numpy(float), res[cols].to_numpy(float)
    off = ~np.isclose(got, want, rtol=REDERIVE_RTOL, atol=1e-9, equal_nan=True)
    details = {"rows": int(len(inj)), "observable_not_its_matched_snr": int(flag.sum()), "rederived": int(len(s)),
               "noise_free_off": {c: int(off[:, i].sum()) for i, c in enumerate(cols) if off[:, i].any()},
               "examples": s.loc[off.any(axis=1), "injection_id"].astype(str).head(5).tolist()}
    n_bad = int(flag.sum()) + int(off.any(axis=1).sum())
    if own:
        from lensaudit.gates.integrity_gates import RESCORE_TOL

        hl = score_batches(model, stamps, crop, "cpu")[pos]
        atol, rtol = RESCORE_TOL["cuda"]  # the device the hosts were scored on is not recorded: the looser bound
        host_off = ~(np.abs(hl - s["host_logit"].to_numpy(float)) <= atol + rtol * np.abs(hl))
        d = s["logit"].to_numpy(float) - res["logit"].to_numpy(float)
        median = float(np.median(d))
        rows_off = ~(np.abs(d) <= LOGIT_ROW_TOL)
        n_bad += int(host_off.sum()) + int(rows_off.sum()) + int(not abs(median) <= LOGIT_MEDIAN_TOL)
        details.update(host_logits_off=int(host_off.sum()), logit_median_shift=median,
                       logit_rows_beyond_row_tol=int(rows_off.sum()), max_abs_logit_difference=float(np.abs(d).max()))
    else:
        details["logits"] = f"not re-scored: {det.audit_arch} is an external detector"
    return GateResult(name, asset, n_bad == 0, ERROR, float(n_bad), threshold, details, bound=(None, 0.0))


def _no_detector():
    """A ``RawScorer`` standing in for an external detector where only the noise-free numbers
    are re-derived (its logits, zeros, are not compared)."""
    import torch

    from lensaudit.detector.scorer import RawScorer

    class NoDetector(RawScorer):
        name = "none"

        def score_raw(self, stamps):
            return torch.zeros(len(stamps))
    return NoDetector()


def operating_point_text() -> str:
    """The operating threshold as the gate descriptions name it."""
    return f"the validation-split FPR-{PRIMARY.target_fpr:g} threshold"


def specs() -> list[GateSpec]:
    """GateSpecs of this family (concatenated by ``lensaudit.gates.registry``)."""
    return [
        spec("injection_hosts_held_out", "injection_hosts", ERROR, True,
             "hosts are test-split negatives only (no train/val row or pixel, no positive)",
             lambda v: hosts_held_out(v.table("injection_hosts"), v.table("training_manifest"))),
        spec("injection_host_bins_populated", "injection_hosts", WARN, False,
             "every (PSF, depth) bin holds enough distinct hosts",
             lambda v: host_bins_populated(v.table("injection_host_bins"))),
        spec("completeness_table_valid", "completeness_table", ERROR, True,
             f"{N_CELLS} cells at {operating_point_text()} (recomputed from the validation scores), counts match the "
             f"injections under the detection rule, Beta intervals, sufficient = n >= {SELECTION.sufficient_n}; every "
             "column, and every other operating point's table, equal to the tables recomputed from the injections",
             lambda v: completeness_table_valid(v.table("completeness_table"), v.table("completeness_injections"),
                                                operating_threshold(v), v.profile.selection.seed, _other_points(v)),
             plot="completeness_heatmaps.png"),
        spec("failure_missed_injections_recomputed", "failure_modes", ERROR, True,
             f"the missed injections and their causes are those recomputed from the injections at "
             f"{operating_point_text()} (recomputed from the validation scores)",
             lambda v: missed_injections_recomputed(v.table("failure_missed_injections"),
                                                    v.table("completeness_injections"), operating_threshold(v))),
        spec("completeness_injections_rederived", "completeness_table", ERROR, True,
             f"observable equals the matched-S/N rule on every injection; {2 * REDERIVE_ROWS} injections ({REDERIVE_ROWS} "
             f"evenly spaced, as many at random) re-injected on the CPU reproduce their magnification, matched-filter S/N "
             f"and noise correlation within {REDERIVE_RTOL:g}, their hosts' logits, and their logits up to the arc noise "
             f"(median shift <= {LOGIT_MEDIAN_TOL:g}, every row within {LOGIT_ROW_TOL:g})", with_audit_rng(injections_rederived)),
    ]
