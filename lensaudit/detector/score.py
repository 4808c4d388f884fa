"""Score a cutout store with a frozen detector, I/O overlapped with the device.

Batches of index rows are read from the memory-mapped shards by ``workers`` threads
(numpy copies release the GIL) straight into pinned host buffers -- only the window of each
stamp that ``raw_robust`` reads (``preprocess.input_window``: 65^2 of 101^2 px for the 64 px
crop, the same numbers as reading the whole stamp) -- copied to the device on a copy stream
asynchronously, normalised there by ``raw_robust`` and scored in bf16 (channels_last) on
CUDA; on the CPU the same code runs in float32.  Returns logits in index order.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

import numpy as np
import pandas as pd
import torch

from lensaudit.detector.graphs import graphed_forward, replay_rows
from lensaudit.detector.preprocess import input_window, raw_robust
from lensaudit.detector.ranks import all_gather_rows, process_group, rank_rows
from lensaudit.pinned_host import register_pinned_in_threads


@lru_cache(maxsize=8)
def _raw_robust_channels_last(crop: int):
    """The model input of raw stamps, as the eager scan makes it (one function object per crop:
    ``graphed_forward`` keys its graphs on it)."""
    def prepare(x: torch.Tensor) -> torch.Tensor:
        return raw_robust(x, crop=crop, channels_last=True)[0]
    return prepare


#: reader threads of ``score_store``: eager model / compiled model (CUDA), see its docstring
WORKERS = 4
COMPILED_WORKERS = 8


def score_store(index: pd.DataFrame, reader, model, device: str, crop: int = 64, batch: int = 4096,
                workers: int | None = None, compiled: bool = False, cuda_graph: bool = False,
                graph_preprocess: bool = False, read_chunk: int | None = None,
                stats: dict | None = None) -> np.ndarray:
    """Logits for the ``cutout_ok`` rows of ``index`` (raises on any other row).

    ``cuda_graph`` (CUDA): the model's bf16 forward is captured once for a full batch
    (``detector.graphs``) and every batch replays it (one launch instead of ~100, so the host
    thread that launches is less slowed by the reader threads); the eager kernels, the same logits.
    ``graph_preprocess`` (with ``cuda_graph``): ``raw_robust`` is captured in the same graph,
    before the model (the copied raw window goes into the graph's static input, one replay does
    the whole device work of a batch).

    On CUDA every batch runs at the full ``batch`` rows (the last one padded with whatever its
    buffer holds, those logits dropped; eval-mode layers treat images independently): one
    input shape, so cuDNN / cuBLAS pick their kernels once and a stamp's logit does not depend
    on where the scan's chunks end (as in the selection function's scoring); the eager, graphed
    and compiled scans all run that shape.

    ``compiled`` (CUDA): the model runs under ``torch.compile`` (Inductor fuses the batch
    norms and activations around cuDNN's convolutions), one graph compiled for the one
    shape (with ``cuda_graph``: the compiled kernels are what the CUDA graph records).  The
    logits then differ from the eager bf16 ones by bf16 rounding (RESULTS.md gives the
    measured maximum).

    ``read_chunk``: rows per read task (default: one task per batch).  Smaller tasks, queued
    for at least two per reader thread, let a thread that finishes early take the next chunk
    instead of idling until the main thread has consumed the batch it waits for (in the
    H200 scans with 4 reader threads the main thread waits 55-84 % of the time on reads that,
    alone, run faster than any scan: RESULTS.md "The scan's read path"); measured on an H100 they
    did not help (512 / 256 rows: 170k / 137k img/s against 185k, RESULTS.md session 10), so not
    the default.  The first batch is read in tasks of at most ``ceil(batch / workers)`` rows, one
    per reader thread (the device waits for it: at one thread's ~35-40k rows/s a 4,096-row
    batch takes ~0.1 s, RESULTS.md session 19).
    ``workers``: reader threads; default ``COMPILED_WORKERS`` (8) for the compiled model on CUDA, else
    ``WORKERS`` (4).  A long scan on an H100 (RESULTS.md session 22, marginal rates with raw_robust's
    kernel): compiled, 8 threads 369k-437k img/s at 64² and 181k-183k at 101², 4 threads 151k-283k and
    135k-182k (the reads are then the bound); eager, 4 threads 293k / 133k, 8 threads 253k-258k /
    113k-114k (the launching thread loses more to the readers than the reads gain).
    ``stats``: filled with the main thread's seconds spent waiting for reads
    (``wait_read_s``) and for copies (``wait_copy_s``), the seconds from the call to the first batch
    read (``first_read_s``: the device has nothing to do until then), and the wall time
    (``wall_s``)."""
    if not index["cutout_ok"].all():
        raise ValueError("score_store takes cutout_ok rows only")
    cuda = device.startswith("cuda")
    compiled = compiled and cuda
    workers = (COMPILED_WORKERS if compiled else WORKERS) if workers is None else workers
    graphed = cuda_graph and cuda
    prepare = _raw_robust_channels_last(crop) if graphed and graph_preprocess else None
    net = torch.compile(model, dynamic=False) if compiled else model  # (graphed: the fallback)
    n = len(index)
    starts = list(range(0, n, batch))
    read_chunk = batch if read_chunk is None else max(1, min(int(read_chunk), batch))
    per_batch = -(-batch // read_chunk)
    # batches queued ahead: >= 2 chunks per reader thread (one chunk per batch: workers + 1, the
    # previous pipeline's depth)
    ahead = min(max(1, workers) + 1, max(2, -(-2 * max(1, workers) // per_batch)))
    window = input_window(reader.size, crop)
    width = window[1] - window[0]
    if cuda:  # new pinned blocks page-locked by several threads (timed on the selection stream's blocks)
        register_pinned_in_threads()
    # not zero-filled (on CUDA up to workers + 2 pinned buffers of 0.2-0.5 GB each, rewritten by every batch): the rows
    # past the end of a partial last batch are zeroed when it is handed over
    bufs = [torch.empty((batch, reader.bands, width, width), dtype=torch.float32, pin_memory=cuda)
            for _ in range(min(ahead + 1, len(starts)) or 1)]
    out = torch.empty(n, dtype=torch.float32, device=device)
    model.eval()
    copied: dict[int, torch.cuda.Event] = {}
    copy_stream = torch.cuda.Stream() if cuda else None

    def forward(x: torch.Tensor) -> torch.Tensor:
        if prepare is not None:  # raw_robust + model in one graph
            g = graphed_forward(model, (batch, *x.shape[1:]), x.dtype, x.device, torch.bfloat16, prepare, compiled)
            if g is not None:
                return replay_rows(g, x).float().squeeze(1)
        y, _ = raw_robust(x, crop=crop, channels_last=cuda)
        g = (graphed_forward(model, (batch, *y.shape[1:]), y.dtype, y.device, torch.bfloat16, compiled=compiled)
             if graphed and prepare is None else None)
        if g is not None:
            return replay_rows(g, y).float().squeeze(1)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
            return net(y).float().squeeze(1)

    def read(i: int, a: int, b: int) -> None:  # rows a:b of batch i into its buffer
        rows = index.iloc[starts[i] + a:starts[i] + b]
        reader.read(rows, out=bufs[i % len(bufs)].numpy()[a:a + len(rows)], window=window)

    def submit(pool, i: int) -> list:
        m = min(batch, n - starts[i])
        # the first batch in one task per reader thread: the device has nothing to do until it is read
        chunk = min(read_chunk, -(-m // max(1, workers))) if i == 0 else read_chunk
        return [pool.submit(read, i, a, min(a + chunk, m)) for a in range(0, m, chunk)]

    timing = {"wait_read_s": 0.0, "wait_copy_s": 0.0, "first_read_s": 0.0}
    t_start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool, torch.no_grad():
        pending = [submit(pool, i) for i in range(min(ahead, len(starts)))]  # (a lone batch too)
        nxt = len(pending)
        for i in range(len(starts)):
            m = min(batch, n - starts[i])
            t0 = time.perf_counter()
            for f in pending.pop(0):
                f.result()
            timing["wait_read_s"] += time.perf_counter() - t0
            if i == 0:
                timing["first_read_s"] = time.perf_counter() - t_start
            if m < batch:  # the padding rows of a partial batch: zeros, not a previous batch's stamps
                bufs[i % len(bufs)][m:].zero_()
            if cuda:  # the copy on its own stream, overlapping the previous batch's compute
                with torch.cuda.stream(copy_stream):
                    x = bufs[i % len(bufs)].to(device, non_blocking=True)  # full batch: one shape
                    copied[i] = torch.cuda.Event()
                    copied[i].record(copy_stream)
                torch.cuda.current_stream().wait_event(copied[i])
                x.record_stream(torch.cuda.current_stream())
            else:
                x = bufs[i % len(bufs)][:m]
            out[starts[i]:starts[i] + m] = forward(x)[:m]
            if nxt < len(starts):
                prev = copied.pop(nxt - len(bufs), None)  # the batch that last used this buffer
                if prev is not None:
                    t0 = time.perf_counter()
                    prev.synchronize()
                    timing["wait_copy_s"] += time.perf_counter() - t0
                pending.append(submit(pool, nxt))
                nxt += 1
    result = out.cpu().numpy().astype(np.float64)
    if stats is not None:
        stats.update(timing, wall_s=time.perf_counter() - t_start)
    return result


def score_store_ranks(index: pd.DataFrame, reader, model, device: str, **kw) -> np.ndarray:
    """Data-parallel ``score_store`` over the processes of an initialised ``torch.distributed``
    group (NCCL on GPUs, one process per GPU as ``torchrun`` starts them; gloo on the CPU): each rank
    scores its ``rank_rows`` of ``index`` on ``device`` with ``score_store(**kw)`` (its own reader
    threads and pinned buffers), then the logits are all-gathered (padded to the largest share), so
    every rank returns all of them in index order -- the single-process logits, since each stamp's
    logit depends only on the stamp (every batch runs at the full batch shape)."""
    rank, world = process_group("score_store_ranks")
    part = index.iloc[rank_rows(len(index), rank, world)]
    logits = score_store(part, reader, model, device, **kw) if len(part) else np.zeros(0)
    return all_gather_rows(logits, len(index), device)
