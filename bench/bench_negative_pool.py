"""Benchmark: the negative-pool step (N1 cuts + N2 confuser proxies + 11" exclusion).

Measures, on one mock sweep at DR10-like density, in one process pinned to one core:
  * FITS reading (astropy) -> Arrow, reported separately;
  * our vectorised kernel ``lensaudit.sampling.pools.classify_negatives`` in rows/s per core;
  * a straightforward reference on the same rows: pandas filters + astropy
    ``SkyCoord.search_around_sky`` for the exclusion and neighbour searches;
  * the Spark task (read Parquet, classify, write pool + counters) end to end.
Both implementations must agree row by row (asserted), then the ratio is printed.

Run:  python bench/bench_negative_pool.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import numpy as np  # noqa: E402

from _scratch import scratch_dir


def reference_classify(cols: dict, lens_ra, lens_dec, cuts) -> tuple[np.ndarray, np.ndarray]:
    """(N1 member, N2 member) the plain way: pandas boolean filters and astropy sky
    matching (``search_around_sky``) for the exclusion and the neighbour proxy."""
    import astropy.units as u
    import pandas as pd
    from astropy.coordinates import SkyCoord

    from lensaudit.sampling import confusers as cf

    df = pd.DataFrame({k: v for k, v in cols.items() if np.ndim(v) == 1})
    base = df["ra"].notna() & df["dec"].notna() & df["brick_primary"].astype(bool)
    base &= (df["dec"] > cuts.dec_min_deg) & (df["dec"] < cuts.dec_max_deg)
    for b in "grz":
        base &= df[f"nobs_{b}"] >= cuts.min_nobs
    base &= df["type"].isin(cuts.types)
    mask = sum(1 << b for b in cuts.excluded_maskbits)
    base &= (df["maskbits"].astype(np.int64) & mask) == 0
    idx = np.flatnonzero(base.to_numpy())
    src = SkyCoord(df["ra"].to_numpy()[idx] * u.deg, df["dec"].to_numpy()[idx] * u.deg)
    lenses = SkyCoord(np.asarray(lens_ra) * u.deg, np.asarray(lens_dec) * u.deg)
    _, i_src, _, _ = src.search_around_sky(lenses, cuts.exclusion_radius_arcsec * u.arcsec)  # (idx lens, idx src, ...)
    near = np.zeros(len(idx), bool)
    near[i_src] = True
    base_ok = np.zeros(len(df), bool)
    base_ok[idx[~near]] = True
    with np.errstate(divide="ignore", invalid="ignore"):
        fz = df["flux_z"].astype(np.float64)  # float32 logs round at the z = 20 boundary
        n1 = base_ok & ((22.5 - 2.5 * np.log10(fz.where(fz > 0))) < cuts.max_mag_z).to_numpy()
    # N2 proxies; neighbours: every catalogue source, via astropy
    finite = np.flatnonzero(df["ra"].notna().to_numpy() & df["dec"].notna().to_numpy())
    allc = SkyCoord(df["ra"].to_numpy()[finite] * u.deg, df["dec"].to_numpy()[finite] * u.deg)
    cidx = np.flatnonzero(base_ok)
    cand = SkyCoord(df["ra"].to_numpy()[cidx] * u.deg, df["dec"].to_numpy()[cidx] * u.deg)
    ic, ia, sep, _ = allc.search_around_sky(cand, cf.NEIGHBOUR_MAX_ARCSEC * u.arcsec)
    a, b = cidx[ic], finite[ia]
    flux = df["flux_r"].to_numpy()
    ok = (a != b) & (sep.to_value(u.arcsec) >= cf.NEIGHBOUR_MIN_ARCSEC) & (flux[b] >= cf.NEIGHBOUR_MIN_FLUX_RATIO * flux[a])
    neighbour = np.zeros(len(df), bool)
    neighbour[a[ok]] = True
    proxy = (cf.bright_early_type_proxy(df["type"], df["flux_r"], df["sersic"]) | cf.edge_on_proxy(df["shape_e1"], df["shape_e2"], df["shape_r"])
             | cf.blue_clumpy_proxy(df["flux_g"], df["flux_r"], df["mw_transmission_g"], df["mw_transmission_r"])
             | cf.large_galaxy_proxy(df["shape_r"], df["flux_r"]) | neighbour)
    return n1, n1 & np.asarray(proxy)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ns = ap.parse_args()
    try:
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    except (AttributeError, OSError):
        pass

    from lensaudit.catalogs.lenscat_catalog import load_lenscat
    from lensaudit.mock.config import MOCK_SWEEP_BOXES, MockSkyConfig
    from lensaudit.mock.writer import write_mock_sweep
    from lensaudit.sampling.exclusion import LensNeighbourIndex
    from lensaudit.sampling.pools import NegativeCuts, classify_negatives
    from lensaudit.survey.reader import read_catalog_fits

    lenses = load_lenscat()
    cuts = NegativeCuts()
    tmp = scratch_dir("bench_pool_")
    cfg = MockSkyConfig(n_objects_per_sweep=ns.rows)
    name = MOCK_SWEEP_BOXES[0].name
    path = write_mock_sweep(cfg, name, tmp / "sweeps", tmp / "truth", lenses)

    t0 = time.perf_counter()
    table = read_catalog_fits(path)
    t_read = time.perf_counter() - t0
    n = table.num_rows
    cols = {c: table.column(c).to_numpy(zero_copy_only=False) for c in table.column_names}

    t0 = time.perf_counter()
    index = LensNeighbourIndex(lenses["ra"].to_numpy(), lenses["dec"].to_numpy())
    t_index = time.perf_counter() - t0

    best = np.inf
    for _ in range(ns.repeat):
        t0 = time.perf_counter()
        res = classify_negatives(cols, index, cuts)
        best = min(best, time.perf_counter() - t0)

    t0 = time.perf_counter()
    ref_n1, ref_n2 = reference_classify(cols, lenses["ra"], lenses["dec"], cuts)
    t_ref = time.perf_counter() - t0
    ours = res["n1_code"] == 0
    assert np.array_equal(ours, ref_n1), f"N1: kernel and reference disagree on {(ours != ref_n1).sum()} rows"
    ours2 = res["n2_code"] == 0
    assert np.array_equal(ours2, ref_n2), f"N2: kernel and reference disagree on {(ours2 != ref_n2).sum()} rows"

    # Spark task end to end (local[1]): parquet in, pool + counters out
    from lensaudit.spark_jobs.sweeps import convert_one_sweep
    from resources.spark import SparkResource
    from lensaudit.spark_jobs.entrypoint import run_job

    pq_path = tmp / "sweep.parquet"
    convert_one_sweep(name, str(path), str(pq_path))
    spark = SparkResource(master="local[1]", shuffle_partitions=1).session()
    jobs = {name: [str(pq_path), str(tmp / "pool.parquet"), str(tmp / "counts.parquet")]}
    from dataclasses import asdict

    run_job(spark, "negative_pool", {"jobs": jobs, "cuts": asdict(cuts)})  # warm-up (JVM, workers)
    t0 = time.perf_counter()
    summary = run_job(spark, "negative_pool", {"jobs": jobs, "cuts": asdict(cuts)})
    t_spark = time.perf_counter() - t0
    assert all(t["ok"] for t in summary["tasks"])

    print(f"machine: {platform.machine()} {platform.processor() or ''} cores={os.cpu_count()} python={platform.python_version()}")
    print(f"rows: {n:,} (one mock sweep, {n / 50:,.0f} rows/deg^2); N1 kept {ours.sum():,}, N2 kept {(res['n2_code'] == 0).sum():,}")
    print(f"FITS read (astropy -> Arrow):        {n / t_read:12,.0f} rows/s   ({t_read:.2f} s)")
    print(f"lens index build (32,838 entries):   {t_index * 1e3:12.1f} ms (once per process)")
    print(f"kernel: cuts+proxies+exclusion:      {n / best:12,.0f} rows/s per core ({best:.3f} s)")
    print(f"reference: pandas + astropy:         {n / t_ref:12,.0f} rows/s per core ({t_ref:.3f} s)")
    print(f"ratio kernel / reference:            {t_ref / best:12.1f}x (same N1 and N2 rows, asserted)")
    print(f"Spark task end to end (local[1]):    {n / t_spark:12,.0f} rows/s   ({t_spark:.2f} s, incl. Parquet I/O)")
    print(f"target >= 1,000,000 rows/s per core: {'MET' if n / best >= 1e6 else 'NOT MET'}")


if __name__ == "__main__":
    main()
