"""Benchmark: the local Spark driver's JVM options, the JVM's defaults (reference) against
``SparkResource.driver_java_options`` (default: the C1 compiler only).

Each round starts a fresh process per variant (so every JVM is cold, as in a ``lensaudit
materialize`` run) that builds the local session through ``SparkResource`` (master local[2]),
then runs the demo's ``training_manifest`` job on the home's own inputs (positives, spatial
splits, negative pool) twice: cold (the figure a demo run pays) and again in the same JVM.
Wall seconds and machine CPU seconds (all cores, /proc/stat, so the JVM's compiler and GC
threads count) per phase; the variants alternate within each round, and the manifests of the
two variants must have the same rows (asserted: JVM options change no result).

Run: PYTHONPATH=. python bench/bench_spark_jvm.py --home lensaudit_home [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from _scratch import scratch_dir


def _cpu_seconds() -> float:
    """Busy CPU seconds of the whole machine so far (/proc/stat, every core)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")


def _child(home: str, java_options: str, out: str) -> None:
    """One variant in this (fresh) process: session start, manifest cold, manifest warm."""
    from lensaudit.config import RUN_PROFILE_FILE, profile_from_record
    from lensaudit.spark_jobs.entrypoint import training_manifest_inputs, training_manifest_job
    from resources.spark import SparkResource

    h = Path(home)
    inputs = training_manifest_inputs(h, profile_from_record(json.loads((h / RUN_PROFILE_FILE).read_text())))
    res = {}
    t0, c0 = time.perf_counter(), _cpu_seconds()
    spark = SparkResource(master="local[2]", driver_java_options=java_options).session()
    res["start"] = (time.perf_counter() - t0, _cpu_seconds() - c0)
    for phase in ("manifest_cold", "manifest_warm"):
        t0, c0 = time.perf_counter(), _cpu_seconds()
        info = training_manifest_job(spark, **inputs, out_manifest=f"{out}.parquet",
                                     out_shortfalls=f"{out}.shortfalls.parquet", out_excluded=f"{out}.excluded.parquet")
        res[phase] = (time.perf_counter() - t0, _cpu_seconds() - c0)
    res["rows"] = info["rows"]
    res["jvm_args"] = [a for a in spark.sparkContext._jvm.java.lang.management.ManagementFactory.getRuntimeMXBean()
                       .getInputArguments() if a.startswith("-XX")]
    spark.stop()
    Path(f"{out}.json").write_text(json.dumps(res))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--home", required=True, help="a home whose data half is materialised (lensaudit materialize)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--child", help=argparse.SUPPRESS)  # output stem; the JVM options in $BENCH_JVM_OPTIONS
    ns = ap.parse_args()
    if ns.child:
        _child(ns.home, os.environ["BENCH_JVM_OPTIONS"], ns.child)
        return
    import platform

    import pandas as pd

    from bench.bench_cutouts import _commit, _cpu_model
    from resources.spark import SparkResource

    variants = {"JVM defaults (reference)": "", f"driver_java_options={SparkResource().driver_java_options!r}":
                SparkResource().driver_java_options}
    tmp = scratch_dir("bench_jvm_")
    runs: dict[str, list[dict]] = {k: [] for k in variants}
    manifests = {}
    for r in range(ns.rounds):
        for k, (name, opts) in enumerate(variants.items()):
            out = str(tmp / f"r{r}v{k}")
            subprocess.run([sys.executable, __file__, "--home", ns.home, "--child", out], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           env={**os.environ, "PYTHONPATH": ".", "BENCH_JVM_OPTIONS": opts})
            runs[name].append(json.loads(Path(f"{out}.json").read_text()))
            manifests[name] = pd.read_parquet(f"{out}.parquet")
    a, b = manifests.values()
    assert a.equals(b), "the manifests differ between JVM options"
    print(f"machine: {platform.machine()} {_cpu_model()} cores={os.cpu_count()} python={platform.python_version()}; "
          f"commit {_commit()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average {os.getloadavg()[0]:.2f}")
    print(f"training_manifest job on {ns.home} ({a.shape[0]:,} rows; the same rows with both options), "
          f"Spark local[2], a fresh JVM per variant and round; seconds wall / machine CPU seconds, median of {ns.rounds} rounds")
    med = {}
    for name, rs in runs.items():
        med[name] = {p: tuple(sorted(x[p][i] for x in rs)[len(rs) // 2] for i in (0, 1))
                     for p in ("start", "manifest_cold", "manifest_warm")}
        print(f"  {name}: " + ", ".join(f"{p} {w:.1f} s / {c:.1f} core-s" for p, (w, c) in med[name].items())
              + f"   JVM -XX args: {rs[-1]['jvm_args']}")
    ref, new = med.values()
    for p in ("start", "manifest_cold", "manifest_warm"):
        print(f"  ratio reference / new, {p}: {ref[p][0] / new[p][0]:.2f}x wall, {ref[p][1] / new[p][1]:.2f}x CPU")


if __name__ == "__main__":
    main()
