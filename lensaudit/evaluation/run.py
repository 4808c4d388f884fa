"""Evaluate a trained detector on the test split of a lensaudit home.

Writes ``assets/detector_evaluation/<arch>.parquet`` (one row per scored test cutout:
galaxy_id, split, healpix_128, label, tier, pool, confuser_category, conditions, logit,
probability), ``assets/detector_evaluation/<arch>/val_scores.parquet`` (the same for the
validation split, where the operating thresholds are chosen) and
``assets/detector_evaluation/<arch>/evaluation.json`` (the metrics of
``lensaudit.evaluation.report``, no paths, plus ``checkpoint_sha256`` of the checkpoint
scored and ``scored_table_sha256`` of the Parquet file written, which the integrity gates
re-hash, and ``scored_on_device``).  The test stamps pass through the same ``load_split`` /
``raw_robust`` as training.
"""

from __future__ import annotations

import json
from pathlib import Path

from lensaudit.config import Profile
from lensaudit.cutouts.store import CutoutReader
from lensaudit.detector.data import join_manifest_index, load_split
from lensaudit.detector.models import load_checkpoint
from lensaudit.detector.run import detector_dir, write_json_atomic
from lensaudit.detector.train import predict
from lensaudit.evaluation.metrics import sigmoid
from lensaudit.evaluation.report import evaluate
from lensaudit.store import file_sha256, partition_file, safe_join, write_parquet_atomic
from lensaudit.tables import read_table


def evaluation_json_path(home: Path, arch: str) -> Path:
    return safe_join(home, "assets", "detector_evaluation", arch, "evaluation.json")


def val_scores_path(home: Path, arch: str) -> Path:
    """The validation split's scored rows, from which the operating thresholds are chosen."""
    return safe_join(home, "assets", "detector_evaluation", arch, "val_scores.parquet")


def val_scores(home: Path, arch: str):
    import pandas as pd

    p = val_scores_path(home, arch)
    if not p.is_file():
        raise FileNotFoundError(f"no validation scores of {arch} under {p}")
    return pd.read_parquet(p)


def load_frozen_detector(home: Path, arch: str, device: str):
    """The trained model in eval mode on ``device`` (weights-only load) and its run_info,
    with ``info["checkpoint_sha256_loaded"]`` the sha256 of the bytes loaded.  A checkpoint
    whose sha256 differs from the one training recorded, NaN/inf weights or an unreadable
    run_info.json raise CheckpointError."""
    from lensaudit.detector.models import CheckpointError
    from lensaudit.store import file_sha256

    d = detector_dir(home, arch)
    info_path, ckpt = d / "run_info.json", d / "best.pt"
    if not info_path.is_file() or not ckpt.is_file():
        raise FileNotFoundError(f"no trained {arch} detector under {d} (materialise the detector asset first)")
    try:
        info = json.loads(info_path.read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{info_path}: unreadable ({type(exc).__name__}: {exc})") from exc
    if not isinstance(info, dict):
        raise CheckpointError(f"{info_path}: not a JSON object")
    digest = file_sha256(ckpt)
    recorded = info.get("checkpoint_sha256")
    if recorded is not None and recorded != digest:
        raise CheckpointError(f"{ckpt}: sha256 {digest[:16]}... differs from the {recorded[:16]}... recorded at "
                              f"training (the checkpoint changed)")
    model = load_checkpoint(ckpt, arch).to(device).eval()
    info["checkpoint_sha256_loaded"] = digest
    return model, info


def evaluate_detector(home: Path, profile: Profile, arch: str, device: str):
    """(report, scored test rows); both are also written under the asset's folder."""
    model, info = load_frozen_detector(home, arch, device)
    crop = int(info["config"]["train"]["crop"])
    rows = join_manifest_index(read_table(home, "training_manifest"), read_table(home, "cutouts"))
    reader = CutoutReader(safe_join(home, "cutout_store"))
    val = load_split(rows, reader, "val", crop=crop, device=device)
    val_logits = predict(model, val.x, device, bf16=False)
    val_scored = val.meta.assign(logit=val_logits, probability=sigmoid(val_logits))
    write_parquet_atomic(val_scored, val_scores_path(home, arch))
    test = load_split(rows, reader, "test", crop=crop, device=device)
    logits = predict(model, test.x, device, bf16=False)  # float32: the numbers a re-scoring reproduces
    scored = test.meta.copy()
    scored["logit"] = logits
    scored["probability"] = sigmoid(logits)
    scored_path = write_parquet_atomic(scored, partition_file(home, "detector_evaluation", arch))
    report = report_from_scores(scored, val_scored, read_table(home, "shortcut_features"), profile)
    report.update({"arch": arch, "split": "test", "crop": crop, "preprocessing": "raw_robust",
                   "excluded_rows": test.excluded, "degenerate_bands": test.degenerate_bands,
                   "detector_config_sha256": info["config_sha256"], "git_commit": info["git_commit"],
                   "checkpoint_sha256": info["checkpoint_sha256_loaded"], "scored_table_sha256": file_sha256(scored_path),
                   "scored_on_device": "cuda" if str(device).startswith("cuda") else str(device),
                   "wording": "held-out test split (HEALPix pixels disjoint from the train and val splits); tier-A recall is "
                              "measured on held-out tier-A lenses"})
    write_json_atomic(report, evaluation_json_path(home, arch))
    return report, scored


def report_from_scores(scored, val_scored, features, profile: Profile) -> dict:
    """The metrics of evaluation.json (``report.evaluate`` and the shortcut baseline's
    ``baseline_summary``) from the scored test rows, the scored validation rows (label, logit)
    and the shortcut features, with the profile's bootstrap size and seeds: what
    ``evaluate_detector`` writes, and what the gates recompute from the stored tables."""
    from lensaudit.evaluation.baseline import baseline_summary, shortcut_lr_scores

    det = profile.detector
    val_labels = val_scored["label"].to_numpy(int)
    report = evaluate(scored["logit"].to_numpy(float), scored, val_scored["logit"].to_numpy(float), val_labels,
                      n_boot=det.n_boot, seed=det.boot_seed)
    base = shortcut_lr_scores(features, scored["galaxy_id"], seed=det.train.seed)
    base_val = shortcut_lr_scores(features, val_scored["galaxy_id"], seed=det.train.seed)
    report["baseline_shortcut_lr"] = baseline_summary(base, scored, base_val, val_labels, det.n_boot, det.boot_seed)
    return report


def scored_rows(home: Path, arch: str):
    import pandas as pd

    p = partition_file(home, "detector_evaluation", arch)
    if not p.is_file():
        raise FileNotFoundError(f"no evaluation of {arch} under {p}")
    return pd.read_parquet(p)


def report_json(home: Path, arch: str) -> dict:
    p = evaluation_json_path(home, arch)
    if not p.is_file():
        raise FileNotFoundError(f"no evaluation of {arch} under {p}")
    return json.loads(p.read_text())


__all__ = ["evaluate_detector", "load_frozen_detector", "report_from_scores", "report_json", "scored_rows",
           "evaluation_json_path", "val_scores", "val_scores_path"]
