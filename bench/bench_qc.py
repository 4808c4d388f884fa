"""Benchmark: cutout QC on one core, the producer's and the gate's side, each against numpy.

- producer (``spark_jobs.cutouts``): ``qc.quality`` per stamp (numpy's ``percentile`` and
  ``median``: the reference) against ``qc.quality_batch`` (``lensaudit.order_stats``), the
  same dicts asserted value for value;
- gate ``cutout_qc_recomputed``: each stamp's QC recomputed with ``qc.quality`` and compared
  with its index row (the reference) against the gate's block check (order statistics verified
  by counting), both on the home's own index (no mismatch expected) and with one statistic of
  every tenth row nudged by 1e-3 (the same rows flagged by both, asserted).

Run: PYTHONPATH=. OMP_NUM_THREADS=1 python bench/bench_qc.py --home lensaudit_home [--rows 6000]
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import time
from pathlib import Path


def main() -> None:
    import numpy as np
    import pandas as pd

    from bench.bench_cutouts import _commit, _cpu_model
    from lensaudit.cutouts.qc import quality, quality_batch
    from lensaudit.cutouts.store import CutoutReader
    from lensaudit.gates.integrity_gates import _BLOCK, _check_qc_block, _qc_mismatch
    from lensaudit.store import asset_files
    from lensaudit.survey.instrument import BANDS

    ap = argparse.ArgumentParser()
    ap.add_argument("--home", required=True)
    ap.add_argument("--rows", type=int, default=6000)
    ns = ap.parse_args()
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    home = Path(ns.home)
    index = pd.concat([pd.read_parquet(f) for f in asset_files(home, "cutouts")], ignore_index=True)
    ok = index[index["cutout_ok"]].sort_values("galaxy_id").iloc[:ns.rows].reset_index(drop=True)
    stamps = CutoutReader(home / "cutout_store").read(ok)
    print(f"machine: {platform.machine()} {_cpu_model()} cores={os.cpu_count()} (process pinned to one core); "
          f"commit {_commit()}")
    print(f"stamps: {len(stamps)} cutout_ok rows of {home} ({len(BANDS)} bands, {stamps.shape[-1]}^2 px)")

    t0 = time.process_time()
    ref = [quality(s, BANDS) for s in stamps]
    t_quality = t_ref = time.process_time() - t0
    t0 = time.process_time()
    new = quality_batch(stamps, BANDS)
    t_new = time.process_time() - t0
    same = all(a.keys() == b.keys() and all(a[k] == b[k] or (isinstance(a[k], float) and math.isnan(a[k])
                                                             and math.isnan(b[k])) for k in a) for a, b in zip(ref, new))
    assert same, "quality_batch differs from quality"
    n = len(stamps)
    print(f"producer: quality per stamp (numpy, reference) {n / t_ref:8.0f} stamps/s per CPU-second")
    print(f"producer: quality_batch (order_stats)          {n / t_new:8.0f} stamps/s per CPU-second   "
          f"ratio {t_ref / t_new:.2f}x (same dicts, asserted)")

    nudged = ok.copy()
    rows = np.arange(0, len(nudged), 10)
    for j, i in enumerate(rows):
        col = ("p1", "p50", "p99", "mad")[j % 4] + "_" + BANDS[j % len(BANDS)]
        nudged.loc[i, col] *= 1.001
    for label, table in (("healthy index", ok), ("every 10th row nudged 1e-3", nudged)):
        t0 = time.process_time()
        want = {str(table["galaxy_id"].iloc[i]) for i in range(len(table)) if _qc_mismatch(table.iloc[i], ref[i], BANDS)}
        t_ref = t_quality + time.process_time() - t0  # the reference recomputes every stamp's QC, then compares
        t0 = time.process_time()
        got: set[str] = set()
        for s in range(0, len(table), _BLOCK):
            got |= set(_check_qc_block(table.iloc[s:s + _BLOCK], stamps[s:s + _BLOCK], BANDS))
        t_gate = time.process_time() - t0
        assert got == want, sorted(got ^ want)[:5]
        print(f"gate, {label}: recompute + compare (reference) {n / t_ref:8.0f} stamps/s, "
              f"verify by counting {n / t_gate:8.0f} stamps/s, ratio {t_ref / t_gate:.2f}x "
              f"(rows flagged: {len(got)}, the same by both)")


if __name__ == "__main__":
    main()
