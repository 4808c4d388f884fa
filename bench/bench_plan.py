"""Benchmark: the selection function's injection plan and parameter draws on the CPU.

Times ``plan_and_parameters`` (the plan built bin by bin, the prior's draws in a thread beside
it) in a subprocess; ``--prev DIR``, the reference, times a previous tree the same way (``git
archive`` of an older commit, e.g. 9ef9c46, whose plan was built cell by cell and its draws after
it), alternating with this tree, and checks that every process gives the same plan and
parameters.  8,192 synthetic hosts (``bench_selection.synthetic_hosts``), 200 injections per cell
(the spec's 77,000; ``--n-per-cell 26000``: 10 million).
Run: PYTHONPATH=. python bench/bench_plan.py [--prev DIR] [--rounds 2] [--n-per-cell 200]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent


def time_tree(repeat: int, n_per_cell: int) -> None:
    """Print 'median_ms min_ms sha256' of this interpreter's tree (``lensaudit`` on sys.path)."""
    sys.path.insert(0, str(HERE))
    from bench_selection import synthetic_hosts

    import lensaudit.selection.inject as inject

    with tempfile.TemporaryDirectory(prefix="bench_plan_") as store:  # the plan reads the host table, not the stamps
        hosts = synthetic_hosts(8192, Path(store), np.random.default_rng(0))
    if hasattr(inject, "plan_and_parameters"):
        def make():
            return inject.plan_and_parameters(hosts, n_per_cell, 1)
    else:  # a tree from before plan_and_parameters
        def make():
            plan = inject.plan_injections(hosts, n_per_cell, 1)
            return plan, inject.draw_parameters(plan, hosts, 1)
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        plan, params = make()
        ts.append(time.perf_counter() - t0)
    digest = hashlib.sha256(pd.util.hash_pandas_object(plan).to_numpy().tobytes()
                            + pd.util.hash_pandas_object(params).to_numpy().tobytes()).hexdigest()[:16]
    ts = ts[min(3, len(ts) - 1):]  # the first calls warm the caches
    print(f"{1e3 * np.median(ts):.1f} {1e3 * min(ts):.1f} {digest}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prev", help="a previous tree (its root) timed in a subprocess beside this one")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--n-per-cell", type=int, default=200, help="200: the spec's 77,000; 26000: 10 million")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ns = ap.parse_args()
    if ns.child:
        time_tree(ns.repeat, ns.n_per_cell)
        return
    trees = [("this tree", Path.cwd())] + ([("previous tree", Path(ns.prev).resolve())] if ns.prev else [])
    digests = set()
    print(f"plan + parameters of {385 * ns.n_per_cell:,} injections (8,192 hosts), {os.cpu_count()} CPU cores; "
          f"median and min of the timed calls per process (the first {min(3, ns.repeat - 1)} left out) [ms]")
    for r in range(ns.rounds):
        for name, root in trees:
            env = dict(os.environ, PYTHONPATH=str(root))
            out = subprocess.run([sys.executable, str(HERE / "bench_plan.py"), "--child", "--repeat", str(ns.repeat),
                                  "--n-per-cell", str(ns.n_per_cell)],
                                 cwd=root, env=env, capture_output=True, text=True, check=True).stdout.split()
            digests.add(out[2])
            print(f"  round {r + 1}, {name} ({root}): median {out[0]} ms, min {out[1]} ms")
    print("same plan and parameters in every process" if len(digests) == 1 else f"DIFFERENT outputs: {digests}")


if __name__ == "__main__":
    main()
