"""The raw generator outputs behind the host-cluster bootstrap, drawn once and ahead of time.

``completeness._cell_bootstrap`` resamples a cell's m distinct hosts n_boot times with
``np.random.default_rng([seed, cell]).integers(0, m, size=(n_boot, m))``.  numpy maps PCG64's
32-bit outputs to indices by Lemire's method, so the device path (``completeness._bootstrap_torch``)
needs only the raw outputs: the first n_boot * m of the cell's stream.  A longer draw starts with
the same outputs, so they can be drawn *before the scores exist*, for an upper bound of m: the
distinct hosts the injection plan gives the cell (host false positives, known only after scoring,
only remove hosts).  ``BootstrapDraws.for_injections(..., background=True)`` draws them (threads,
the GIL released) and uploads them (a side CUDA stream) while the device renders and scores; one
draw then serves every operating threshold.  The numbers are those of drawing at the end.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import pandas as pd
import torch

from lensaudit.device_upload import to_device_beside

RAW_DRAW_THREADS = 16  # threads drawing the raw generator outputs (no GIL held while drawing)
# in the background, fewer: the draws have the whole stream to finish, and more threads (14 on a 16-core
# H100 host) slowed the host work running beside them by ~0.08 s (page faults on the fresh buffer)
BACKGROUND_DRAW_THREADS = 4


def raw_uint32(seed: int, cell: int, count: int) -> np.ndarray:
    """The first ``count`` 32-bit outputs that ``np.random.default_rng([seed, cell])`` hands to
    ``integers`` (PCG64's 64-bit outputs, low half first: a little-endian uint32 view)."""
    return np.random.default_rng([int(seed), int(cell)]).bit_generator.random_raw((count + 1) // 2).view(np.uint32)[:count]


def hosts_per_cell(cell: np.ndarray, host: np.ndarray) -> dict[int, int]:
    """{cell: number of distinct hosts} of injections given as (cell, host) pairs."""
    pairs = pd.DataFrame({"cell": np.asarray(cell, dtype=np.int64), "host": np.asarray(host)}).drop_duplicates()
    counts = pairs["cell"].value_counts()
    return {int(c): int(n) for c, n in counts.items()}


def _upload(flat: np.ndarray, device: torch.device) -> torch.Tensor:
    """The raw outputs as int32 (the uint32 bits) on ``device`` (``to_device_beside``)."""
    return to_device_beside(torch.from_numpy(flat.view(np.int32)), device)


class BootstrapDraws:
    """Every cell's first ``n_boot * count`` raw outputs of ``default_rng([seed, cell])``, on
    ``device`` as int32 (the uint32 bits).  ``counts``: {cell: host count}, or a callable that
    returns it (evaluated in the background thread when ``background``)."""

    def __init__(self, counts, seed: int, n_boot: int, device, background: bool = False,
                 threads: int | None = None):
        self.seed, self.n_boot, self.device = int(seed), int(n_boot), torch.device(device)
        self.ready_at: float | None = None  # perf_counter when the draws were on the device (the bench reports it)
        cpus = os.cpu_count() or 1
        self._threads = threads or max(1, min(BACKGROUND_DRAW_THREADS if background else RAW_DRAW_THREADS, cpus))
        if background:
            pool = ThreadPoolExecutor(1, thread_name_prefix="bootstrap-draws")
            self._result = pool.submit(self._draw, counts)
            pool.shutdown(wait=False)
        else:
            self._result = Future()
            self._result.set_result(self._draw(counts))
        self._stream_recorded = False

    @classmethod
    def for_injections(cls, cell, host, seed: int, n_boot: int, device, background: bool = False) -> "BootstrapDraws":
        """Draws for injections given as (cell, host) pairs (the plan's: an upper bound of each
        cell's hosts left once host false positives are set aside)."""
        cell, host = np.asarray(cell).copy(), np.asarray(host).copy()
        return cls(lambda: hosts_per_cell(cell, host), seed, n_boot, device, background)

    def _draw(self, counts) -> tuple[torch.Tensor, dict[int, tuple[int, int]]]:
        counts = counts() if callable(counts) else counts
        cells = sorted(counts)
        lengths = np.array([self.n_boot * int(counts[c]) for c in cells], dtype=np.int64)
        starts = np.r_[0, np.cumsum(lengths)[:-1]].astype(np.int64)
        flat = np.empty(int(lengths.sum()), dtype=np.uint32)

        def draw(i: int) -> None:
            flat[starts[i]:starts[i] + lengths[i]] = raw_uint32(self.seed, cells[i], int(lengths[i]))

        threads = min(self._threads, max(len(cells), 1))
        if threads > 1:
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(draw, range(len(cells))))
        else:
            for i in range(len(cells)):
                draw(i)
        offsets = {c: (int(s), int(n)) for c, s, n in zip(cells, starts, lengths)}
        out = _upload(flat, self.device)
        self.ready_at = time.perf_counter()
        return out, offsets

    def matches(self, seed: int, n_boot: int, device) -> bool:
        return self.seed == int(seed) and self.n_boot == int(n_boot) and self.device == torch.device(device)

    def rows(self, cells, count: int) -> torch.Tensor:
        """(len(cells), count) int32 on the device: row i holds the first ``count`` outputs of
        cell ``cells[i]``'s stream (drawn now for a cell the draws do not cover)."""
        flat, offsets = self._result.result()
        if self.device.type == "cuda" and not self._stream_recorded:  # made on the side stream, read on this one
            flat.record_stream(torch.cuda.current_stream(self.device))
            self._stream_recorded = True
        parts = []
        for c in cells:
            start, length = offsets.get(int(c), (0, -1))
            if length >= count:
                parts.append(flat[start:start + count])
            else:
                parts.append(_upload(raw_uint32(self.seed, int(c), count), self.device))
        if not parts:
            return torch.zeros((0, count), dtype=torch.int32, device=self.device)
        return torch.stack(parts)
