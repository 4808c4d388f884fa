"""Train the ``full``-profile detector on an exported mock-sky subset on a GPU and evaluate it.

Input: the .npz of ``bench/export_mock_subset.py``.  Uses ``lensaudit.detector.train.train``
with the full profile's settings (50 epochs, patience 10, batch 256, AdamW 3e-4 / 1e-4,
cosine, bf16, channels_last) and ``lensaudit.evaluation.report.evaluate`` on the subset's
test rows.  Prints epoch times, training img/s, best epoch, test AUC with intervals and the
tier recalls.  Run: PYTHONPATH=. python bench/train_mock_subset.py .gpu_data/mock_subset.npz [epochs]

With ``SAVE_DIR`` set (e.g. the device tool's ``$OUT``), the selected model is also written there
as a float32 TorchScript file (``resnet18_full.pt``, traced on the CPU) with an input spec
(``resnet18_full.json``: grz, 64 px, ``raw_robust``, logit) for ``lensaudit audit-model`` or
``bench/audit_subset_model.py``, which audit it on a home this machine cannot hold.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import replace

import numpy as np
import pandas as pd


def main() -> None:
    import torch

    from lensaudit.config import DetectorSettings
    from lensaudit.detector.models import build_model
    from lensaudit.detector.train import predict, train
    from lensaudit.evaluation.report import evaluate

    z = np.load(sys.argv[1], allow_pickle=False)
    epochs = int(sys.argv[2]) if len(sys.argv) > 2 else None  # smoke tests only
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    cfg = DetectorSettings().train  # the full profile's settings
    if epochs:
        cfg = replace(cfg, epochs=epochs)

    def x(split):
        return torch.from_numpy(z[f"{split}_x"]).to(dev).float() / float(z["scale"])

    t0 = time.perf_counter()
    best, hist, info = train(cfg, x("train"), z["train_y"], z["train_w"], x("val"), z["val_y"], device=dev,
                             log=lambda *_: None)
    wall = time.perf_counter() - t0
    model = build_model("resnet18").to(dev)
    model.load_state_dict(best)
    logits = predict(model, x("test"), dev)
    meta = pd.DataFrame({c: z[f"test_{c}"] for c in ("tier", "confuser_category", "nobs_z_bin", "psfsize_r", "psfdepth_r")})
    meta["label"] = z["test_y"]
    meta["confuser_category"] = meta["confuser_category"].replace("", None)
    val_logits = predict(model, x("val"), dev)
    rep = evaluate(logits, meta, val_logits, z["val_y"], n_boot=1000)
    name = torch.cuda.get_device_name(0) if dev == "cuda" else "cpu"
    print(f"device {name}; train {len(z['train_y'])} ({int(z['train_y'].sum())} lenses), val {len(z['val_y'])}, "
          f"test {len(z['test_y'])} ({int(z['test_y'].sum())} lenses)")
    print(f"epochs run {info['epochs_run']}, best epoch {info['best_epoch']} (val AUC {info['best_val_auc']:.3f}), "
          f"stop {info['stop_reason']}; training {info['train_images_per_s']:,.0f} img/s; mean epoch "
          f"{info['mean_epoch_train_s']:.2f} s; wall incl. validation {wall:.1f} s")
    print("test AUC", json.dumps(rep["metrics"]["roc_auc"]))
    for t, entry in rep["thresholds"].items():
        print(t, "(threshold on the subset's val split) recall", json.dumps(entry.get("recall")),
              "tier recall", json.dumps(entry.get("tier_recall")))
    if os.environ.get("SAVE_DIR"):
        save_torchscript(best, os.environ["SAVE_DIR"])


def save_torchscript(state: dict, out_dir: str) -> None:
    """The selected weights as a float32 TorchScript ResNet-18 (traced on the CPU) and its
    external-finder spec, in ``out_dir``; prints the file's sha256."""
    import hashlib
    from pathlib import Path

    import torch

    from lensaudit.detector.models import build_model

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = build_model("resnet18")
    model.load_state_dict({k: v.detach().float().cpu() for k, v in state.items()})
    model.eval()
    with torch.no_grad():
        traced = torch.jit.trace(model, torch.zeros(2, 3, 64, 64))
    path = out / "resnet18_full.pt"
    traced.save(str(path))
    spec = {"name": "resnet18-full-gpu", "model": path.name, "format": "torchscript", "bands": "grz",
            "input_size": 64, "preprocessing": "raw_robust", "layout": "NCHW", "output": "logit", "batch_size": 512}
    (out / "resnet18_full.json").write_text(json.dumps(spec, indent=1))
    print(f"saved {path} sha256 {hashlib.sha256(path.read_bytes()).hexdigest()}")


if __name__ == "__main__":
    main()
