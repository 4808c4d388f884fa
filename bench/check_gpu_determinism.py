"""Check: does the same seed give the same bytes on a GPU?  (README "the same seed gives the same bytes")

Runs each GPU path twice (or more) on the same inputs in one process and counts the values
that differ between runs, bit for bit:
  1. the accumulation primitive the renderers' cusp refinement used before ``cusp.subtree_sums``:
     ``index_add_`` (CUDA: atomics, any order), sorted owners with 16 values each;
  2. ``render_arcs`` eager (float32, adaptive) and fused on the same rows;
  3. the selection function's per-injection numbers: ``inject_and_score`` (the asset's path,
     eager renderer) and ``stream_inject_and_score`` (the benchmark's path, fused renderer),
     synthetic hosts as ``bench_selection.py`` makes them, a randomly initialised ResNet-18;
  4. the scan (``detector.score.score_store``: eager bf16, and the CUDA-graph scan with ``raw_robust`` in the graph)
     over the same hosts from the store;
  5. training (``detector.train.train``, 2 epochs on the hosts with fixed random labels, the same seed;
     eager steps, and on CUDA the CUDA-graph steps): the selected state dict's bytes (``--skip-train``: not run).
Prints one line per check: identical or the count of differing values and the largest
relative difference; exits 1 when any check differs.  On the CPU every check runs too (the reference: it must be identical).
Run: PYTHONPATH=. python bench/check_gpu_determinism.py [--device cuda] [--repeats 3]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from _scratch import scratch_dir


def _compare(name: str, outs: list) -> bool:
    a = [np.ascontiguousarray(o.detach().cpu().numpy() if torch.is_tensor(o) else np.asarray(o)) for o in outs]
    diff = [int((x.view(np.uint8).reshape(x.size, -1) != a[0].view(np.uint8).reshape(a[0].size, -1)).any(1).sum())
            for x in a[1:]]
    if not any(diff):
        print(f"{name}: identical in {len(a)} runs ({a[0].size:,} values)")
        return True
    rel = max(float(np.nanmax(np.abs(x.astype(np.float64) - a[0]) / np.maximum(np.abs(a[0]), 1e-30))) for x in a[1:])
    print(f"{name}: NOT identical: {diff} of {a[0].size:,} values differ from run 1 (largest relative difference {rel:.2e})")
    return False


def _time_renderers(cols: dict, dev: str) -> None:
    import time

    from lensaudit.injection.render import render_arcs

    n = len(cols["theta_e_arcsec"])
    sync = torch.cuda.synchronize if dev.startswith("cuda") else (lambda: None)
    for name, kw in (("eager float32", dict(dtype=torch.float32)), ("fused", dict(fused=True))):
        if name == "fused" and not dev.startswith("cuda"):
            continue
        times = []
        for _ in range(7):  # the first two calls warm up (kernels, plans)
            sync()
            t0 = time.perf_counter()
            render_arcs(cols, device=dev, chunk=n, **kw)
            sync()
            times.append(time.perf_counter() - t0)
        print(f"render_arcs {name}, {n:,} rows: {n / float(np.median(times[2:])):,.0f} stamps/s (median of 5)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--rows", type=int, default=2048)
    ap.add_argument("--hosts", type=int, default=2048)
    ap.add_argument("--n-per-cell", type=int, default=8)
    ap.add_argument("--time-rows", type=int, default=0,
                    help="also time the eager float32 and fused renderers on this many rows (median of 5 calls)")
    ap.add_argument("--time-only", action="store_true", help="only the timing (e.g. on a previous tree)")
    ap.add_argument("--skip-train", action="store_true", help="leave out the training check")
    ns = ap.parse_args()
    dev, R = ns.device, ns.repeats
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_injection import _rows_cols
    from bench_selection import synthetic_hosts

    from lensaudit.cutouts.store import CutoutReader
    from lensaudit.detector.models import build_model
    from lensaudit.injection.render import render_arcs
    from lensaudit.selection.inject import draw_parameters, inject_and_score, plan_injections
    from lensaudit.selection.stream import stream_inject_and_score

    print(f"device: {torch.cuda.get_device_name(0) if dev.startswith('cuda') else 'cpu'} torch={torch.__version__}")
    if ns.time_rows:
        _time_renderers(_rows_cols(ns.time_rows, seed=5), dev)
    if ns.time_only:
        return
    ok = True
    g = torch.Generator().manual_seed(0)
    owner = torch.arange(200_000).repeat_interleave(16).to(dev)
    vals = torch.rand(len(owner), generator=g).to(dev) * 10.0 ** torch.randint(-6, 3, (len(owner),), generator=g).to(dev)
    ok &= _compare("index_add_ (float32, 16 values per owner)",
                   [torch.zeros(200_000, device=dev).index_add_(0, owner, vals) for _ in range(R)])
    cols = _rows_cols(ns.rows, seed=3)
    ok &= _compare("render_arcs eager float32 (images)",
                   [render_arcs(cols, device=dev, dtype=torch.float32, chunk=ns.rows).images for _ in range(R)])
    if dev.startswith("cuda"):
        ok &= _compare("render_arcs fused (images)",
                       [render_arcs(cols, device=dev, chunk=ns.rows, fused=True).images for _ in range(R)])
    rng = np.random.default_rng(0)
    store = scratch_dir("det_")
    hosts = synthetic_hosts(ns.hosts, store, rng)
    reader = CutoutReader(store)
    torch.manual_seed(0)
    model = build_model("resnet18").to(dev).eval()
    plan = plan_injections(hosts, ns.n_per_cell, seed=1)
    params = draw_parameters(plan, hosts, seed=1).reset_index(drop=True)
    stamps = torch.from_numpy(reader.read(hosts.assign(cutout_ok=True))).to(dev)
    pos = pd.Index(hosts["galaxy_id"]).get_indexer(plan["galaxy_id"])
    ok &= _compare(f"inject_and_score, eager renderer ({len(plan):,} injections: logits, S/N, ...)",
                   [inject_and_score(model, stamps, pos, params, hosts, 64, dev, 7, chunk=1024).to_numpy()
                    for _ in range(R)])
    if dev.startswith("cuda"):
        ok &= _compare(f"stream_inject_and_score, fused renderer ({len(plan):,} injections)",
                       [stream_inject_and_score(model, reader, hosts, plan, params, 64, dev, 7, group_rows=4096,
                                                chunk=2048, fused=True).to_numpy() for _ in range(R)])
    from lensaudit.detector.score import score_store

    index = hosts.assign(cutout_ok=True)
    ok &= _compare(f"score_store, eager ({len(index):,} stamps, logits)",
                   [score_store(index, reader, model, dev, batch=1024, workers=4) for _ in range(R)])
    if dev.startswith("cuda"):
        ok &= _compare(f"score_store, CUDA graph with raw_robust inside ({len(index):,} stamps, logits)",
                       [score_store(index, reader, model, dev, batch=1024, workers=4, cuda_graph=True,
                                    graph_preprocess=True) for _ in range(R)])
    if not ns.skip_train:
        from lensaudit.detector.config import TrainConfig
        from lensaudit.detector.models import checkpoint_bytes
        from lensaudit.detector.preprocess import raw_robust
        from lensaudit.detector.train import train

        x, _ = raw_robust(stamps, crop=64)
        y = (np.random.default_rng(3).random(len(x)) < 0.2).astype(np.int64)
        w = np.ones(len(x))
        cfg = TrainConfig(arch="resnet18", epochs=2, batch_size=256, patience=10, seed=1)
        for graph in ((False, True) if dev.startswith("cuda") else (False,)):
            states = [train(cfg, x, y, w, x[:512], y[:512], device=dev, log=lambda *_: None, cuda_graph=graph)[0]
                      for _ in range(R)]
            blobs = [np.frombuffer(checkpoint_bytes(st), np.uint8) for st in states]
            ok &= _compare(f"train, {'CUDA-graph' if graph else 'eager'} steps, 2 epochs on {len(x):,} stamps "
                           "(the selected state's checkpoint bytes)", blobs)
    print("all identical" if ok else "NOT all identical")
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
