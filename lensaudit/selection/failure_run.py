"""Compute and store the failure modes of a home (``failure_modes`` asset).

Writes ``assets/failure_modes/data.parquet`` (FPR per confuser category x condition bin),
``assets/failure_missed_injections/data.parquet`` (every missed injection with its cause)
and the two galleries under ``$LENSAUDIT_HOME/plots/``: the top-scored test negatives
per confuser category and the highest-S/N missed injections (re-injected from their
stored parameters; the arc-noise realisation is redrawn, so a re-scored logit can differ
slightly from the stored one, which the caption shows).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from lensaudit.config import Profile
from lensaudit.cutouts.store import CutoutReader
from lensaudit.evaluation.run import scored_rows
from lensaudit.injection.params import REQUIRED_KEYS
from lensaudit.plots import stamp_gallery
from lensaudit.selection.failure_modes import attribute_misses, fpr_by_category_and_condition, miss_summary
from lensaudit.selection.run import thresholds, write_table
from lensaudit.spec import PRIMARY
from lensaudit.store import safe_join
from lensaudit.tables import read_table

PARAM_KEYS = (*REQUIRED_KEYS, "moffat_beta")


def run_failure_modes(home: Path, profile: Profile, arch: str | None = None, out: Path | None = None) -> dict:
    """``arch``: the detector whose stored scores are read (default the profile's audit
    architecture; an external detector's name); ``out``: where its scores and completeness
    injections are read and the tables written (default ``home``, which always holds the
    cutouts and hosts)."""
    arch = arch or profile.detector.audit_arch
    out = home if out is None else out
    t = thresholds(out, arch)[PRIMARY.name]
    scored = scored_rows(out, arch)
    fpr = fpr_by_category_and_condition(scored, t)
    write_table(fpr, out, "failure_modes")
    inj = read_table(out, "completeness_injections")
    miss = attribute_misses(inj, t)
    write_table(miss, out, "failure_missed_injections")
    reader = CutoutReader(safe_join(home, "cutout_store"))
    index = read_table(home, "cutouts").set_index("galaxy_id")
    g = profile.selection.gallery_size
    # top-scored false positives per confuser category
    neg = scored[scored["label"] == 0].copy()
    neg["category"] = neg["confuser_category"].fillna("N1").replace("", "N1")
    galleries = {}
    for cat, grp in neg.groupby("category"):
        top = grp.nlargest(min(g, len(grp)), "logit")
        stamps = reader.read(index.loc[top["galaxy_id"]].reset_index())
        galleries[f"fp_{cat}"] = stamp_gallery(stamps, [f"{lg:.2f}" for lg in top["logit"]],
                                               f"top-scored test negatives, {cat} (logit)")
    # highest-S/N missed injections, re-injected
    top_miss = miss.nlargest(min(g, len(miss)), "arc_snr_matched")
    galleries["missed_injections"] = stamp_gallery(_reinject(home, profile, top_miss),
                                                   [f"{c[:8]} {s:.0f}" for c, s in zip(top_miss["cause"], top_miss["arc_snr_matched"])],
                                                   "highest-S/N missed injections (cause, matched-filter S/N)")
    return {"fpr_rows": len(fpr), "missed": miss_summary(inj, miss), "galleries": galleries, "threshold_logit": t}


def _reinject(home: Path, profile: Profile, rows: pd.DataFrame) -> np.ndarray:
    if rows.empty:
        return np.zeros((0, 3, 101, 101), np.float32)
    from lensaudit.selection.inject import inject_batch

    hosts = read_table(home, "injection_hosts").set_index("galaxy_id").loc[rows["galaxy_id"]].reset_index()
    stamps = torch.from_numpy(CutoutReader(safe_join(home, "cutout_store")).read(hosts.assign(cutout_ok=True)))
    gen = torch.Generator().manual_seed(profile.selection.seed)
    injected = inject_batch(stamps, np.arange(len(rows)), rows[list(PARAM_KEYS)], hosts, "cpu", gen).stamps
    return injected.numpy()

