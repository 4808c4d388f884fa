"""Benchmark: the cost of faulting in a new numpy array's pages, with and without numpy's huge-page advice.

numpy advises transparent huge pages (``madvise(MADV_HUGEPAGE)``) for every new array of 4 MiB or
more unless ``NUMPY_MADVISE_HUGEPAGE=0``; lensaudit's processes turn that off
(``lensaudit/numpy_pages.py``).  Each round, alternating, in this process:

* fill: a new ``--mib`` MiB float32 array filled with ones (every page faulted in once), after
  ``--pause`` seconds with nothing allocated (memory freed to the kernel, as between a pipeline's
  batches); microseconds per 4 KiB page;
* store read: ``--rows`` stamps' 21 x 21 px cores (``features.core_window``, as the core-only
  classifier gate reads them) read from a cutout store of synthetic stamps (page cache warm) into
  a new array, and into one already touched (the reads' own cost).

Prints the THP settings (/sys/kernel/mm/transparent_hugepage) and AnonHugePages before and after.
Run: PYTHONPATH=. python bench/bench_page_faults.py [--mib 512] [--rounds 3] [--pause 6] [--rows 8192]
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd

from _scratch import scratch_dir
from bench_cutouts import _cpu_model


def _thp() -> str:
    base = Path("/sys/kernel/mm/transparent_hugepage")
    parts = [f"{n} {(base / n).read_text().strip()}" for n in ("enabled", "defrag") if (base / n).exists()]
    return "; ".join(parts) or "no THP settings"


def _anon_huge_kib() -> str:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("AnonHugePages"):
            return line.split(":")[1].strip()
    return "?"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=512)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--pause", type=float, default=6.0)
    ap.add_argument("--rows", type=int, default=8192)
    ns = ap.parse_args()
    from lensaudit.cutouts.features import core_window
    from lensaudit.cutouts.store import CutoutReader, write_shard
    from lensaudit.numpy_pages import set_hugepage_advice

    print(f"{_cpu_model()}, numpy {np.__version__}, kernel {platform.release()}; "
          f"THP: {_thp()}; AnonHugePages {_anon_huge_kib()}")
    tmp = scratch_dir("bench_faults_")
    rng = np.random.default_rng(0)
    per = 2048
    paths, offs = [], []
    for k in range(-(-ns.rows // per)):
        m = min(per, ns.rows - k * per)
        write_shard(tmp / "shards" / f"s{k}.npy", rng.normal(0, 1, (m, 3, 101, 101)).astype(np.float32))
        paths += [f"shards/s{k}.npy"] * m
        offs += list(range(m))
    index = pd.DataFrame({"cutout_path": paths, "cutout_offset": offs, "cutout_ok": True}).sample(frac=1, random_state=0)
    reader = CutoutReader(tmp)
    win = core_window(reader.size)
    touched = reader.read(index, window=win)
    pages = ns.mib * 256
    res = {True: {"fill": [], "read": []}, False: {"fill": [], "read": []}}
    for _ in range(ns.rounds):
        for advice in (True, False):
            set_hugepage_advice(advice)
            time.sleep(ns.pause)
            t0 = time.perf_counter()
            a = np.empty(pages * 1024, np.float32)
            a.fill(1.0)
            res[advice]["fill"].append((time.perf_counter() - t0) / pages * 1e6)
            del a
            time.sleep(ns.pause)
            t0 = time.perf_counter()
            got = reader.read(index, window=win)
            res[advice]["read"].append(time.perf_counter() - t0)
            assert np.array_equal(got, touched)
            del got
    t0 = time.perf_counter()
    reader.read(index, window=win, out=touched)
    t_touched = time.perf_counter() - t0
    set_hugepage_advice(False)
    print(f"AnonHugePages after: {_anon_huge_kib()}")
    for what, unit in (("fill", "us per 4 KiB page"), ("read", "s")):
        on, off = res[True][what], res[False][what]
        print(f"  {what:4s} with the advice (numpy's default): {', '.join(f'{v:.2f}' for v in on)} {unit}; "
              f"without: {', '.join(f'{v:.2f}' for v in off)} {unit}  ({np.median(on) / np.median(off):.1f}x at the medians)")
    print(f"  read of the {ns.rows} cores into an array already touched: {t_touched:.2f} s "
          f"({touched.nbytes / 2**20:.0f} MiB; the same values every time)")


if __name__ == "__main__":
    main()
