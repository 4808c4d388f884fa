"""Benchmark: detector training and inference throughput (the ``lensaudit.detector`` code).

Writes N synthetic stamps into a real cutout store (shards + index), then
* inference: ``lensaudit.detector.score.score_store`` (threaded shard reads of the window
  ``raw_robust`` needs into pinned buffers, async copy, ``raw_robust`` on the device, ResNet-18
  bf16 channels_last) at 64^2 and 101^2 crops, I/O included (page cache warm: the second pass
  is timed), for each reader thread count of ``--workers`` and batch size of ``--batch``, in the
  modes of ``--scan-modes`` (eager; ``graph``: the model replayed from a CUDA graph;
  ``graph-pre``: raw_robust + model in one graph; with ``--compile-model`` also ``compiled``,
  ``compiled-graph`` and ``compiled-graph-pre``: the compiled model, alone or recorded in a
  CUDA graph, at the first batch size only), each
  mode's max |dlogit| against the eager scan on a row count that ends in a partial batch; then
  the store reads alone and the device work alone (the two bounds of the overlapped scan; ``--io-bounds``:
  per reader-thread count, the reads alone into the scan's pinned batch buffers and the scan with a
  trivial model, i.e. its I/O path alone);
* training: ``lensaudit.detector.train.train`` on preprocessed 64^2 stamps resident on
  the device (its own batching, per-sample augmentation, validation), two epochs, eager
  steps and CUDA-graph steps with the same seed (and how far their weights drift apart);
  img/s counts the training steps incl. the batch gather.
Reference in the same run: the naive loop (single-threaded read, pageable copy, no
overlap) that the previous version measured.
Run: PYTHONPATH=. python bench/bench_detector.py --device cuda  (``bench/run_scan_gpu.sh``: the device call)
"""

from __future__ import annotations

import argparse
from concurrent.futures import ThreadPoolExecutor
import time

import numpy as np
import pandas as pd

from _scratch import scratch_dir


#: --handoff: the reader threads' rate with and without the host-to-device copies running is measured over at
#: least this many seconds each, counted every READ_COUNT_ROWS rows (a whole-batch count over the copies' ~0.16 s
#: was too coarse: bench/RESULTS.md, session 18)
H2D_WINDOW_S = 1.0
READ_COUNT_ROWS = 256


def read_batch(idx, reader, starts, i, batch, buf, win) -> int:
    """Batch ``i`` (of the batch ``starts``) of the store's window ``win`` into the host buffer ``buf``, as
    ``score_store``'s reader threads do; the number of rows read."""
    rows = idx.iloc[starts[i % len(starts)]:starts[i % len(starts)] + batch]
    reader.read(rows, out=buf.numpy()[:len(rows)], window=win)
    return len(rows)


def io_bounds(idx, reader, dev, crop, batch, workers, win, sync, chunks=(None,)) -> None:
    """What the scan's I/O path alone reaches per reader-thread count: the reads alone, each thread
    filling whole batches of a ring of pinned buffers as ``score_store`` does, and ``score_store``
    itself with a model that costs nothing (a mean), so its time is reads + copies + raw_robust."""
    import torch
    from torch import nn

    from lensaudit.detector.score import score_store

    class Trivial(nn.Module):
        def forward(self, x):
            return x.mean(dim=(1, 2, 3))[:, None]

    width = win[1] - win[0]
    starts = list(range(0, len(idx), batch))
    for w in workers:
        bufs = [torch.empty((batch, reader.bands, width, width), dtype=torch.float32,
                            pin_memory=dev.startswith("cuda")) for _ in range(w + 2)]

        def fill(i):
            read_batch(idx, reader, starts, i, batch, bufs[i % len(bufs)], win)
        with ThreadPoolExecutor(w) as pool:
            list(pool.map(fill, range(len(starts))))
            t0 = time.perf_counter()
            list(pool.map(fill, range(len(starts))))
            dt = time.perf_counter() - t0
        trivial = Trivial().to(dev)
        scans = []
        for chunk in chunks:
            stats: dict = {}
            score_store(idx, reader, trivial, dev, crop, batch, w, read_chunk=chunk)
            sync()
            t0 = time.perf_counter()
            score_store(idx, reader, trivial, dev, crop, batch, w, read_chunk=chunk, stats=stats)
            sync()
            scans.append(f"read chunks of {chunk or batch} rows {len(idx) / (time.perf_counter() - t0):,.0f} "
                         f"img/s (waits: reads {stats['wait_read_s'] / stats['wall_s']:.0%}, "
                         f"copies {stats['wait_copy_s'] / stats['wall_s']:.0%}; first batch read after "
                         f"{stats.get('first_read_s', float('nan')) * 1e3:.0f} ms of {stats['wall_s'] * 1e3:.0f} ms)")
        print(f"  I/O bounds, {width}^2 window, batch {batch}, {w} reader threads: reads alone into pinned batch "
              f"buffers {len(idx) / dt:,.0f} img/s; scan with a trivial model: {'; '.join(scans)}")


def h2d_bounds(idx, reader, dev, batch, workers, win) -> None:
    """The host-to-device copy of the scan's pinned batch buffers alone: one stream, two streams
    (half a batch each), and one stream while ``w`` reader threads keep filling other pinned
    buffers from the store (the memory traffic the scan copies under), with those threads' read
    rate while the copies run and while nothing else does (the same threads, one after the other)."""
    import threading

    import torch

    width = win[1] - win[0]
    host = [torch.empty((batch, reader.bands, width, width), dtype=torch.float32, pin_memory=True) for _ in range(2)]
    devb = [torch.empty_like(h, device=dev) for h in host]
    nbytes = host[0].numel() * 4
    streams = [torch.cuda.Stream() for _ in range(2)]

    def copies(n_streams, reps=20):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for r in range(reps):
            if n_streams == 1:
                with torch.cuda.stream(streams[0]):
                    devb[r % 2].copy_(host[r % 2], non_blocking=True)
            else:
                for k in range(2):
                    h = batch // 2
                    with torch.cuda.stream(streams[k]):
                        devb[r % 2][k * h:(k + 1) * h].copy_(host[r % 2][k * h:(k + 1) * h], non_blocking=True)
        torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        return reps * nbytes / dt / 1e9, reps * batch / dt
    copies(1)
    for k in (1, 2):
        gbs, ims = copies(k)
        print(f"  host-to-device copy alone ({width}^2 window, batch {batch}, {k} stream(s)): {gbs:.1f} GB/s = {ims:,.0f} img/s")
    starts = list(range(0, len(idx), batch))
    alone_ims = copies(1)[1]
    reps = max(40, int(np.ceil(H2D_WINDOW_S * alone_ims / batch)))  # the copies run >= H2D_WINDOW_S
    for w in workers:
        bufs = [torch.empty_like(host[0]).pin_memory() for _ in range(w)]
        stop = threading.Event()
        counts = [0] * w  # rows read per thread, counted every READ_COUNT_ROWS rows

        def reads(t):  # thread t: batches t, t + w, ... into its own pinned buffer
            i = t
            while not stop.is_set():
                s0 = starts[i % len(starts)]
                m = min(batch, len(idx) - s0)
                for a in range(0, m, READ_COUNT_ROWS):
                    if stop.is_set():
                        return
                    rows = idx.iloc[s0 + a:s0 + min(a + READ_COUNT_ROWS, m)]
                    reader.read(rows, out=bufs[t].numpy()[a:a + len(rows)], window=win)
                    counts[t] += len(rows)
                i += w

        def rate_during(fn):  # rows/s read by the threads while fn() runs, and fn's result
            c0, t0 = sum(counts), time.perf_counter()
            out = fn()
            return (sum(counts) - c0) / (time.perf_counter() - t0), out
        threads = [threading.Thread(target=reads, args=(t,)) for t in range(w)]
        for t in threads:
            t.start()
        time.sleep(0.3)
        rd_alone, _ = rate_during(lambda: time.sleep(H2D_WINDOW_S))
        rd, (gbs, ims) = rate_during(lambda: copies(1, reps=reps))
        stop.set()
        for t in threads:
            t.join()
        print(f"  host-to-device copy while {w} reader threads fill pinned buffers: {gbs:.1f} GB/s = {ims:,.0f} img/s "
              f"(reads meanwhile {rd:,.0f} img/s; the same threads with no copy running: {rd_alone:,.0f} img/s; "
              f"each over >= {H2D_WINDOW_S:g} s, counted every {READ_COUNT_ROWS} rows)")


class SkipReads:
    """A reader that reads nothing: ``score_store`` with it runs its copies, ``raw_robust`` and the model on
    whatever its pinned buffers hold (--overlap: the scan without the store reads)."""

    def __init__(self, reader):
        self.bands, self.size = reader.bands, reader.size

    def read(self, index, out=None, window=None):
        return out


def overlap_bounds(idx, reader, model, dev, crop, batch, modes, workers) -> None:
    """Whether the device overlaps the scan's host-to-device copies with its compute: ``score_store``
    itself with the reads skipped (``SkipReads``; its copy stream, events and per-batch device allocations
    kept), per mode; and a bare pipeline (two preallocated device buffers, the copy of batch i + 1 on a copy
    stream while batch i is computed) against the same compute with no copy at all."""
    import torch

    from lensaudit.detector.preprocess import input_window, raw_robust
    from lensaudit.detector.score import score_store

    skip = SkipReads(reader)
    for mode, kw in modes.items():
        score_store(idx, skip, model, dev, crop, batch, workers, **kw)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        score_store(idx, skip, model, dev, crop, batch, workers, **kw)
        torch.cuda.synchronize()
        print(f"  overlap: score_store, {mode}, reads skipped: {len(idx) / (time.perf_counter() - t0):,.0f} img/s")
    win = input_window(reader.size, crop)
    width = win[1] - win[0]
    host = [torch.randn((batch, reader.bands, width, width)).pin_memory() for _ in range(2)]
    devb = [torch.empty_like(h, device=dev) for h in host]
    done = [torch.cuda.Event() for _ in range(2)]
    copy_stream = torch.cuda.Stream()
    n_batches = -(-len(idx) // batch)

    def pipeline(copy: bool):
        with torch.no_grad():
            for i in range(n_batches):
                if copy:
                    with torch.cuda.stream(copy_stream):
                        copy_stream.wait_event(done[i % 2])  # the compute that last read this buffer
                        devb[i % 2].copy_(host[i % 2], non_blocking=True)
                        ev = torch.cuda.Event()
                        ev.record(copy_stream)
                    torch.cuda.current_stream().wait_event(ev)
                xb, _ = raw_robust(devb[i % 2], crop=crop)
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    model(xb.contiguous(memory_format=torch.channels_last))
                done[i % 2].record(torch.cuda.current_stream())
        torch.cuda.synchronize()
    for copy in (False, True, False, True):
        pipeline(copy)
        t0 = time.perf_counter()
        pipeline(copy)
        print(f"  overlap: bare pipeline (eager), {'copy of the next batch on a copy stream' if copy else 'no copy'}: "
              f"{n_batches * batch / (time.perf_counter() - t0):,.0f} img/s")


def main() -> None:
    import torch

    from lensaudit.cutouts.store import SHARD_ROWS, CutoutReader, write_shard
    from lensaudit.detector.models import build_model
    from lensaudit.detector.preprocess import input_window, raw_robust
    from lensaudit.detector.score import score_store
    from lensaudit.detector.train import TrainConfig, train

    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--n", type=int, default=65536)
    ap.add_argument("--batch", default="4096", help="score_store batch sizes, comma-separated variants (the first "
                    "for the references, the bounds and training's data)")
    ap.add_argument("--workers", default="8,16", help="reader threads of score_store, comma-separated variants")
    ap.add_argument("--scan-modes", default="eager,graph,graph-pre",
                    help="score_store modes, comma-separated: eager, graph (cuda_graph), graph-pre (cuda_graph + "
                    "graph_preprocess); compiled is added by --compile-model")
    ap.add_argument("--train-n", type=int, default=65536)
    ap.add_argument("--skip-train", action="store_true", help="inference only")
    ap.add_argument("--crops", default="64,101")
    ap.add_argument("--compile-model", action="store_true", help="also time the model under torch.compile")
    ap.add_argument("--io-bounds", action="store_true",
                    help="per reader-thread count: the store reads alone into pinned batch buffers, and the scan with "
                         "a trivial model (reads + host-to-device copies + raw_robust: the scan's I/O path alone)")
    ap.add_argument("--read-chunks", default="batch",
                    help="score_store read_chunk sizes (rows per read task), comma-separated variants (the first for "
                         "the references); 'batch': one task per batch (the default pipeline)")
    ap.add_argument("--handoff", action="store_true",
                    help="the host-to-device copies alone (1 and 2 streams, and under concurrent store reads) and "
                         "the main thread's waits (reads, copies) of every scan")
    ap.add_argument("--autotune", action="store_true",
                    help="also time the model alone under torch.compile(mode='max-autotune-no-cudagraphs') (Inductor "
                         "benchmarks its Triton convolution templates against cuDNN per layer; minutes to compile)")
    ap.add_argument("--lengths", default="1",
                    help="scan lengths, comma-separated multiples of the store's rows (the index repeated, every row "
                         "read that many times from the warm page cache); with two or more, each variant's marginal "
                         "rate between the shortest and the longest (its per-call costs excluded)")
    ap.add_argument("--overlap", action="store_true",
                    help="per crop: score_store with the store reads skipped (every mode, the first thread count) and "
                         "a bare copy-then-compute pipeline against its compute alone (CUDA)")
    ap.add_argument("--gaps", action="store_true",
                    help="one more run of the first score_store variant per crop under torch.profiler with Python "
                         "stacks: the device's busy and idle time, the idle gaps charged to the code that ended them "
                         "(bench/_trace_gaps.py; CUDA)")
    ap.add_argument("--robust", default="kernel",
                    help="raw_robust paths on CUDA, comma-separated variants of every scan: kernel (the one-pass Triton "
                         "kernel, preprocess.KERNEL_ON_CUDA, the library's default), torch (torch operations); the "
                         "first one for the rest of the run; the parts (raw_robust alone) time both and compare their values")
    ap.add_argument("--cudnn-benchmark", default="off",
                    help="torch.backends.cudnn.benchmark for the scans, comma-separated variants (off, on: cuDNN times "
                         "its convolution algorithms once per shape); the model-alone parts time both when 'on' is named")
    ns = ap.parse_args()
    dev = ns.device
    cudnn_modes = str(ns.cudnn_benchmark).split(",")
    if set(cudnn_modes) - {"off", "on"}:
        ap.error(f"unknown --cudnn-benchmark {ns.cudnn_benchmark}")
    from lensaudit.detector import preprocess as _preprocess

    robust_paths = str(ns.robust).split(",")
    if set(robust_paths) - {"kernel", "torch"}:
        ap.error(f"unknown --robust {ns.robust}")
    cuda = dev.startswith("cuda")
    rng = np.random.default_rng(0)
    store = scratch_dir("bench_det_")
    rows = []
    for k in range(0, ns.n, SHARD_ROWS):
        rel = f"shards/s-{k // SHARD_ROWS:04d}.npy"
        write_shard(store / rel, rng.normal(0, 0.01, (SHARD_ROWS, 3, 101, 101)).astype(np.float32))
        rows += [(rel, i) for i in range(SHARD_ROWS)]
    idx = pd.DataFrame({"cutout_path": [r for r, _ in rows], "cutout_offset": [o for _, o in rows], "cutout_ok": True})
    reader = CutoutReader(store)
    name = torch.cuda.get_device_name(0) if cuda else "cpu"
    workers = [int(w) for w in str(ns.workers).split(",")]
    batches = [int(b) for b in str(ns.batch).split(",")]
    ns.batch = batches[0]
    modes = {"eager": {}, "graph": {"cuda_graph": True}, "graph-pre": {"cuda_graph": True, "graph_preprocess": True}}
    bad = set(ns.scan_modes.split(",")) - set(modes)
    if bad:
        ap.error(f"unknown --scan-modes {sorted(bad)}; known: {sorted(modes)}")
    modes = {m: modes[m] for m in ns.scan_modes.split(",")}
    read_chunks = [None if c == "batch" else int(c) for c in str(ns.read_chunks).split(",")]
    lengths = sorted({int(k) for k in str(ns.lengths).split(",")})
    if ns.compile_model:  # at the first batch size only (compile time)
        modes["compiled"] = {"compiled": True}
        if "graph" in modes:
            modes["compiled-graph"] = {"compiled": True, "cuda_graph": True}
        if "graph-pre" in modes:
            modes["compiled-graph-pre"] = {"compiled": True, "cuda_graph": True, "graph_preprocess": True}
    print(f"device: {name} torch={torch.__version__} stamps={len(idx)} batch={batches} workers={workers} "
          f"modes={list(modes)}")
    model = build_model("resnet18").to(dev)
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    model.eval()

    def sync():
        if cuda:
            torch.cuda.synchronize()

    def robust_path(path: str) -> None:  # the raw_robust of the next scans
        _preprocess.KERNEL_ON_CUDA = path == "kernel"

    def cudnn_benchmark(mode: str) -> None:  # cuDNN's algorithm choice for the next scans
        torch.backends.cudnn.benchmark = mode == "on"

    def naive(crop):
        with torch.no_grad():
            for s in range(0, len(idx), ns.batch):
                raw = torch.from_numpy(reader.read(idx.iloc[s:s + ns.batch])).to(dev)
                xb, _ = raw_robust(raw, crop=crop)
                with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
                    model(xb.contiguous(memory_format=torch.channels_last) if cuda else xb)
        sync()

    for crop in (int(c) for c in ns.crops.split(",")):
        variants = [("naive loop (reference)", lambda ix: naive(crop))]
        stats: dict = {}
        variants += [(f"score_store, {mode}, batch {b}, {w} reader threads, read chunks {c or b}"
                      + (f", raw_robust {rp}" if len(robust_paths) > 1 else "")
                      + (f", cudnn.benchmark {cb}" if len(cudnn_modes) > 1 else ""),
                      lambda ix, w=w, b=b, c=c, kw=kw, rp=rp, cb=cb: robust_path(rp) or cudnn_benchmark(cb) or score_store(
                          ix, reader, model, dev, crop, b, w, read_chunk=c, stats=stats, **kw))
                     for mode, kw in modes.items() for b in (batches[:1] if "compiled" in kw else batches)
                     for w in workers for c in read_chunks for rp in robust_paths for cb in cudnn_modes]
        for label, fn in variants:
            fn(idx)
            took = {}
            for k in (lengths[:1] if label.startswith("naive") else lengths):
                ix = idx if k == 1 else pd.concat([idx] * k, ignore_index=True)
                t0 = time.perf_counter()
                fn(ix)
                sync()
                took[k] = time.perf_counter() - t0
                waits = (f" (main thread waited {stats['wait_read_s'] / stats['wall_s']:.0%} on reads, "
                         f"{stats['wait_copy_s'] / stats['wall_s']:.0%} on copies; first batch read after "
                         f"{stats.get('first_read_s', float('nan')) * 1e3:.0f} ms)" if ns.handoff and stats else "")
                stats.clear()
                rows = f", {k} x {len(idx)} rows" if len(lengths) > 1 else ""
                print(f"inference {crop}x{crop} bf16 from the store, {label}{rows}: {k * len(idx) / took[k]:,.0f} "
                      f"img/s{waits}")
            if len(took) > 1:
                a, b = min(took), max(took)
                per_pass = (took[b] - took[a]) / (b - a)  # seconds per pass over the store, pipeline full
                print(f"  {label}: marginal rate {len(idx) / per_pass:,.0f} img/s (the {b - a} x {len(idx)} rows more "
                      f"of the longer scan over their extra time: the pipeline full, per-call costs excluded); "
                      f"per call {took[a] - a * per_pass:.3f} s beyond that rate")
        robust_path(robust_paths[0])  # the rest: the first path, cuDNN's default
        cudnn_benchmark("off")
        if ns.gaps and cuda:  # the first variant's device timeline (where the device waits)
            from torch.profiler import ProfilerActivity, profile

            from bench._trace_gaps import report

            label, fn = variants[1]
            with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA], with_stack=True) as prof:
                t0 = time.perf_counter()
                fn()
                sync()
                dt = time.perf_counter() - t0
            trace = str(store / f"trace_{crop}.json")
            prof.export_chrome_trace(trace)
            print(f"inference {crop}x{crop}, {label}, under the profiler with Python stacks (overhead included): "
                  f"{len(idx) / dt:,.0f} img/s")
            print(report(trace))
        if ns.overlap and cuda:
            overlap_bounds(idx, reader, model, dev, crop, ns.batch, modes, workers[0])
        if cuda:  # what each mode computes against the eager scan, the last batch partial
            part = idx.iloc[:2 * ns.batch + ns.batch // 3]
            eager = score_store(part, reader, model, dev, crop, ns.batch, workers[0], read_chunk=ns.batch)
            for mode, kw in modes.items():
                if mode != "eager":
                    got = score_store(part, reader, model, dev, crop, ns.batch, workers[0], read_chunk=read_chunks[0], **kw)
                    print(f"  {mode} vs eager scan ({len(part)} rows, batch {ns.batch}): max |dlogit| "
                          f"{np.abs(got - eager).max():.2e}, full batches {np.abs(got - eager)[:2 * ns.batch].max():.2e}")
        # the two halves apart: the store reads alone (threads into one host array, the window
        # raw_robust needs) and the device work alone (raw_robust + the bf16 model on stamps
        # already resident on the device)
        win = input_window(reader.size, crop)
        host = np.empty((len(idx), reader.bands, win[1] - win[0], win[1] - win[0]), np.float32)
        chunks = [(s, min(s + ns.batch, len(idx))) for s in range(0, len(idx), ns.batch)]
        with ThreadPoolExecutor(max(workers)) as pool:
            list(pool.map(lambda ab: reader.read(idx.iloc[ab[0]:ab[1]], out=host[ab[0]:ab[1]], window=win), chunks))
            t0 = time.perf_counter()
            list(pool.map(lambda ab: reader.read(idx.iloc[ab[0]:ab[1]], out=host[ab[0]:ab[1]], window=win), chunks))
            dt = time.perf_counter() - t0
        print(f"  store reads alone ({win[1] - win[0]}^2 window, {max(workers)} threads): {len(idx) / dt:,.0f} img/s "
              f"({host.nbytes / dt / 1e9:.1f} GB/s)")
        if ns.io_bounds:
            io_bounds(idx, reader, dev, crop, batches[0], workers, win, sync, read_chunks)
        if ns.handoff and cuda:
            h2d_bounds(idx, reader, dev, batches[0], workers, win)
        resident = torch.from_numpy(host).to(dev)

        def compute_only():
            with torch.no_grad():
                for a, b in chunks:
                    xb, _ = raw_robust(resident[a:b], crop=crop)
                    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
                        model(xb.contiguous(memory_format=torch.channels_last) if cuda else xb)
            sync()
        compute_only()
        t0 = time.perf_counter()
        compute_only()
        print(f"  device work alone (raw_robust + model, stamps resident): {len(idx) / (time.perf_counter() - t0):,.0f} img/s")
        if cuda and "graph-pre" in modes:  # the same, one CUDA graph replay per batch (score_store's graph-pre)
            from lensaudit.detector.graphs import graphed_forward
            from lensaudit.detector.score import _raw_robust_channels_last
            g = graphed_forward(model, (ns.batch, *resident.shape[1:]), resident.dtype, resident.device,
                                torch.bfloat16, _raw_robust_channels_last(crop))

            def graph_only():
                for a, b in chunks:
                    g[0][:b - a] = resident[a:b]
                    g[1]()
                sync()
            if g is not None:
                graph_only()
                t0 = time.perf_counter()
                graph_only()
                print(f"  device work alone as one CUDA graph per batch (incl. the copy into its input): "
                      f"{len(idx) / (time.perf_counter() - t0):,.0f} img/s")
        xs = [raw_robust(resident[a:b], crop=crop)[0] for a, b in chunks]
        parts = {}
        if not cuda:
            parts["raw_robust alone"] = lambda: [raw_robust(resident[a:b], crop=crop) for a, b in chunks]
        else:  # both paths (not the first path a third time), the kernel's output also written channels_last
            parts["raw_robust alone, torch operations"] = lambda: [raw_robust(resident[a:b], crop=crop, kernel=False)
                                                                   for a, b in chunks]
            parts["raw_robust alone, torch operations + channels_last copy"] = lambda: [
                raw_robust(resident[a:b], crop=crop, kernel=False, channels_last=True) for a, b in chunks]
            parts["raw_robust alone, Triton kernel"] = lambda: [raw_robust(resident[a:b], crop=crop, kernel=True)
                                                                for a, b in chunks]
            parts["raw_robust alone, Triton kernel, written channels_last"] = lambda: [
                raw_robust(resident[a:b], crop=crop, kernel=True, channels_last=True) for a, b in chunks]
            same = all(torch.equal(raw_robust(resident[a:b], crop=crop, kernel=True)[0],
                                   raw_robust(resident[a:b], crop=crop, kernel=False)[0]) for a, b in chunks)
            print(f"  raw_robust: Triton kernel equal to the torch operations on these {len(idx)} stamps: {same}")

        def run_graph(g):  # (static input, replay, static output) of graphed_forward
            outs = []
            for x in xs:
                g[0][:len(x)] = x
                g[1]()
                outs.append(g[2][:len(x)].float())
            return outs

        def run_model(m):
            with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
                return [m(x.contiguous(memory_format=torch.channels_last) if cuda else x).float() for x in xs]
        parts["model alone (eager)"] = lambda: run_model(model)
        if cuda and "graph" in modes:
            from lensaudit.detector.graphs import graphed_forward
            gm = graphed_forward(model, tuple(xs[0].shape), xs[0].dtype, xs[0].device, torch.bfloat16)
            if gm is not None:
                parts["model alone (CUDA graph)"] = lambda: run_graph(gm)
        if ns.compile_model:
            compiled = torch.compile(model, dynamic=False)
            parts["model alone (torch.compile)"] = lambda: run_model(compiled)
            if cuda and "graph" in modes:
                gc = graphed_forward(model, tuple(xs[0].shape), xs[0].dtype, xs[0].device, torch.bfloat16,
                                     compiled=True)
                if gc is not None:
                    parts["model alone (torch.compile in a CUDA graph)"] = lambda: run_graph(gc)
        if "on" in cudnn_modes:
            def benchmarked(fn):
                def run():
                    with torch.backends.cudnn.flags(enabled=True, benchmark=True):
                        return fn()
                return run
            for label in [k for k in parts if k.startswith("model alone")]:
                parts[label + ", cudnn.benchmark"] = benchmarked(parts[label])
        if ns.autotune:
            tuned = torch.compile(model, dynamic=False, mode="max-autotune-no-cudagraphs")
            parts["model alone (torch.compile, max-autotune-no-cudagraphs)"] = lambda: run_model(tuned)
        ref = None
        for label, fn in parts.items():
            out = fn()
            sync()
            t0 = time.perf_counter()
            out = fn()
            sync()
            dt = time.perf_counter() - t0
            extra = ""
            if label.startswith("model"):
                got = torch.cat(out)
                ref = got if ref is None else ref
                extra = f"; max |dlogit| vs eager {float((got - ref).abs().max()):.2e}"
            print(f"  {label}: {len(idx) / dt:,.0f} img/s{extra}")
        del resident, host, xs
    if ns.skip_train:
        return
    x, _ = raw_robust(torch.from_numpy(reader.read(idx.iloc[:ns.train_n])).to(dev), crop=64)
    y = (rng.random(len(x)) < 0.01).astype(np.int64)
    y[:200] = 1
    w = np.ones(len(x))
    cfg = TrainConfig(arch="resnet18", epochs=2, batch_size=256, patience=10, seed=1)
    states = {}
    for graph in (False, True):
        t0 = time.perf_counter()
        best, hist, info = train(cfg, x, y, w, x[:4096], y[:4096], device=dev, log=lambda *_: None, cuda_graph=graph)
        states[graph] = best
        print(f"training 64x64 resnet18 batch 256, device-resident data, per-sample augmentation, "
              f"{'CUDA graph per step' if info['cuda_graph'] else 'eager steps'}: "
              f"{info['train_images_per_s']:,.0f} img/s (2 epochs); epoch times "
              f"{[round(h['epoch_train_s'], 2) for h in hist]} s for {len(x)} stamps (second epoch "
              f"{len(x) / hist[-1]['epoch_train_s']:,.0f} img/s incl. validation); total {time.perf_counter() - t0:.1f} s; "
              f"loss {[round(h['train_loss'], 6) for h in hist]} val AUC {[round(h['val_auc'], 6) for h in hist]}")
    diff = max(float((states[True][k].float() - states[False][k].float()).abs().max()) for k in states[False])
    print(f"  CUDA graph vs eager, same seed: max |d weight| of the selected state {diff:.2e}")


if __name__ == "__main__":
    main()
