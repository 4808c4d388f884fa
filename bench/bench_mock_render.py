"""Benchmark: mock-sky stamps per second per core, the batched renderer vs the reference.

Issue 16: "Mock sky >= 1,000 stamps/s per core (neighbours, PSF, noise, arcs)".  One mock
sweep at the demo profile's density (30,000 field objects per sweep); targets are a random
sample of its galaxies (types REX/EXP/DEV/SER, with their confusers) plus every true lens
of the sweep (lensed arcs), as the cutout job renders them.  The new path is
``MockSweepImager.stamps`` in batches of SOURCE_BATCH_ROWS (``lensaudit.spark_jobs.cutouts``);
the reference is the per-stamp renderer kept in ``lensaudit.mock.reference``
(``MockSweepImager.stamp_reference``: numpy Sersic on a 2x grid, lenstronomy arcs, scipy
fftconvolve).  The process is pinned to one core, torch single-threaded.  The machine may be
shared: the two paths are timed in alternating rounds and the ratio is the median of the
per-round ratios; the load average is printed.

The renderer runs in the cutout job's local Spark workers, whose environment sets glibc's malloc
tunables and numpy's huge-page switch (``resources.spark.LOCAL_PYTHON_WORKER_ENV``): by default the
benchmark re-executes itself in that environment (``--allocator workers``); ``--allocator glibc``
measures with those variables removed (glibc's defaults, as on EMR, where the environment is not set).

Run: PYTHONPATH=. python bench/bench_mock_render.py [--stamps 2048] [--ref-stamps 128] [--rounds 3]
     [--allocator workers|glibc]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import numpy as np

from _scratch import scratch_dir


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--stamps", type=int, default=2048, help="stamps per round, new path")
    ap.add_argument("--ref-stamps", type=int, default=128, help="stamps per round, reference path")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--objects", type=int, default=30000, help="field objects per mock sweep (demo: 30,000)")
    ap.add_argument("--allocator", choices=("workers", "glibc"), default="workers",
                    help="the local Spark workers' malloc/numpy environment (default) or glibc's defaults")
    ns = ap.parse_args()
    from resources.spark import LOCAL_PYTHON_WORKER_ENV

    env = {k: v for k, v in os.environ.items() if k not in LOCAL_PYTHON_WORKER_ENV}
    if ns.allocator == "workers":
        env.update(LOCAL_PYTHON_WORKER_ENV)
    if env != dict(os.environ):  # malloc reads its tunables at process start: run again in that environment
        os.execve(sys.executable, [sys.executable, *sys.argv], env)
    try:
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    except (AttributeError, OSError):
        pass
    import torch

    torch.set_num_threads(1)
    from lensaudit.catalogs.lenscat_catalog import load_lenscat
    from lensaudit.mock.config import MOCK_SWEEP_BOXES, MockSkyConfig
    from lensaudit.mock.render import MockSweepImager
    from lensaudit.mock.writer import read_truth, write_mock_sweep
    from lensaudit.spark_jobs.cutouts import SOURCE_BATCH_ROWS
    from lensaudit.survey.reader import read_catalog_fits

    tmp = scratch_dir("bench_mock_")
    cfg = MockSkyConfig(n_objects_per_sweep=ns.objects)
    p = write_mock_sweep(cfg, MOCK_SWEEP_BOXES[1].name, tmp / "s", tmp / "t", load_lenscat())
    rows = read_catalog_fits(p).to_pandas()
    rows["galaxy_id"] = rows.brickname + "_" + rows.objid.astype(str)
    truth = read_truth(tmp / "t")
    imager = MockSweepImager(rows, truth, cfg)
    lenses = truth[(truth.role == "lens") & (truth.is_true_lens == True)].galaxy_id.tolist()  # noqa: E712
    gal = rows[rows.type.isin(["REX", "EXP", "DEV", "SER"]) & np.isfinite(rows.ra)]
    rng = np.random.default_rng(0)
    ids = list(gal.galaxy_id.to_numpy()[rng.permutation(len(gal))[:ns.stamps - len(lenses)]]) + lenses
    ids = [ids[i] for i in rng.permutation(len(ids))]
    by_id = rows.set_index("galaxy_id", drop=False)
    n_conf = int(truth.set_index("galaxy_id").loc[ids, "morphology"].isin(["ring", "spiral", "blue_clumpy"]).sum())

    def run_new(sel):
        t0, c0 = time.perf_counter(), time.process_time()
        for s in range(0, len(sel), SOURCE_BATCH_ROWS):
            imager.stamps(sel[s:s + SOURCE_BATCH_ROWS])
        return time.perf_counter() - t0, time.process_time() - c0

    def run_ref(sel):
        t0, c0 = time.perf_counter(), time.process_time()
        for g in sel:
            imager.stamp_reference(next(by_id.loc[[g]].itertuples(index=False)))
        return time.perf_counter() - t0, time.process_time() - c0

    run_new(ids[:SOURCE_BATCH_ROWS])  # warm-up (imports, allocator)
    load0 = os.getloadavg()
    new_rate, ref_rate, ratios, new_cpu, ref_cpu = [], [], [], [], []
    for k in range(ns.rounds):
        sel_ref = [ids[(k * ns.ref_stamps + i) % len(ids)] for i in range(ns.ref_stamps)]
        (w_new, c_new), (w_ref, c_ref) = run_new(ids), run_ref(sel_ref)
        new_rate.append(len(ids) / w_new)
        ref_rate.append(len(sel_ref) / w_ref)
        new_cpu.append(len(ids) / c_new)
        ref_cpu.append(len(sel_ref) / c_ref)
        ratios.append(new_rate[-1] / ref_rate[-1])
    t_lens = run_new(lenses)[1] if lenses else float("nan")
    load1 = os.getloadavg()
    print(f"machine: {platform.machine()} {platform.processor() or ''} cores={os.cpu_count()} "
          f"python={platform.python_version()} torch={torch.__version__} (process pinned to one core, 1 thread)")
    print(f"load average before/after: {load0[0]:.2f} / {load1[0]:.2f}")
    print("allocator: " + ("the local Spark workers' environment " + " ".join(f"{k}={v}" for k, v in
                                                                             LOCAL_PYTHON_WORKER_ENV.items())
                           if ns.allocator == "workers" else "glibc's defaults (no worker environment)"))
    print(f"stamps: {len(ids)} per round ({len(lenses)} true lenses with arcs, {n_conf} confuser morphologies), "
          f"3 bands, {imager.size}x{imager.size}, sweep of {len(rows):,} rows")
    print("stamps/s per core: wall clock (the core is shared when the load exceeds the cores) and per CPU-second of this process")
    for k in range(ns.rounds):
        print(f"round {k}: new {new_rate[k]:7,.0f} wall {new_cpu[k]:7,.0f} cpu   reference {ref_rate[k]:6,.1f} wall "
              f"{ref_cpu[k]:6,.1f} cpu   ratio (wall) {ratios[k]:5.1f}x")
    print(f"new path (batches of {SOURCE_BATCH_ROWS}): median {np.median(new_rate):,.0f} stamps/s wall, "
          f"{np.median(new_cpu):,.0f} per CPU-second")
    print(f"reference path (per stamp):         median {np.median(ref_rate):,.1f} stamps/s wall, "
          f"{np.median(ref_cpu):,.1f} per CPU-second")
    print(f"ratio new / reference: {np.median(ratios):.1f}x wall (median of rounds), "
          f"{np.median(new_cpu) / np.median(ref_cpu):.1f}x CPU")
    if lenses:
        print(f"true lenses alone (arc rendering): {len(lenses) / t_lens:,.0f} stamps per CPU-second")
    print(f"implied: 35,000 demo stamps on 2 cores in {35000 / (2 * np.median(new_cpu)):.0f} s of CPU per core")
    for name, v in (("wall", np.median(new_rate)), ("CPU", np.median(new_cpu))):
        print(f"target >= 1,000 stamps/s per core ({name}, median): {'MET' if v >= 1000 else 'NOT MET'}")


if __name__ == "__main__":
    main()
