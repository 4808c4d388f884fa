"""Benchmark: the full-spec selection function (385 cells x n injections), streamed.

End to end on one device: host load from a real cutout store (I/O included, hosts streamed
group by group, ``lensaudit.selection.stream``), injection plan and parameter draws, render
(``render_arcs``), host gather + arc + arc noise, ``raw_robust`` + frozen ResNet-18 (float32,
as the evaluation), the model-free detectability statistic, and the aggregation into the
385-cell table.  Hosts are synthetic (sky noise plus a round galaxy) with psfsize/psfdepth
spread over every grid bin, so every cell gets its injections; the model is a randomly
initialised ResNet-18 (throughput does not depend on the weights).
Prints two timed runs: one with the device synchronised between stages (the stage
breakdown) and one without (the end-to-end figure), and the target.
``--n-per-cell 200`` is the spec's 77,000 injections; ``--n-per-cell 26000`` is 10 million.
The previous implementation is timed by running the previous commit's copy of this script
in the same device command (see bench/RESULTS.md).
Run: PYTHONPATH=. python bench/bench_selection.py --device cuda [--compiled] [--fused] [--n-per-cell 26000]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from _scratch import scratch_dir


def synthetic_hosts(n: int, store: Path, rng) -> pd.DataFrame:
    from lensaudit.cutouts.store import SHARD_ROWS, write_shard
    from lensaudit.selection.grid import DEPTH, PSF, host_bins
    from lensaudit.stamps import radius_map
    from lensaudit.survey.photometry import mag5sigma_to_depth_ivar

    r = radius_map(101)
    galaxy = (0.5 * np.exp(-(r / 4.0) ** 1.0)).astype(np.float32)
    rows = []
    for k in range(0, n, SHARD_ROWS):
        m = min(SHARD_ROWS, n - k)
        stack = rng.normal(0, 0.01, (m, 3, 101, 101)).astype(np.float32) + galaxy
        rel = f"shards/h-{k // SHARD_ROWS:04d}.npy"
        write_shard(store / rel, stack)
        rows += [(rel, i) for i in range(m)]
    psf = rng.uniform(PSF.lo[0], PSF.hi[-1] - 1e-6, n)
    depth = mag5sigma_to_depth_ivar(rng.uniform(DEPTH.lo[0], DEPTH.hi[-1] - 1e-6, n))
    hosts = pd.DataFrame({"galaxy_id": [f"h{i:06d}" for i in range(n)], "cutout_path": [p for p, _ in rows],
                          "cutout_offset": [o for _, o in rows], "cutout_ok": True,
                          "psfsize_g": psf * 1.1, "psfsize_r": psf, "psfsize_z": psf * 0.9,
                          "psfdepth_g": depth * 1.5, "psfdepth_r": depth, "psfdepth_z": depth * 0.2})
    return pd.concat([hosts, host_bins(hosts)], axis=1)


LAST: dict = {}  # the last run's records, threshold and table (for the parity checks)
OLD_BOOTSTRAP = False  # --host-bootstrap: the numpy bootstrap on the host threads (the previous path)
DRAWS_AHEAD = True  # --draws-after: the device bootstrap draws its raw outputs at the end (the previous path)
PROFILE_AGGREGATE = False  # --profile-aggregate: the runs without stage syncs print a cProfile of the aggregation


COMPILED_DETECTOR = False  # --compiled-detector: score with torch.compile's float32 kernels in the CUDA graph
DETECTOR_BF16 = False  # --bf16-detector: score under bf16 autocast (the scan's precision; compared with float32 at the end)


def run(hosts, reader, model, dev, n_per_cell, chunk, group_rows, compiled, staged, fused=False) -> dict:
    import torch

    from lensaudit.injection.visibility import observable
    from lensaudit.selection.bootstrap_draws import BootstrapDraws
    from lensaudit.selection.completeness import completeness_table
    from lensaudit.spec import SELECTION
    from lensaudit.selection.inject import plan_and_parameters
    from lensaudit.selection.stream import stream_inject_and_score

    t = {}
    sync = torch.cuda.synchronize if dev.startswith("cuda") else (lambda: None)
    sync()
    pinned0 = _pinned_allocs(dev)
    t0 = time.perf_counter()
    plan, params = plan_and_parameters(hosts, n_per_cell, seed=1)
    device_bootstrap = dev.startswith("cuda") and not OLD_BOOTSTRAP
    draws = None
    if device_bootstrap and DRAWS_AHEAD:  # the bootstrap's raw draws in the background while the device works
        draws = BootstrapDraws.for_injections(plan["cell"], plan["galaxy_id"], 0, SELECTION.n_boot, dev, background=True)
    t["plan_and_parameters"] = time.perf_counter() - t0
    res = stream_inject_and_score(model, reader, hosts, plan, params, 64, dev, 1, group_rows=group_rows, chunk=chunk,
                                  compiled=compiled, timings=t if staged else None, fused=fused,
                                  compiled_detector=COMPILED_DETECTOR, detector_bf16=DETECTOR_BF16)
    t2 = time.perf_counter()
    t["at_stream_end"] = t2 - t0  # seconds after the run's start (not a stage)
    prof = None
    if PROFILE_AGGREGATE and not staged:
        import cProfile

        prof = cProfile.Profile()
        prof.enable()
    rec = pd.concat([plan.reset_index(drop=True), res.reset_index(drop=True)], axis=1)
    rec["observable"] = observable(rec["arc_snr_matched"])
    host_logits = rec.drop_duplicates("galaxy_id")["host_logit"].to_numpy()
    table = completeness_table(rec, float(np.quantile(host_logits, 0.99)), "fpr0.01", seed=0,
                               device=dev if device_bootstrap else None, draws=draws)
    t["aggregate"] = time.perf_counter() - t2
    if prof is not None:
        import pstats

        prof.disable()
        print("aggregate under cProfile (its overhead included), top functions by own time:")
        pstats.Stats(prof).sort_stats("tottime").print_stats(14)
    t["total"] = time.perf_counter() - t0
    if draws is not None:  # when the background draws were on the device, against the stream's end
        t["at_draws_ready"] = (draws.ready_at or float("nan")) - t0  # NaN: not finished (never waited for)
    LAST.update(rec=rec, threshold=float(np.quantile(host_logits, 0.99)), table=table)
    assert len(table) == 385 and ((table["n"] + table["n_host_fp"]) == n_per_cell).all(), table["n"].describe()
    if dev.startswith("cuda"):
        t["peak_gpu_gib"] = torch.cuda.max_memory_allocated() / 2**30
    if pinned0 is not None:
        pinned1 = _pinned_allocs(dev)
        t["pinned"] = (pinned1[0] - pinned0[0], (pinned1[1] - pinned0[1]) / 1e6)
    return t


def _pinned_allocs(dev):
    """(pinned blocks the caching host allocator created so far, seconds spent creating them),
    None where torch does not count them."""
    import torch

    if not dev.startswith("cuda") or not hasattr(torch.cuda, "host_memory_stats"):
        return None
    st = torch.cuda.host_memory_stats()
    return int(st.get("num_host_alloc", 0)), float(st.get("host_alloc_time.total", 0.0))


def compare_with_float32(hosts, reader, model, dev, ns) -> None:
    """The last (bf16) run against a float32 run of the same plan and seed: logit differences,
    detections that flip at the float32 run's threshold, and the completeness table's change."""
    global DETECTOR_BF16
    bf = dict(LAST)
    DETECTOR_BF16 = False
    try:
        run(hosts, reader, model, dev, ns.n_per_cell, ns.chunk, ns.group_rows, ns.compiled, False, ns.fused)
    finally:
        DETECTOR_BF16 = True
    f32 = dict(LAST)
    d = (bf["rec"]["logit"] - f32["rec"]["logit"]).abs()
    thr = f32["threshold"]
    flips = int(((bf["rec"]["logit"] >= thr) != (f32["rec"]["logit"] >= thr)).sum())
    dc = (bf["table"]["completeness"] - f32["table"]["completeness"]).abs()
    print(f"bf16 vs float32 detector, same plan ({len(d):,} injections): |dlogit| median {d.median():.2e}, "
          f"99th pct {d.quantile(0.99):.2e}, max {d.max():.2e} (logit sd {f32['rec']['logit'].std():.2f}); "
          f"threshold {bf['threshold']:.4f} vs {thr:.4f}; detections flipped at the float32 threshold {flips:,} "
          f"({flips / len(d):.2e}); completeness per cell max |dC| {dc.max():.4f} with each run's own threshold "
          f"(median n per cell {int(f32['table']['n'].median())})")


def main() -> None:
    import torch

    from lensaudit.cutouts.store import CutoutReader
    from lensaudit.detector.models import build_model

    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--hosts", type=int, default=8192)
    ap.add_argument("--n-per-cell", type=int, default=200)
    ap.add_argument("--chunk", type=int, default=8192)
    ap.add_argument("--group-rows", type=int, default=16384)
    ap.add_argument("--warmup-per-cell", type=int, default=None,
                    help="injections per cell of the untimed warm-up run (default: the timed run's, at most 200, so that the "
                         "first timed run meets no shape the warm-up did not compile; session 29: 40 left the 77,000-injection "
                         "shapes to the first timed run)")
    ap.add_argument("--compiled", action="store_true")
    ap.add_argument("--fused", action="store_true", help="render with the fused Triton renderer")
    ap.add_argument("--runs", choices=("both", "staged", "plain"), default="both",
                    help="the stage-synchronised run, the run without stage syncs, or both")
    ap.add_argument("--host-bootstrap", action="store_true", help="the host-cluster bootstrap in numpy (previous path)")
    ap.add_argument("--draws-after", action="store_true",
                    help="the device bootstrap's raw draws made at the end, not during the stream (previous path)")
    ap.add_argument("--compiled-detector", action="store_true",
                    help="the detector's CUDA graph records torch.compile's float32 kernels (inject.score_stamps)")
    ap.add_argument("--bf16-detector", action="store_true",
                    help="score under bf16 autocast; a float32 run of the same plan follows, and the logits, "
                         "detections and completeness table are compared")
    ap.add_argument("--sorted-ring-medians", action="store_true",
                    help="the annulus S/N's ring medians by one batched sort without a host sync "
                         "(annulus.ring_medians_sorted) instead of one torch.median per ring")
    ap.add_argument("--eager-scoring", action="store_true", help="the detector without CUDA graphs (previous path)")
    ap.add_argument("--no-fused-add", action="store_true",
                    help="arc, noise and host added by the torch path (previous path; inject.FUSED_ADD off)")
    ap.add_argument("--robust", choices=("kernel", "torch"), default="kernel",
                    help="raw_robust on the GPU by the one-pass Triton kernel (preprocess.KERNEL_ON_CUDA, the library's "
                         "default) or by torch's operations (the previous path)")
    ap.add_argument("--stream-switch-interval", type=float, default=None,
                    help="the GIL switch interval [s] while the stream runs on a GPU (gil_switch; default "
                         "0.0001; 0.005, CPython's default, for the previous behaviour)")
    ap.add_argument("--repeat", type=int, default=1, help="timed runs of each kind")
    ap.add_argument("--profile", action="store_true",
                    help="one more run without stage syncs under torch.profiler: top operators, device busy time")
    ap.add_argument("--gaps", action="store_true",
                    help="one more run without stage syncs under torch.profiler with Python stacks: the device's idle "
                         "gaps charged to the code that ended them (bench/_trace_gaps.py)")
    ap.add_argument("--profile-aggregate", action="store_true",
                    help="print a cProfile of the aggregation step in the runs without stage syncs")
    ns = ap.parse_args()
    global OLD_BOOTSTRAP, PROFILE_AGGREGATE, DRAWS_AHEAD, COMPILED_DETECTOR, DETECTOR_BF16
    OLD_BOOTSTRAP = ns.host_bootstrap
    COMPILED_DETECTOR = ns.compiled_detector
    DETECTOR_BF16 = ns.bf16_detector
    DRAWS_AHEAD = not ns.draws_after
    from lensaudit.selection import inject as _inject

    _inject.CUDA_GRAPH_SCORING = not ns.eager_scoring
    _inject.FUSED_ADD = not ns.no_fused_add
    from lensaudit.detector import preprocess as _preprocess

    _preprocess.KERNEL_ON_CUDA = ns.robust == "kernel"
    from lensaudit import gil_switch

    if ns.stream_switch_interval is not None:
        gil_switch.GPU_LAUNCH_SWITCH_INTERVAL_S = ns.stream_switch_interval
    from lensaudit.injection import annulus as _annulus

    _annulus.RING_MEDIANS_SORTED = ns.sorted_ring_medians
    dev = ns.device
    rng = np.random.default_rng(0)
    store = scratch_dir("bench_sel_")
    hosts = synthetic_hosts(ns.hosts, store, rng)
    reader = CutoutReader(store)
    model = build_model("resnet18").to(dev).eval()
    if dev.startswith("cuda"):
        model = model.to(memory_format=torch.channels_last)
    name = torch.cuda.get_device_name(0) if dev.startswith("cuda") else "cpu"
    n = 385 * ns.n_per_cell
    print(f"device: {name} torch={torch.__version__} hosts={ns.hosts} injections={n:,} chunk={ns.chunk} "
          f"group_rows={ns.group_rows} compiled={ns.compiled} fused={ns.fused} bootstrap_draws_ahead={DRAWS_AHEAD} "
          f"compiled_detector={COMPILED_DETECTOR} detector_bf16={DETECTOR_BF16} fused_add={_inject.FUSED_ADD} "
          f"raw_robust_kernel={_preprocess.KERNEL_ON_CUDA} stream_switch_interval={gil_switch.GPU_LAUNCH_SWITCH_INTERVAL_S}")
    if ns.warmup_per_cell is None:
        ns.warmup_per_cell = min(ns.n_per_cell, 200)
    t0 = time.perf_counter()
    run(hosts, reader, model, dev, ns.warmup_per_cell, ns.chunk, ns.group_rows, ns.compiled, False, ns.fused)  # warm-up (kernels, cuDNN, compile)
    PROFILE_AGGREGATE = ns.profile_aggregate
    print(f"warm-up (385 x {ns.warmup_per_cell}): {time.perf_counter() - t0:.1f} s")
    for staged in [k for k in {"both": (True, False), "staged": (True,), "plain": (False,)}[ns.runs]
                   for _ in range(ns.repeat)]:
        t = run(hosts, reader, model, dev, ns.n_per_cell, ns.chunk, ns.group_rows, ns.compiled, staged, ns.fused)
        stages = ", ".join(f"{k} {v:.2f} s" for k, v in t.items()
                           if k not in ("total", "peak_gpu_gib", "pinned") and not k.startswith("at_"))
        moments = ", ".join(f"{k[3:]} at {v:.2f} s" for k, v in t.items() if k.startswith("at_"))
        stages += f"; {moments}" if moments else ""
        what = "stages synchronised" if staged else "no stage syncs"
        pinned = (f"; pinned host blocks created {t['pinned'][0]} ({t['pinned'][1]:.3f} s)" if "pinned" in t else "")
        print(f"{what}: {n:,} injections end to end in {t['total']:.2f} s ({n / t['total']:,.0f}/s); {stages}; "
              f"peak GPU memory {t.get('peak_gpu_gib', 0):.1f} GiB{pinned}")
    if dev.startswith("cuda") and not OLD_BOOTSTRAP:
        import pandas.testing as pdt

        from lensaudit.selection.completeness import completeness_table

        host_table = completeness_table(LAST["rec"], LAST["threshold"], "fpr0.01")  # numpy on the host
        pdt.assert_frame_equal(LAST["table"], host_table)
        print(f"parity: the device bootstrap's table equals the host (numpy) bootstrap's on the last run "
              f"({int(host_table['cluster_ok'].sum())} cells bootstrapped)")
    if DETECTOR_BF16:
        compare_with_float32(hosts, reader, model, dev, ns)
    if dev.startswith("cuda") and not ns.eager_scoring:
        from lensaudit.selection.inject import score_stamps

        x = torch.from_numpy(reader.read(hosts.iloc[:3000])).to(dev)
        graphed = score_stamps(model, x, 64, dev)
        _inject.CUDA_GRAPH_SCORING = False
        eager = score_stamps(model, x, 64, dev)
        _inject.CUDA_GRAPH_SCORING = True
        print(f"parity: CUDA-graph vs eager logits on 3,000 hosts: max |dlogit| = {float((graphed - eager).abs().max()):.3e}")
        if COMPILED_DETECTOR:
            comp = [score_stamps(model, x, 64, dev, compiled=True) for _ in range(3)]
            same = all(torch.equal(comp[0], c) for c in comp[1:])
            print(f"parity: compiled-detector graph vs eager logits on 3,000 hosts: max |dlogit| = "
                  f"{float((comp[0] - eager).abs().max()):.3e} (logits up to {float(eager.abs().max()):.2f}); "
                  f"three compiled runs {'identical' if same else 'NOT identical'}")
    if ns.profile:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            t = run(hosts, reader, model, dev, ns.n_per_cell, ns.chunk, ns.group_rows, ns.compiled, False, ns.fused)
        ev = prof.key_averages()
        busy = sum(e.self_device_time_total for e in ev if str(e.device_type).endswith("CUDA")) / 1e6  # kernels once
        print(f"profiled run (no stage syncs, profiler overhead included): {t['total']:.2f} s; "
              f"device kernels busy {busy:.2f} s")
        print(ev.table(sort_by="self_device_time_total", row_limit=22, max_name_column_width=60))
        print(ev.table(sort_by="self_cpu_time_total", row_limit=22, max_name_column_width=60))
    if ns.gaps:
        from torch.profiler import ProfilerActivity, profile

        from bench._trace_gaps import report

        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA], with_stack=True) as prof:
            t = run(hosts, reader, model, dev, ns.n_per_cell, ns.chunk, ns.group_rows, ns.compiled, False, ns.fused)
        trace = str(store / "trace.json")
        prof.export_chrome_trace(trace)
        print(f"run under the profiler with Python stacks (overhead included): {t['total']:.2f} s")
        print(report(trace))
    print("targets: <= 1.0 s end to end for 77,000 injections, <= 180 s for 10 million, on one H100/H200")


if __name__ == "__main__":
    main()
