"""Benchmark: cutout sources (mock renderer, coadd brick) and cutout-store reads.

* mock: stamps/s of ``lensaudit.mock.render`` one stamp per call for one sweep's galaxies (neighbours,
  Moffat PSF, noise, arcs), one core (batched: ``bench/bench_mock_render.py``);
* coadd: stamps/s from the real DR6 brick in lensaudit_tests/data/real (g band), one core;
* store: a 4 GB-class read of float32 (N, 3, 101, 101) batches of 4096 from content-hashed
  shards (page cache warm, as in a training epoch), contiguous and shuffled order,
  compared with a plain ``np.load`` of the same bytes (the reference in the same run).

Run: PYTHONPATH=. python bench/bench_cutouts.py [--stamps 200] [--store-rows 60000]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--stamps", type=int, default=200)
    ap.add_argument("--store-rows", type=int, default=60000)
    ap.add_argument("--real-data", default=str(Path(__file__).resolve().parents[1] / "lensaudit_tests" / "data" / "real"))
    ns = ap.parse_args()
    try:
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    except (AttributeError, OSError):
        pass
    from lensaudit.catalogs.lenscat_catalog import load_lenscat
    from lensaudit.cutouts.coadd import CoaddSource
    from lensaudit.cutouts.store import SHARD_ROWS, CutoutReader, write_shard
    from lensaudit.mock.config import MOCK_SWEEP_BOXES, MockSkyConfig
    from lensaudit.mock.render import MockSweepImager
    from lensaudit.mock.writer import read_truth, write_mock_sweep
    from lensaudit.survey.reader import read_catalog_fits

    tmp = Path(tempfile.mkdtemp(prefix="bench_cut_"))
    cfg = MockSkyConfig(n_objects_per_sweep=30000)
    p = write_mock_sweep(cfg, MOCK_SWEEP_BOXES[1].name, tmp / "s", tmp / "t", load_lenscat())
    rows = read_catalog_fits(p).to_pandas()
    rows["galaxy_id"] = rows.brickname + "_" + rows.objid.astype(str)
    imager = MockSweepImager(rows, read_truth(tmp / "t"), cfg)
    targets = rows[rows.type.isin(["SER", "DEV", "REX"]) & np.isfinite(rows.ra)].head(ns.stamps)
    t0 = time.perf_counter()
    for r in targets.itertuples(index=False):
        imager.stamp(r)
    t_mock = time.perf_counter() - t0

    from astropy.io import fits
    from astropy.wcs import WCS

    brick = Path(ns.real_data) / "dr6_coadd_brick_0959p805"
    wcs = WCS(fits.getheader(brick / "legacysurvey-0959p805-image-g.fits.fz", 1))
    src = CoaddSource(str(brick))
    rng = np.random.default_rng(0)
    pix = np.c_[rng.uniform(60, 820, 2000), rng.uniform(60, 1800, 2000)]
    radec = [wcs.pixel_to_world_values(x, y) for x, y in pix]
    src.cutout(float(radec[0][0]), float(radec[0][1]), bands="g")  # open + cache the brick
    t0 = time.perf_counter()
    n_ok = sum(src.cutout(float(a), float(d), bands="g").ok for a, d in radec)
    t_coadd = time.perf_counter() - t0

    n = ns.store_rows
    store = tmp / "store"
    block = rng.normal(size=(SHARD_ROWS, 3, 101, 101)).astype(np.float32)
    paths = []
    for k in range(0, n, SHARD_ROWS):
        m = min(SHARD_ROWS, n - k)
        rel = f"shards/s-{k // SHARD_ROWS:04d}.npy"
        write_shard(store / rel, block[:m])
        paths += [(rel, i) for i in range(m)]
    idx = pd.DataFrame({"galaxy_id": np.arange(n).astype(str), "cutout_path": [p for p, _ in paths],
                        "cutout_offset": [o for _, o in paths], "cutout_ok": True})
    reader = CutoutReader(store)
    out = np.empty((4096, 3, 101, 101), np.float32)
    for _ in range(2):  # warm the page cache
        for s in range(0, n, 4096):
            reader.read(idx.iloc[s:s + 4096], out[: min(4096, n - s)])
    t0 = time.perf_counter()
    for s in range(0, n, 4096):
        reader.read(idx.iloc[s:s + 4096], out[: min(4096, n - s)])
    t_seq = time.perf_counter() - t0
    shuffled = idx.sample(frac=1.0, random_state=0)
    t0 = time.perf_counter()
    for s in range(0, n, 4096):
        reader.read(shuffled.iloc[s:s + 4096], out[: min(4096, n - s)])
    t_shuf = time.perf_counter() - t0
    t0 = time.perf_counter()
    for rel in sorted(set(idx.cutout_path)):
        np.load(store / rel)
    t_ref = time.perf_counter() - t0

    gb = n * 3 * 101 * 101 * 4 / 1e9
    print(f"machine: {platform.machine()} cores={os.cpu_count()} python={platform.python_version()} (one core)")
    print(f"mock source:   {ns.stamps / t_mock:10,.1f} stamps/s (3 bands, neighbours, PSF, noise)")
    print(f"coadd source:  {len(radec) / t_coadd:10,.1f} stamps/s (g band, real DR6 brick cached; {n_ok} ok)")
    print(f"store read, contiguous batches of 4096: {n / t_seq:12,.0f} cutouts/s ({gb / t_seq:.1f} GB/s)")
    print(f"store read, shuffled batches of 4096:   {n / t_shuf:12,.0f} cutouts/s ({gb / t_shuf:.1f} GB/s)")
    print(f"reference np.load of the same shards:   {n / t_ref:12,.0f} cutouts/s; ratio contiguous/reference "
          f"{t_ref / t_seq:.2f}x")
    print(f"target >= 50,000 cutouts/s: {'MET' if n / t_seq >= 5e4 else 'NOT MET'} (contiguous), "
          f"{'MET' if n / t_shuf >= 5e4 else 'NOT MET'} (shuffled)")


if __name__ == "__main__":
    main()
