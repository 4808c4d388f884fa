"""Benchmark: every gate of the registry on a finished home, slowest first, and the QC
recomputation gate on one thread (the reference) against ``QC_THREADS`` in the same run.

Run: PYTHONPATH=. python bench/bench_gates.py --home lensaudit_home [--profile demo]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path


def main() -> None:
    from lensaudit.config import get_profile
    from lensaudit.gates import integrity_gates
    from lensaudit.gates.registry import GATES, StoreView

    ap = argparse.ArgumentParser()
    ap.add_argument("--home", required=True)
    ap.add_argument("--profile", default="demo")
    ns = ap.parse_args()
    view = StoreView(Path(ns.home), get_profile(ns.profile))
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; home {ns.home}")
    times = []
    for g in GATES:
        t0 = time.perf_counter()
        res = g.evaluate(view)
        times.append((time.perf_counter() - t0, g.name, res.passed))
    times.sort(reverse=True)
    print(f"all {len(times)} gates: {sum(t for t, _, _ in times):.1f} s; slowest:")
    for t, name, passed in times[:6]:
        print(f"  {t:6.2f} s  {name}  {'PASS' if passed else 'FAIL'}")
    qc = next(g for g in GATES if g.name == "cutout_qc_recomputed")
    for threads in (1, integrity_gates.QC_THREADS):
        integrity_gates.QC_THREADS = threads
        t0 = time.perf_counter()
        res = qc.evaluate(view)
        print(f"cutout_qc_recomputed, QC_THREADS={threads}: {time.perf_counter() - t0:.2f} s "
              f"(rows {res.details['rows_checked']}, mismatched {res.details['mismatched']})")


if __name__ == "__main__":
    main()
