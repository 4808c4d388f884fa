"""The detector's inputs exported from a home as a small home of their own.

A GPU machine without Spark (or without the mock sky) cannot rebuild the data half; it can
run the ``detector`` and ``detector_evaluation`` assets on an exported copy of what they read:
``training_manifest``, the ``cutouts`` index with its shards, ``shortcut_features`` (where
materialised) and the
run record (``run_profile.json``, with a ``data_source`` label naming the source and the
subset).  Rows: every positive and, per split, all negatives or a seeded random sample of
``negatives_per_split[split]`` of them (the export is then a subset, said in the label; its
metrics are not the source home's).  Stamps are copied bit for bit into shards named by their
content hash, as ``spark_jobs.cutouts`` names them, so the integrity gates hold on the copy.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from lensaudit.config import RUN_PROFILE_FILE
from lensaudit.cutouts.store import SHARD_ROWS, CutoutReader, shard_relpath, write_shard
from lensaudit.spark_jobs.cutouts import INDEX_SCHEMA, SHORTCUT_FEATURES_SCHEMA
from lensaudit.spark_jobs.manifest import MANIFEST_SCHEMA
from lensaudit.store import file_sha256, partition_file, safe_join, write_parquet_atomic
from lensaudit.tables import read_table

PARTITION = "export"


def pick_rows(manifest: pd.DataFrame, negatives_per_split: dict[str, int] | None, seed: int) -> pd.DataFrame:
    """Every positive, and per split all negatives or a seeded sample of the given number."""
    keep = [manifest[manifest["label"] == 1]]
    rng = np.random.default_rng(seed)
    for split, neg in manifest[manifest["label"] == 0].groupby("split", sort=True):
        n = None if negatives_per_split is None else negatives_per_split.get(str(split))
        if n is not None and n < len(neg):
            neg = neg.iloc[np.sort(rng.choice(len(neg), size=int(n), replace=False))]
        keep.append(neg)
    return pd.concat(keep).sort_values("galaxy_id", kind="stable").reset_index(drop=True)


def export_training_home(home: Path, out: Path, negatives_per_split: dict[str, int] | None = None,
                         seed: int = 0) -> dict:
    """Write the exported home under ``out`` (must not hold a store yet); returns a summary
    (rows per split and label, stamp bytes, the source manifest's sha256)."""
    home, out = Path(home), Path(out)
    if (out / "assets").exists() or (out / "cutout_store").exists():
        raise FileExistsError(f"{out} already holds a store; export into an empty folder")
    record = json.loads((home / RUN_PROFILE_FILE).read_text())
    manifest = read_table(home, "training_manifest")
    rows = pick_rows(manifest, negatives_per_split, seed)
    index = read_table(home, "cutouts").set_index("galaxy_id").loc[rows["galaxy_id"]].reset_index()
    ok = index[index["cutout_ok"]].index.to_numpy()
    stamps = CutoutReader(safe_join(home, "cutout_store")).read(index.loc[ok])
    index["cutout_path"], index["cutout_offset"] = "", -1
    for k in range(0, len(ok), SHARD_ROWS):
        stack = np.ascontiguousarray(stamps[k:k + SHARD_ROWS], dtype=np.float32)
        rel = shard_relpath(PARTITION, k // SHARD_ROWS, stack)
        write_shard(safe_join(out, "cutout_store", *rel.split("/")), stack)
        index.loc[ok[k:k + SHARD_ROWS], "cutout_path"] = rel
        index.loc[ok[k:k + SHARD_ROWS], "cutout_offset"] = np.arange(len(stack))
    try:
        features = read_table(home, "shortcut_features")
    except FileNotFoundError:  # not materialised: the export holds what there is
        features = None
    write_parquet_atomic(rows[MANIFEST_SCHEMA.names], partition_file(out, "training_manifest", PARTITION),
                         schema=MANIFEST_SCHEMA)
    write_parquet_atomic(index[INDEX_SCHEMA.names], partition_file(out, "cutouts", PARTITION), schema=INDEX_SCHEMA)
    if features is not None:
        features = features[features["galaxy_id"].isin(rows["galaxy_id"])]
        write_parquet_atomic(features[SHORTCUT_FEATURES_SCHEMA.names],
                             partition_file(out, "shortcut_features", PARTITION), schema=SHORTCUT_FEATURES_SCHEMA)
    subset = "all rows" if negatives_per_split is None else \
        f"{len(rows)} of {len(manifest)} rows (every positive, negatives per split {negatives_per_split}, seed {seed})"
    label = f"exported training rows of {home.resolve()}: {subset}"
    new_record = {**record, "data_source": label}
    (out / RUN_PROFILE_FILE).write_text(json.dumps(new_record, indent=2, sort_keys=True))
    counts = rows.groupby(["split", "label"]).size()
    return {"rows": int(len(rows)), "source_rows": int(len(manifest)), "stamp_bytes": int(stamps.nbytes),
            "by_split_label": {f"{s}/{lab}": int(n) for (s, lab), n in counts.items()},
            "source_manifest_sha256": [file_sha256(f) for f in
                                       sorted((home / "assets" / "training_manifest").glob("*.parquet"))],
            "data_source": label}
