"""Run the selection function on a lensaudit home (no Dagster here; ``assets/selection.py`` wires it).

Writes, each as ``data.parquet`` in its own folder under ``$LENSAUDIT_HOME/assets/``:
``injection_hosts`` (+ ``injection_host_bins``), ``completeness_table`` (+ ``data.csv``;
the primary operating threshold of ``lensaudit.spec``, FPR 1e-2 chosen on the validation
split), ``completeness_table_<point>`` (+ csv) for every other operating point the
validation split resolves, ``completeness_injections`` (every injection: host, parameters,
S/N, the injected stamp's logit and its host's logit, observable) and ``adversarial_scores``
(null controls, synthetic ring and arc-suppression scores).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from lensaudit.config import Profile
from lensaudit.cutouts.store import CutoutReader
from lensaudit.detector.scorer import scoring_stage
from lensaudit.evaluation.operating import operating_thresholds
from lensaudit.evaluation.run import load_frozen_detector, val_scores
from lensaudit.selection.adversarial import null_control_plan, ring_scores, score_batches, suppress_annulus
from lensaudit.selection.bootstrap_draws import BootstrapDraws
from lensaudit.selection.completeness import completeness_table
from lensaudit.injection.visibility import combined, observable
from lensaudit.selection.hosts import bin_counts, select_hosts
from lensaudit.selection.psfex_psfs import injection_psfs
from lensaudit.selection.inject import BRACKETS, inject_and_score, plan_and_parameters
from lensaudit.spec import PRIMARY, SELECTION
from lensaudit.store import partition_file, safe_join, write_parquet_atomic, atomic_path
from lensaudit.tables import read_table
from lensaudit.tables import readable_table, table_asset


def write_table(df: pd.DataFrame, home: Path, asset: str, csv: bool = False) -> Path:
    """Write an asset's table or one of its declared side tables (``lensaudit.tables.SIDE_TABLES``)."""
    p = write_parquet_atomic(df, partition_file(home, readable_table(asset), "data"))
    if csv:
        with atomic_path(p.with_suffix(".csv")) as tmp:
            df.to_csv(tmp, index=False, float_format="%.10g")
    return p


def build_hosts(home: Path, profile: Profile) -> dict:
    hosts, left_out = select_hosts(read_table(home, "training_manifest"), read_table(home, "cutouts"))
    bins = bin_counts(hosts, profile.selection.min_hosts_per_bin)
    write_table(hosts, home, "injection_hosts")
    write_table(bins, home, "injection_host_bins")
    return {"hosts": len(hosts), "left_out": left_out, "bins_with_hosts": int((bins["n_hosts"] > 0).sum()),
            "thin_bins": int(bins["too_few"].sum())}


def thresholds(home: Path, arch: str) -> dict[str, float]:
    """{operating point name: logit} for every point the stored validation scores resolve
    (recomputed from ``val_scores.parquet``, the rows the thresholds are defined on); a
    clear error when the primary one is insufficient (no completeness can be measured)."""
    val = val_scores(home, arch)
    ops = operating_thresholds(val["logit"].to_numpy(float), val["label"].to_numpy(int))
    if not ops[PRIMARY.name]["sufficient"]:
        raise ValueError(f"no primary operating threshold: {ops[PRIMARY.name]['definition']}")
    return {name: float(t["logit"]) for name, t in ops.items() if t["sufficient"]}


def load_detector(home: Path, profile: Profile, device: str, detector=None) -> tuple[object, str, int]:
    """(model, name, crop): the trained checkpoint of ``profile.detector.audit_arch``, or
    ``detector`` (a ``RawScorer``: an external model, ``lensaudit.detector.external``, or the
    offline mode's recorder / imported scores) in its place."""
    if detector is not None:
        return detector, detector.name, int(detector.crop)
    arch = profile.detector.audit_arch
    model, info = load_frozen_detector(home, arch, device)
    return model, arch, int(info["config"]["train"]["crop"])


def score_selection(home: Path, profile: Profile, model, crop: int, device: str, progress=None) -> dict:
    """Everything of the selection function that runs the detector, at no threshold: the
    host logits, every injection's record, the brackets' records and the adversarial scores
    (each scoring call inside ``scoring_stage``, which names its rows).  Which stamps are
    scored does not depend on any score, so the offline mode replays exactly this."""
    sel = profile.selection
    psf = injection_psfs(sel.psf_model, sel.psfex_models, sel.seed)
    hosts = read_table(home, "injection_hosts")
    reader = CutoutReader(safe_join(home, "cutout_store"))
    timings = {}
    t0 = time.perf_counter()
    host_stamps = torch.from_numpy(reader.read(hosts.assign(cutout_ok=True))).to(device)
    timings["host_load_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    with scoring_stage(model, "host", hosts["galaxy_id"]):
        host_logits = score_batches(model, host_stamps, crop, device)
    timings["host_score_s"] = time.perf_counter() - t0
    plan, params = plan_and_parameters(hosts, sel.n_per_cell, sel.seed)
    pos = pd.Index(hosts["galaxy_id"]).get_indexer(plan["galaxy_id"])
    t0 = time.perf_counter()
    with scoring_stage(model, "injection", plan["injection_id"]):
        res = inject_and_score(model, host_stamps, pos, params.reset_index(drop=True), hosts, crop, device, sel.seed,
                               chunk=sel.chunk, progress=progress, psf=psf)
    timings["inject_score_s"] = time.perf_counter() - t0
    records = pd.concat([plan.reset_index(drop=True), params.reset_index(drop=True), res], axis=1)
    records["snr_combined"] = combined(res[["snr_g", "snr_r", "snr_z"]].to_numpy())
    records["observable"] = observable(records["arc_snr_matched"])
    records["probability"] = 1 / (1 + np.exp(-records["logit"]))
    records["host_logit"] = host_logits[pos]
    t0 = time.perf_counter()
    brackets = bracket_records(model, host_stamps, hosts, host_logits, records, params, pos, crop, device, profile)
    timings["brackets_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    adv = adversarial_scores(home, profile, model, crop, device, hosts, host_stamps, host_logits, psf)
    timings["adversarial_s"] = time.perf_counter() - t0
    return {"records": records, "bracket_records": brackets, "adversarial": adv, "timings": timings}


def run_completeness(home: Path, profile: Profile, device: str, progress=None, detector=None,
                     out: Path | None = None) -> tuple[dict, pd.DataFrame]:
    """(summary, the primary operating point's completeness table); every table is also
    written, under ``out`` (default ``home``).  ``detector``: a ``RawScorer`` used in place
    of the trained checkpoint; its validation scores are read from ``out``."""
    out = home if out is None else out
    sel = profile.selection
    model, arch, crop = load_detector(home, profile, device, detector)
    scored = score_selection(home, profile, model, crop, device, progress)
    records, timings = scored["records"], scored["timings"]
    write_table(records, out, "completeness_injections")
    t0 = time.perf_counter()
    tables = {}
    cuda = str(device).startswith("cuda")  # the bootstrap on the GPU where there is one, its draws made once for all thresholds
    draws = BootstrapDraws.for_injections(records["cell"], records["galaxy_id"], sel.seed, SELECTION.n_boot,
                                          device) if cuda else None
    for name, t in thresholds(out, arch).items():
        tables[name] = completeness_table(records, t, name, seed=sel.seed, device=device if cuda else None,
                                          draws=draws)
        write_table(tables[name], out, table_asset(name), csv=True)
    timings["aggregate_s"] = time.perf_counter() - t0
    brackets = bracket_tables(scored["bracket_records"], tables[PRIMARY.name]["threshold_logit"].iloc[0], sel.seed)
    write_table(brackets, out, "completeness_brackets", csv=True)
    write_table(scored["bracket_records"], out, "completeness_bracket_records")
    write_table(scored["adversarial"], out, "adversarial_scores")
    main = tables[PRIMARY.name]
    return {"injections": len(records), "cells_with_injections": int((main["n"] > 0).sum()),
            "sufficient_cells": int(main["sufficient"].sum()), "thresholds": {k: float(v["threshold_logit"].iloc[0])
                                                                              for k, v in tables.items()},
            "host_false_positive_injections": int(main["n_host_fp"].sum()),
            "brackets": bracket_summary(brackets),
            "timings": timings, "device": device, "arch": arch}, main


def bracket_rows(records: pd.DataFrame, sel) -> np.ndarray:
    """Positions in ``records`` (the injections in plan order) of the brackets' subset: the first
    ``sel.bracket_per_cell`` injections of every cell (None: n_per_cell // 8, at least 1)."""
    per_cell = sel.bracket_per_cell or max(1, sel.n_per_cell // 8)
    return records.reset_index(drop=True).groupby("cell", sort=False).head(per_cell).index.to_numpy()


def bracket_records(model, host_stamps, hosts, host_logits, records, params, pos, crop, device,
                    profile) -> pd.DataFrame:
    """Systematics brackets (``inject.BRACKETS``: Moffat beta 2.5 / 4.5, clumpy sources, the
    suppress_inner ablation) on the first ``bracket_per_cell`` injections of every cell.  The
    baseline is re-run on the same subset with the same noise seed, so each bracket is a
    paired comparison: same hosts, same parameters, same noise draws, one thing changed.
    One long table of records (``variant``, injection_id, cell, galaxy_id, logit, host_logit,
    observable), stored as ``completeness_bracket_records``."""
    sel = profile.selection
    sub = bracket_rows(records, sel)
    p, hp = params.iloc[sub].reset_index(drop=True), pos[sub]
    frames = []
    for variant in (None, *BRACKETS):
        vname = "baseline" if variant is None else variant.name
        with scoring_stage(model, f"bracket-{vname}", records["injection_id"].iloc[sub]):
            res = inject_and_score(model, host_stamps, hp, p, hosts, crop, device, sel.seed + 2, chunk=sel.chunk,
                                   variant=variant)
        frames.append(records.iloc[sub][["injection_id", "cell", "galaxy_id"]].reset_index(drop=True).assign(
            logit=res["logit"].to_numpy(), host_logit=host_logits[hp],
            observable=observable(res["arc_snr_matched"].to_numpy()), variant=vname))
    return pd.concat(frames, ignore_index=True)


def bracket_tables(rec: pd.DataFrame, threshold_logit: float, seed: int) -> pd.DataFrame:
    """Companion completeness tables of ``bracket_records`` at the primary threshold, one per
    variant, as one long table with a ``variant`` column."""
    frames = [completeness_table(rec[rec["variant"] == v].drop(columns="variant"), threshold_logit, PRIMARY.name,
                                 seed=seed).assign(variant=v)
              for v in ("baseline", *(b.name for b in BRACKETS))]
    return pd.concat(frames, ignore_index=True)


def bracket_summary(brackets: pd.DataFrame) -> dict:
    """Pooled completeness per variant (k / n over all cells) and its difference from the paired baseline."""
    pooled = brackets.groupby("variant")[["k", "n"]].sum()
    c = (pooled["k"] / pooled["n"].where(pooled["n"] > 0)).to_dict()
    base = c.get("baseline", float("nan"))
    return {v: {"completeness": float(x), "minus_baseline": float(x - base)} for v, x in c.items()}


def adversarial_scores(home: Path, profile: Profile, model, crop: int, device: str, hosts: pd.DataFrame,
                       host_stamps: torch.Tensor, host_logits: np.ndarray, psf=None) -> pd.DataFrame:
    """Rows (test, galaxy_id, logit_before, logit_after, added_rms_nmgy) for null controls /
    ring / suppressed lenses (``added_rms_nmgy``: rms of what a null control added, NaN else).
    ``psf``: the injections' PSFEx PSFs (None: Moffat), used by the null controls too."""
    sel = profile.selection
    # null controls: the full injection path, the arc's noise without the arc (hosts are sorted by galaxy_id)
    sub, params = null_control_plan(hosts, sel.adversarial_max_hosts, sel.seed + 1)
    n = len(sub)
    stamps = host_stamps[:n]
    plain = host_logits[:n]
    with scoring_stage(model, "null", sub["galaxy_id"]):
        null = inject_and_score(model, stamps, np.arange(n), params, sub, crop, device, sel.seed + 1,
                                chunk=sel.chunk, null=True, psf=psf)
    with scoring_stage(model, "ring", sub["galaxy_id"]):
        ring = ring_scores(model, stamps, crop, device)
    frames = [pd.DataFrame({"test": "null_control", "galaxy_id": sub["galaxy_id"], "logit_before": plain,
                            "logit_after": null["logit"].to_numpy(), "added_rms_nmgy": null["added_rms_nmgy"].to_numpy()}),
              pd.DataFrame({"test": "synthetic_ring", "galaxy_id": sub["galaxy_id"], "logit_before": plain,
                            "logit_after": ring})]
    lenses = _test_lenses(home).iloc[:sel.adversarial_max_hosts]
    if len(lenses):
        raw = CutoutReader(safe_join(home, "cutout_store")).read(lenses)
        with scoring_stage(model, "lens", lenses["galaxy_id"]):
            before = score_batches(model, raw, crop, device)
        with scoring_stage(model, "suppressed", lenses["galaxy_id"]):
            after = score_batches(model, suppress_annulus(raw), crop, device)
        frames.append(pd.DataFrame({"test": "arc_suppression", "galaxy_id": lenses["galaxy_id"].to_numpy(),
                                    "logit_before": before, "logit_after": after}))
    out = pd.concat(frames, ignore_index=True)
    if "added_rms_nmgy" not in out:
        out["added_rms_nmgy"] = np.nan
    return out


def _test_lenses(home: Path) -> pd.DataFrame:
    idx = read_table(home, "cutouts")
    return idx[(idx["split"] == "test") & (idx["label"] == 1) & idx["cutout_ok"]].sort_values("galaxy_id")
