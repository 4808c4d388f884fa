"""The detector's view of the data: manifest rows joined to the cutout store.

Only ``cutout_ok`` rows are read; every excluded row is counted with its reason (a failed
cutout is never silently dropped).  Stamps are read from the store in chunks (only the window
``raw_robust`` reads, ``preprocess.input_window``) and passed
through ``raw_robust`` once (on the compute device when it is a GPU: the normalised
split then stays there, so training gathers batches on the device with no host copy).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from lensaudit.detector.preprocess import input_window, raw_robust

#: manifest columns the detector carries along for evaluation (strata, conditions)
META_COLUMNS = ("galaxy_id", "label", "tier", "pool", "confuser_category", "split", "sample_weight", "healpix_128",
                "psfsize_r", "psfdepth_r", "nobs_z", "nobs_z_bin")


@dataclass
class SplitData:
    split: str
    x: torch.Tensor  # (N, 3, crop, crop) float32, raw_robust-normalised
    y: np.ndarray  # (N,) int64 labels
    w: np.ndarray  # (N,) float64 sample weights
    meta: pd.DataFrame  # META_COLUMNS of the rows, in the order of x
    excluded: dict  # reason -> count of manifest rows of this split that were not read
    degenerate_bands: int  # band-stamps raw_robust could not normalise (set to 0)


def join_manifest_index(manifest: pd.DataFrame, index: pd.DataFrame) -> pd.DataFrame:
    """Manifest rows with their cutout index columns; a manifest row without an index row
    gets ``cutout_ok = False`` and ``fail_reason = 'missing_from_index'``."""
    cols = ["galaxy_id", "cutout_path", "cutout_offset", "cutout_ok", "fail_reason"]
    dup = index["galaxy_id"].duplicated()
    if dup.any():
        raise ValueError(f"cutout index holds {int(dup.sum())} duplicated galaxy_id rows")
    df = manifest[[c for c in META_COLUMNS if c in manifest.columns]].merge(index[cols], on="galaxy_id", how="left")
    missing = df["cutout_ok"].isna()
    df.loc[missing, "fail_reason"] = "missing_from_index"
    df["cutout_ok"] = df["cutout_ok"].fillna(False).astype(bool)
    df["cutout_offset"] = df["cutout_offset"].fillna(-1).astype(np.int64)
    return df


def split_rows(rows: pd.DataFrame, split: str) -> tuple[pd.DataFrame, dict]:
    """(the ``cutout_ok`` rows of ``split`` sorted by galaxy_id, {fail_reason: count} of the
    split's other rows): the rows ``load_split`` reads, in its order (``rows`` from
    ``join_manifest_index``)."""
    part = rows[rows["split"] == split].sort_values("galaxy_id", kind="stable")
    bad = part[~part["cutout_ok"]]
    excluded = {str(k): int(v) for k, v in bad["fail_reason"].fillna("unknown").value_counts().items()}
    return part[part["cutout_ok"]].reset_index(drop=True), excluded


def load_split(rows: pd.DataFrame, reader, split: str, crop: int = 64, device: str = "cpu",
               chunk: int = 4096) -> SplitData:
    """Read and normalise the ``cutout_ok`` rows of ``split`` (rows from ``join_manifest_index``),
    sorted by galaxy_id so that the order (and so training) is reproducible."""
    ok, excluded = split_rows(rows, split)
    xs, n_deg = [], 0
    window = input_window(reader.size, crop)  # the pixels raw_robust reads, nothing else
    for s in range(0, len(ok), chunk):
        raw = torch.from_numpy(reader.read(ok.iloc[s:s + chunk], window=window)).to(device)
        xb, deg = raw_robust(raw, crop=crop)
        xs.append(xb)
        n_deg += int(deg.sum())
    x = torch.cat(xs) if xs else torch.zeros((0, 3, crop, crop), device=device)
    meta = ok[[c for c in META_COLUMNS if c in ok.columns]].copy()
    return SplitData(split, x, ok["label"].to_numpy(np.int64), ok["sample_weight"].to_numpy(np.float64), meta,
                     excluded, n_deg)
