"""The research group's per-cutout NPZ format.

Keys: ``cutout`` (H, W, C) float32 in nanomaggies per pixel, channels in the order of
``meta_bands_requested`` (g, r, z by default), plus scalar ``meta_*`` keys (the six
real DR10 files in shared/data/real are examples).  ``read_npz`` never raises on bad
files: it returns a failed ``Cutout`` with the reason.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from lensaudit.cutouts.result import Cutout


def write_npz(path: str | Path, cutout: Cutout, **meta) -> Path:
    """Atomic write: ``cutout`` as (H, W, C) float32 plus meta_* scalars (bands recorded)."""
    from lensaudit.store import atomic_path

    if not cutout.ok or cutout.data is None:
        raise ValueError(f"refusing to write a failed cutout ({cutout.reason})")
    arrays = {"cutout": np.ascontiguousarray(np.transpose(cutout.data, (1, 2, 0)).astype(np.float32))}
    allmeta = {"bands_requested": cutout.bands, "size": cutout.data.shape[-1], "pixel_scale": 0.262, **cutout.meta, **meta}
    for k, v in allmeta.items():
        arrays[f"meta_{k}"] = np.asarray(v)
        if arrays[f"meta_{k}"].ndim != 0:
            raise ValueError(f"meta_{k} must be a scalar")
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
    return Path(path)


def read_npz(path: str | Path, expect_size: int | None = 101, expect_bands: str | None = None) -> Cutout:
    """Load an NPZ cutout as (C, H, W) float32; a failure (with reason) on any problem."""
    bands = expect_bands or "grz"
    try:
        with np.load(path, allow_pickle=False) as z:
            if "cutout" not in z.files:
                return Cutout.failure(bands, "npz_missing_cutout_key", path=str(path))
            arr = z["cutout"]
            meta = {k[5:]: z[k].item() for k in z.files if k.startswith("meta_") and z[k].ndim == 0}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        return Cutout.failure(bands, f"npz_unreadable: {type(exc).__name__}", path=str(path))
    bands = str(meta.get("bands_requested", bands))
    if arr.ndim != 3 or arr.shape[2] != len(bands):
        return Cutout.failure(bands, f"wrong_shape {tuple(arr.shape)}", path=str(path))
    if expect_size is not None and arr.shape[:2] != (expect_size, expect_size):
        return Cutout.failure(bands, f"wrong_size {arr.shape[:2]}", path=str(path))
    if expect_bands is not None and bands != expect_bands:
        return Cutout.failure(bands, f"wrong_bands {bands}", path=str(path))
    if not np.issubdtype(arr.dtype, np.floating):
        return Cutout.failure(bands, f"wrong_dtype {arr.dtype}", path=str(path))
    return Cutout(True, bands, np.transpose(arr, (2, 0, 1)).astype(np.float32), "", meta)
