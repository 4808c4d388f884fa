"""The cutout store: float32 shards plus a Parquet index.

Layout under a store directory: ``shards/<partition>-<k>.npy`` (N, C, H, W) float32
nmgy/pixel, written atomically, and the ``cutouts`` asset index (one Parquet file per
partition) with ``galaxy_id, cutout_path`` (shard path relative to the store),
``cutout_offset`` (row in the shard, -1 for failures), ``cutout_ok``, ``fail_reason``,
``bands`` and QC columns.  A shard is accepted only when its .npy header matches the
index (shape and dtype); a shard left by a killed run is a ``.tmp`` file that no reader
opens.  Reads memory-map the shards and gather rows into one (N, C, H, W) batch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from lensaudit.store import atomic_path
from lensaudit.survey.instrument import BANDS, STAMP_PIX

SHARD_ROWS = 2048


def _shard_rows(stack) -> tuple[tuple[int, ...], list[np.ndarray]]:
    """(shard shape, C-contiguous float32 rows) of a (N, C, H, W) array or a sequence of (C, H, W)
    stamps -- the rows in order, each a view where the input already is C-contiguous float32 (no copy
    of the whole shard)."""
    if isinstance(stack, np.ndarray):
        if stack.ndim != 4:
            raise ValueError(f"a shard is (N, C, H, W), got {stack.shape}")
        rows = list(np.ascontiguousarray(stack, dtype=np.float32))
        return tuple(stack.shape), rows
    rows = [np.ascontiguousarray(r, dtype=np.float32) for r in stack]
    shapes = {r.shape for r in rows}
    if len(shapes) != 1 or len(next(iter(shapes))) != 3:
        raise ValueError(f"a shard's stamps are (C, H, W) of one shape, got {sorted(shapes)}")
    return (len(rows), *rows[0].shape), rows


def shard_relpath(stem: str, k: int, stack) -> str:
    """``shards/<stem>-<k:04d>-<sha256[:16]>.npy``: shard k of a partition, named by the sha256 of
    its float32 bytes in C order (what the integrity gates recompute); ``stack``: a (N, C, H, W) array
    or the sequence of its (C, H, W) stamps (hashed one after the other: the same digest)."""
    import hashlib

    digest = hashlib.sha256()
    for row in _shard_rows(stack)[1]:
        digest.update(row)
    return f"shards/{stem}-{k:04d}-{digest.hexdigest()[:16]}.npy"


def write_shard(path: Path, stack) -> None:
    """Write a shard atomically as a float32 ``.npy`` (the bytes ``np.save`` writes for the stacked
    array); ``stack``: a (N, C, H, W) array or the sequence of its (C, H, W) stamps, written one after
    the other after the header (no stacked copy)."""
    shape, rows = _shard_rows(stack)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            _write_npy(f, shape, rows)


def _write_npy(f, shape: tuple[int, ...], rows: list[np.ndarray]) -> None:
    """The ``.npy`` bytes of the stacked float32 ``rows`` (format 1.0 header, as np.save) into ``f``."""
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)), "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(f, header)
    for row in rows:
        f.write(row.data)


class ShardError(RuntimeError):
    """A shard does not match its index (missing, truncated, wrong shape or dtype)."""


class CutoutReader:
    """Batched reads from a store: ``read(index_rows) -> (N, C, H, W) float32``."""

    def __init__(self, store_dir: str | Path, bands: int = len(BANDS), size: int = STAMP_PIX):
        self.root = Path(store_dir)
        self.bands, self.size = bands, size
        self._maps: dict[str, np.ndarray] = {}

    def _shard(self, rel: str) -> np.ndarray:
        if rel not in self._maps:
            from lensaudit.store import check_relpath

            try:
                check_relpath(rel)
            except ValueError as exc:
                raise ShardError(f"shard path {rel!r} escapes the store {self.root} or is not a plain name") from exc
            p = (self.root / rel).resolve()
            if self.root.resolve() not in p.parents:
                raise ShardError(f"shard path {rel!r} escapes the store {self.root}")
            try:
                arr = np.load(p, mmap_mode="r")
            except (OSError, ValueError) as exc:
                raise ShardError(f"unreadable shard {rel}: {exc}") from exc
            if arr.dtype != np.float32 or arr.ndim != 4 or arr.shape[1:] != (self.bands, self.size, self.size):
                raise ShardError(f"shard {rel} has shape {arr.shape} {arr.dtype}")
            self._maps[rel] = arr
        return self._maps[rel]

    def read(self, index: pd.DataFrame, out: np.ndarray | None = None,
             window: tuple[int, int] | None = None) -> np.ndarray:
        """Rows of ``index`` (cutout_ok rows only) in order; shards read in sorted order.
        ``window=(start, stop)``: only pixels ``[start:stop, start:stop]`` of every stamp are
        read (e.g. ``preprocess.input_window``), the rest of each stamp never leaves the file."""
        if not index["cutout_ok"].all():
            raise ValueError("read() takes cutout_ok rows only")
        n = len(index)
        a, b = (0, self.size) if window is None else (int(window[0]), int(window[1]))
        if not 0 <= a < b <= self.size:
            raise ValueError(f"window {window} is not inside a {self.size}-px stamp")
        win = slice(a, b)
        out = np.empty((n, self.bands, b - a, b - a), np.float32) if out is None else out
        paths = index["cutout_path"].to_numpy()
        offs = index["cutout_offset"].to_numpy()
        if not np.issubdtype(offs.dtype, np.integer):
            f = np.asarray(offs, dtype=np.float64)
            if len(f) and not (np.isfinite(f).all() and (f == np.round(f)).all()):
                raise ShardError("cutout_offset holds non-integer values")
            offs = f.astype(np.int64)
        # rows grouped by shard in one hash pass (no sort of the path strings, which holds the
        # GIL: the scan reads from several threads while its main thread launches device work)
        codes, shards = pd.factorize(paths, sort=True)
        if (codes < 0).any():
            raise ShardError("index holds a row without a cutout_path")
        by_shard = np.argsort(codes, kind="stable")
        groups = np.split(by_shard, np.flatnonzero(np.diff(codes[by_shard])) + 1) if n else []
        for sel in groups:  # shards in sorted order, each group's rows in index order
            rel = shards[codes[sel[0]]]
            shard = self._shard(rel)
            o = offs[sel].astype(np.int64)
            if o.max() >= len(shard):
                raise ShardError(f"index points past the end of shard {rel} (offset {int(o.max())} >= {len(shard)} rows)")
            if o.min() < 0:  # -1 would wrap to the last stamp
                raise ShardError(f"index holds a negative offset {int(o.min())} into shard {rel}")
            # contiguous runs are copied as slices, the rest gathered
            if len(o) > 1 and np.all(np.diff(o) == 1) and np.all(np.diff(sel) == 1):
                out[sel[0]:sel[-1] + 1] = shard[o[0]:o[-1] + 1, :, win, win]
            else:  # gather in file order (sequential pages), then place
                order = np.argsort(o, kind="stable")
                out[sel[order]] = shard[o[order], :, win, win]
        return out


def export_npz(index: pd.DataFrame, reader: CutoutReader, out_dir: str | Path, bands: str = BANDS) -> list[Path]:
    """Write the research group's per-cutout NPZ files for ``cutout_ok`` rows of ``index``."""
    from lensaudit.cutouts.npz import write_npz
    from lensaudit.cutouts.result import Cutout
    from lensaudit.store import safe_join

    out = []
    ok = index[index["cutout_ok"]]
    stack = reader.read(ok)
    for row, arr in zip(ok.itertuples(index=False), stack):
        meta = {k: getattr(row, k) for k in ("ra", "dec", "brickname") if hasattr(row, k)}
        out.append(write_npz(safe_join(out_dir, f"{row.galaxy_id}.npz"), Cutout(True, bands, arr),
                             galaxy_id=row.galaxy_id, **meta))
    return out
