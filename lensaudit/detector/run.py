"""Train one detector architecture on a lensaudit home and store ``best.pt`` + ``run_info.json``.

Layout under ``$LENSAUDIT_HOME/assets/detector/<arch>/``: ``best.pt`` (the state dict
only; ``torch.load(best.pt, weights_only=True)`` loads it into
``torchvision.models.resnet18(num_classes=1)``; byte-reproducible: the same weights give
the same file), ``run_info.json`` (provenance and the training record, with the
checkpoint's ``checkpoint_sha256``), ``history.json`` (loss and val AUC per epoch) and ``rows.parquet``
(galaxy_id, split, healpix_128, label of every row trained or validated on: what the
evaluation's disjointness check re-verifies).
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import torch

from lensaudit import provenance
from lensaudit.cutouts.store import CutoutReader
from lensaudit.detector.data import join_manifest_index, load_split
from lensaudit.detector.models import build_model, check_architecture, save_checkpoint
from lensaudit.detector.config import TrainConfig
from lensaudit.detector.train import train
from lensaudit.store import asset_files, atomic_path, safe_join, write_parquet_atomic

if TYPE_CHECKING:  # the run profile is read, not imported at run time (detector/ depends on no sibling's config)
    from lensaudit.config import Profile


def training_input_hashes(home: Path) -> dict[str, str]:
    """sha256 of the stored training manifest and cutout index (``provenance.files_hash`` of the
    assets' Parquet files): recorded in ``run_info.json`` when the detector trains and recomputed by
    the gate ``detector_artefact_hashes_match``, so a manifest or index rewritten after training
    (a row moved between splits, two stamp pointers swapped, a partition file deleted) is seen."""
    return {"manifest_sha256": provenance.files_hash(asset_files(home, "training_manifest")),
            "cutout_index_sha256": provenance.files_hash(asset_files(home, "cutouts"))}


def detector_dir(home: Path, arch: str) -> Path:
    return safe_join(home, "assets", "detector", arch)


def write_json_atomic(obj, path: Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str))


def train_config(profile: Profile, arch: str) -> TrainConfig:
    return replace(profile.detector.train, arch=arch)


def train_detector(home: Path, profile: Profile, arch: str, device: str, manifest: pd.DataFrame,
                   index: pd.DataFrame, log=print) -> dict:
    """Train on the manifest's train split, select on val, write the artefacts under ``home``;
    returns run_info.  ``manifest`` and ``index``: the stored ``training_manifest`` and ``cutouts``
    tables (read by the caller through ``lensaudit.tables.read_table``)."""
    check_architecture(arch)  # before any read: a partition added by hand may name none
    if profile.detector.cpu_threads and device == "cpu":
        torch.set_num_threads(profile.detector.cpu_threads)
    rows = join_manifest_index(manifest, index)
    reader = CutoutReader(safe_join(home, "cutout_store"))
    cfg = train_config(profile, arch)
    data = {s: load_split(rows, reader, s, crop=cfg.crop, device=device) for s in ("train", "val")}
    for s, d in data.items():
        if not (d.y == 1).any() or not (d.y == 0).any():
            raise ValueError(f"the {s} split holds {int((d.y == 1).sum())} positives and {int((d.y == 0).sum())} "
                             f"negatives after excluding failed cutouts: cannot train")
        log(f"{s}: {len(d.y)} rows ({int(d.y.sum())} positives), excluded {d.excluded}")
    best, history, info = train(cfg, data["train"].x, data["train"].y, data["train"].w, data["val"].x,
                                data["val"].y, device=device, log=log, cuda_graph=True)  # CUDA only (_Step)
    out = detector_dir(home, arch)
    model = build_model(arch)
    model.load_state_dict(best)  # the selected epoch's weights, checked against the architecture
    checkpoint_sha256 = save_checkpoint(model, out / "best.pt")
    used = pd.concat([d.meta[["galaxy_id", "split", "healpix_128", "label"]] for d in data.values()], ignore_index=True)
    write_parquet_atomic(used, out / "rows.parquet")
    config = {"train": cfg.as_dict(), "profile": profile.name, "detector_settings": asdict(profile.detector),
              "preprocessing": {"name": "raw_robust", "crop": cfg.crop, "annulus_px": [20, 32], "clip": 10}}
    run_info = {
        "arch": arch,
        "git_commit": provenance.git_commit(),
        "utc_timestamp": provenance.utc_now(),
        "config": config,
        "config_sha256": provenance.config_hash(config),
        "seeds": {"torch": cfg.seed, "numpy": cfg.seed, "python": cfg.seed, "batch_order_generator": cfg.seed},
        **training_input_hashes(home),
        "command": provenance.command_line(),
        "library_versions": provenance.library_versions(),
        "device": device,
        "device_name": provenance.device_name(device),
        "rows": {s: {"used": len(d.y), "positives": int(d.y.sum()), "excluded": d.excluded,
                     "degenerate_bands": d.degenerate_bands} for s, d in data.items()},
        **{k: info[k] for k in ("epochs_run", "best_epoch", "best_val_auc", "stop_reason", "train_images_per_s",
                                "mean_epoch_train_s", "cuda_graph")},
        "checkpoint": "best.pt (state dict only; torch.load(weights_only=True))",
        "checkpoint_sha256": checkpoint_sha256,
    }
    write_json_atomic(history, out / "history.json")
    write_json_atomic(run_info, out / "run_info.json")
    return run_info
