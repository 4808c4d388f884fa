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
from lensaudit.survey.instrument import BANDS, PIXSCALE_ARCSEC, STAMP_PIX


def write_npz(path: str | Path, cutout: Cutout, **meta) -> Path:
    """Atomic write: ``cutout`` as (H, W, C) float32 plus meta_* scalars (bands recorded)."""
    from lensaudit.store import atomic_path

    if not cutout.ok or cutout.data is None:
        raise ValueError(f"refusing to write a failed cutout ({cutout.reason})")
    arrays = {"cutout": np.ascontiguousarray(np.transpose(cutout.data, (1, 2, 0)).astype(np.float32))}
    allmeta = {"bands_requested": cutout.bands, "size": cutout.data.shape[-1], "pixel_scale": PIXSCALE_ARCSEC, **cutout.meta, **meta}
    for k, v in allmeta.items():
        arrays[f"meta_{k}"] = np.asarray(v)
        if arrays[f"meta_{k}"].ndim != 0:
            raise ValueError(f"meta_{k} must be a scalar")
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
    return Path(path)


#: largest array ``read_npz`` allocates for a member (a 101x101x3 float64 cutout is 245 kB);
#: a header claiming more is refused before any allocation
MAX_MEMBER_BYTES = 64 * 2**20
MAX_META_KEYS = 256


class _NpzRefused(ValueError):
    pass


def _read_member(zf: zipfile.ZipFile, name: str, max_bytes: int) -> np.ndarray:
    """One ``.npy`` member of an open zip, its header checked first: no object dtype, the
    declared size within ``max_bytes`` and equal to the member's uncompressed size."""
    from numpy.lib import format as npf

    info = zf.getinfo(name)
    if info.file_size > max_bytes + 4096:
        raise _NpzRefused(f"npz_member_too_large: {name} is {info.file_size} bytes uncompressed")
    with zf.open(info) as f:
        version = npf.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = npf.read_array_header_1_0(f)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = npf.read_array_header_2_0(f)
        else:
            raise _NpzRefused(f"npz_bad_header: {name} version {version}")
        if dtype.hasobject:
            raise _NpzRefused(f"npz_object_array: {name}")
        count = int(np.prod(shape, dtype=object)) if shape else 1
        nbytes = count * dtype.itemsize
        if nbytes > max_bytes:
            raise _NpzRefused(f"npz_header_too_large: {name} claims {shape} {dtype} ({nbytes} bytes)")
        if f.tell() + nbytes != info.file_size:
            raise _NpzRefused(f"npz_header_mismatch: {name} claims {nbytes} data bytes, member holds "
                              f"{info.file_size - f.tell()}")
        data = f.read(nbytes)
        if len(data) != nbytes:
            raise _NpzRefused(f"npz_truncated: {name}")
    arr = np.frombuffer(data, dtype=dtype)
    return arr.reshape(shape, order="F" if fortran else "C").copy()


def read_npz(path: str | Path, expect_size: int | None = STAMP_PIX, expect_bands: str | None = None) -> Cutout:
    """Load an NPZ cutout as (C, H, W) float32; a failure (with reason) on any problem.

    Never raises: a truncated or corrupted file (bad zip, zlib error, CRC mismatch), a
    header that lies about the array size (refused before allocating: at most
    ``MAX_MEMBER_BYTES`` per member), an object array, or wrong shape / size / bands /
    dtype, or non-finite pixels other than NaN (inf) all give ``ok=False`` with a reason."""
    bands = expect_bands or BANDS
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            if "cutout.npy" not in names:
                return Cutout.failure(bands, "npz_missing_cutout_key", path=str(path))
            meta_names = [n for n in names if n.startswith("meta_") and n.endswith(".npy")]
            if len(meta_names) > MAX_META_KEYS:
                return Cutout.failure(bands, f"npz_too_many_keys: {len(meta_names)}", path=str(path))
            arr = _read_member(zf, "cutout.npy", MAX_MEMBER_BYTES)
            meta = {}
            for n in meta_names:
                v = _read_member(zf, n, 65536)
                if v.ndim == 0:
                    meta[n[5:-4]] = v.item()
    except _NpzRefused as exc:
        return Cutout.failure(bands, str(exc), path=str(path))
    except Exception as exc:  # noqa: BLE001 - zip, zlib, CRC, EOF, header parse: all mean "unreadable"
        return Cutout.failure(bands, f"npz_unreadable: {type(exc).__name__}: {exc}"[:300], path=str(path))
    bands = str(meta.get("bands_requested", bands))
    if arr.ndim != 3 or arr.shape[2] != len(bands):
        return Cutout.failure(bands, f"wrong_shape {tuple(arr.shape)}", path=str(path))
    if expect_size is not None and arr.shape[:2] != (expect_size, expect_size):
        return Cutout.failure(bands, f"wrong_size {arr.shape[:2]}", path=str(path))
    if expect_bands is not None and bands != expect_bands:
        return Cutout.failure(bands, f"wrong_bands {bands}", path=str(path))
    if not np.issubdtype(arr.dtype, np.floating):
        return Cutout.failure(bands, f"wrong_dtype {arr.dtype}", path=str(path))
    if np.isinf(arr).any():
        return Cutout.failure(bands, "infinite_pixels", path=str(path))
    return Cutout(True, bands, np.transpose(arr, (2, 0, 1)).astype(np.float32), "", meta)
