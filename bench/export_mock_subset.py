"""Export a training subset of a lensaudit home for a GPU box that cannot see the store.

The device machine receives at most 64 MiB, so this writes the ``raw_robust``-normalised
64^2 crops (the exact training input) quantised to int8 (step 10/127 = 0.079 sigma, far
below the pixel noise) for every positive and a deterministic subset of negatives per
split, with labels, weights and the evaluation strata, into one compressed .npz.
Run: PYTHONPATH=. python bench/export_mock_subset.py --home lensaudit_home --out .gpu_data/mock_subset.npz
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

SCALE = 127 / 10.0  # raw_robust clips at +-10


def main() -> None:
    from lensaudit.cutouts.store import CutoutReader
    from lensaudit.detector.data import join_manifest_index, load_split
    from lensaudit.store import read_asset

    ap = argparse.ArgumentParser()
    ap.add_argument("--home", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--negatives", default="train=2400,val=800,test=1200")
    ns = ap.parse_args()
    home = Path(ns.home).resolve()
    caps = {k: int(v) for k, v in (kv.split("=") for kv in ns.negatives.split(","))}
    rows = join_manifest_index(read_asset(home, "training_manifest"), read_asset(home, "cutouts"))
    reader = CutoutReader(home / "cutout_store")
    out = {}
    for split, cap in caps.items():
        part = rows[rows["split"] == split]
        pos, neg = part[part["label"] == 1], part[part["label"] == 0].sort_values("galaxy_id")
        neg = neg.iloc[np.linspace(0, len(neg) - 1, min(cap, len(neg))).astype(int)] if len(neg) else neg
        d = load_split(part[part["galaxy_id"].isin(set(pos["galaxy_id"]) | set(neg["galaxy_id"]))], reader, split)
        out[f"{split}_x"] = np.round(d.x.numpy() * SCALE).astype(np.int8)
        out[f"{split}_y"] = d.y
        out[f"{split}_w"] = d.w
        for c in ("galaxy_id", "tier", "confuser_category", "nobs_z_bin"):
            out[f"{split}_{c}"] = np.asarray(d.meta[c].fillna("").astype(str).tolist(), dtype=str)
        for c in ("psfsize_r", "psfdepth_r"):
            out[f"{split}_{c}"] = d.meta[c].to_numpy(float)
        print(f"{split}: {len(d.y)} stamps ({int(d.y.sum())} positives)")
    Path(ns.out).parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(ns.out, scale=SCALE, **out)
    print(f"wrote {ns.out}: {Path(ns.out).stat().st_size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
