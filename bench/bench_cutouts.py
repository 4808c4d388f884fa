"""Benchmark: cutout sources (mock renderer, coadd brick) and cutout-store reads.

* mock: stamps/s of ``lensaudit.mock.render`` one stamp per call for one sweep's galaxies (neighbours,
  Moffat PSF, noise, arcs), one core (batched: ``bench/bench_mock_render.py``);
* coadd: stamps/s from the real DR6 brick in lensaudit_tests/data/real (g band), one core,
  brick cached;
* coadd-grouped (``--parts coadd_grouped``): ``--targets`` (200) targets on the real DR6 brick,
  stamps/s per core INCLUDING opening and decompressing the ``.fits.fz`` image and invvar:
  ``CoaddSource.cutouts`` (grouped by brick: one read per brick band) against, in the same
  run, per-target reads (``CoaddSource(cache_bricks=0).cutout``: every target opens and
  decompresses its brick) and per-target tile sections (every target opens the files and
  decompresses only the RICE tiles under its stamp, ``CompImageHDU.section``; the cheapest
  ungrouped read); all three give the same stamps (asserted).  The real brick is 12 % data,
  so a fully populated brick of the same size and compression (synthetic sky noise, same WCS
  and tiles) is timed too, and the implied EMR cost for 43M galaxies in grz is printed
  (cores x hours; m5.2xlarge = 8 vCPU) next to the seeds' cluster of 35 x m5.2xlarge;
* features (``--parts features``): the shortcut features of ``--feature-stamps`` (2048) mock stamps
  (batched renderer) by ``features_table`` (blocks of 256 stamps, one median call per ring per
  block) against one stamp at a time (``features_of``, the same definitions) in the same run,
  one core, the same numbers asserted; and the same blocks with their row and ring medians by np.median
  (the reference for ``order_stats``' medians, tables compared); and the same stamps from a cutout
  store as the shortcut_features job reads them, chunk by chunk into one buffer
  (``store_features_table``) against the whole array read at once (the job before session 20); and
  their saturation threshold chunk by chunk (``store_saturation_threshold``) against the whole
  sample read at once (before session 22), each in a fresh process;
* shards (``--parts shards``): one shard of 2048 stamps held as separate arrays (as the cutout job
  holds them) hashed and written stamp by stamp, against np.stack + sha256 of the bytes + np.save
  (the previous writer) in the same run, the same bytes and name checked;
* store: a 4 GB-class read of float32 (N, 3, 101, 101) batches of 4096 from content-hashed
  shards (page cache warm, as in a training epoch), contiguous and shuffled order,
  compared with a plain ``np.load`` of the same bytes (the reference in the same run); and the
  host time of a read besides its pixel copies (a 1-px window) per batch, against the previous
  grouping of rows by shard (``np.unique`` of the path strings) alone.

Run: PYTHONPATH=. python bench/bench_cutouts.py [--stamps 200] [--store-rows 60000] [--targets 200]
     [--parts mock,coadd,coadd_grouped,features,shards,store]   (all by default)
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd

from _scratch import scratch_dir


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--stamps", type=int, default=200)
    ap.add_argument("--store-rows", type=int, default=60000)
    ap.add_argument("--targets", type=int, default=200, help="targets on the real brick (coadd_grouped)")
    ap.add_argument("--galaxies", type=float, default=43e6, help="survey size for the implied EMR cost")
    ap.add_argument("--feature-stamps", type=int, default=2048, help="mock stamps for the features part")
    ap.add_argument("--parts", default="mock,coadd,coadd_grouped,features,shards,store")
    ap.add_argument("--real-data", default=str(Path(__file__).resolve().parents[1] / "lensaudit_tests" / "data" / "real"))
    ns = ap.parse_args()
    if "store" in ns.parts.split(",") and ns.store_rows < 4096:
        ap.error(f"--store-rows {ns.store_rows}: the store part reads batches of 4096, give at least 4096 rows")
    parts = set(ns.parts.split(","))
    unknown = parts - {"mock", "coadd", "coadd_grouped", "features", "shards", "store"}
    if unknown:
        raise SystemExit(f"unknown --parts {sorted(unknown)} (mock, coadd, coadd_grouped, features, shards, store)")
    try:
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    except (AttributeError, OSError):
        pass
    print(f"machine: {platform.machine()} {_cpu_model()} cores={os.cpu_count()} python={platform.python_version()} "
          f"(one core); commit {_commit()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
          f"load average {os.getloadavg()[0]:.2f}")
    if "coadd_grouped" in parts:
        bench_coadd_grouped(Path(ns.real_data), ns.targets, ns.galaxies)
    if "features" in parts:
        bench_features(ns.feature_stamps)
    if "shards" in parts:
        bench_shards(2048)
    if parts & {"mock", "coadd", "store"}:
        bench_rest(ns, parts)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _commit() -> str:
    import subprocess

    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).resolve().parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


#: the seeds' EMR cluster (shared/reference: 1 master + 35 core nodes)
SEED_NODES, VCPU_PER_M5_2XLARGE = 35, 8


def _section_cutouts(root: Path, brick: str, ra, dec, size: int) -> list:
    """Per-target tile-section reads (the reference): open the image and invvar, build the
    WCS, decompress only the tiles under the stamp; same centring and no-data rule as
    ``CoaddSource``."""
    from astropy.io import fits
    from astropy.wcs import WCS

    out, h = [], size // 2
    for a, d in zip(ra, dec):
        with fits.open(root / f"legacysurvey-{brick}-image-g.fits.fz") as hi, \
                fits.open(root / f"legacysurvey-{brick}-invvar-g.fits.fz") as hv:
            x, y = WCS(hi[1].header).world_to_pixel_values(a, d)
            xc, yc = int(np.ceil(x - size / 2)) + h, int(np.ceil(y - size / 2)) + h
            ys, xs = slice(yc - h, yc + h + 1), slice(xc - h, xc + h + 1)
            plane = np.asarray(hi[1].section[ys, xs]).astype(np.float32)
            w = np.asarray(hv[1].section[ys, xs])
            out.append(np.where(np.isfinite(w) & (w > 0) & np.isfinite(plane), plane, np.float32(np.nan)))
    return out


def bench_coadd_grouped(real: Path, n_targets: int, galaxies: float, reps: int = 7) -> None:
    from astropy.io import fits
    from astropy.wcs import WCS

    from lensaudit.cutouts.coadd import CoaddSource
    from lensaudit.survey.bricks import brick_at
    from lensaudit.survey.instrument import STAMP_PIX

    root = real / "dr6_coadd_brick_0959p805"
    brick = "0959p805"
    hdr = fits.getheader(root / f"legacysurvey-{brick}-image-g.fits.fz", 1)
    wcs = WCS(hdr)
    ivar = fits.getdata(root / f"legacysurvey-{brick}-invvar-g.fits.fz", 1)
    # targets: pixels with data at the stamp centre, inside the brick's own area, stamp inside the image
    rng = np.random.default_rng(0)
    h = STAMP_PIX // 2
    yy, xx = np.nonzero(ivar[h:-h - 1, h:-h - 1] > 0)
    pick = rng.permutation(len(xx))
    ra, dec = [], []
    for k in pick:
        a, d = wcs.pixel_to_world_values(xx[k] + h + rng.uniform(-0.5, 0.5), yy[k] + h + rng.uniform(-0.5, 0.5))
        if brick_at(float(a), float(d)).brickname == brick:
            ra.append(float(a))
            dec.append(float(d))
        if len(ra) == n_targets:
            break
    ra, dec = np.array(ra), np.array(dec)
    del ivar

    def grouped(src_root):
        t0 = time.perf_counter()
        cuts = CoaddSource(str(src_root)).cutouts(ra, dec, bands="g")
        return time.perf_counter() - t0, cuts

    def load_only(src_root):
        t0 = time.perf_counter()
        CoaddSource(str(src_root))._load(brick, "g")
        return time.perf_counter() - t0

    def best(src_root):
        """min over ``reps`` interleaved rounds of (grouped call, one brick-band load)"""
        grouped(src_root)  # imports, first touch of the files
        rounds = [(grouped(src_root), load_only(src_root)) for _ in range(reps)]
        return min(r[0][0] for r in rounds), rounds[0][0][1], min(r[1] for r in rounds)

    t_grouped, cuts, t_load = best(root)
    n_ok = sum(c.ok for c in cuts)
    one = CoaddSource(str(root), cache_bricks=0)
    t0 = time.perf_counter()
    per = [one.cutout(float(a), float(d), bands="g") for a, d in zip(ra, dec)]
    t_per = time.perf_counter() - t0
    t0 = time.perf_counter()
    sec = _section_cutouts(root, brick, ra, dec, STAMP_PIX)
    t_sec = time.perf_counter() - t0
    for c, p, s_ in zip(cuts, per, sec):
        assert c.ok == p.ok and (not c.ok or c.data.tobytes() == p.data.tobytes()), "grouped != per-target"
        assert not c.ok or np.array_equal(c.data[0], s_, equal_nan=True), "grouped != tile sections"

    # a fully populated brick: same header (WCS, size), sky noise everywhere, same tile compression
    tmp = scratch_dir("bench_brick_")
    ny, nx = wcs.array_shape
    noise = rng.normal(0.0, 0.005, (ny, nx)).astype(np.float32)
    whdr = wcs.to_header()
    for kind, arr in (("image", noise), ("invvar", np.abs(4e4 + 4e3 * rng.standard_normal((ny, nx))).astype(np.float32))):
        fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(arr, whdr, compression_type="RICE_1", tile_shape=(100, 100),
                                                            quantize_method=2)]).writeto(
            tmp / f"legacysurvey-{brick}-{kind}-g.fits.fz")
    mb_full = sum(f.stat().st_size for f in tmp.iterdir()) / 1e6
    mb_real = sum((root / f"legacysurvey-{brick}-{k}-g.fits.fz").stat().st_size for k in ("image", "invvar")) / 1e6
    t_full, cuts_full, t_load_full = best(tmp)
    assert sum(c.ok for c in cuts_full) == n_targets

    n = n_targets
    print(f"coadd grouped by brick, real DR6 brick {brick} (g band, {mb_real:.1f} MB image+invvar .fits.fz, 12 % data), "
          f"{n} targets ({n_ok} ok), one core, times include open + decompress:")
    print(f"  grouped (CoaddSource.cutouts, one read per brick band): {n / t_grouped:10,.0f} stamps/s  "
          f"({t_grouped * 1e3:.0f} ms; brick band open+decompress {t_load * 1e3:.0f} ms)")
    print(f"  per-target reads (cutout, no cache):                    {n / t_per:10,.1f} stamps/s  "
          f"ratio grouped/per-target {t_per / t_grouped:6.1f}x")
    print(f"  per-target tile sections (open + only the stamp tiles): {n / t_sec:10,.1f} stamps/s  "
          f"ratio grouped/sections   {t_sec / t_grouped:6.1f}x")
    print(f"  fully populated brick (synthetic noise, same WCS, RICE 100x100 tiles, {mb_full:.1f} MB): grouped "
          f"{n / t_full:,.0f} stamps/s ({t_full * 1e3:.0f} ms; open+decompress {t_load_full * 1e3:.0f} ms)")
    # grz estimate: three bands = three times the per-band work of the fully populated brick
    t_stamp_grz = 3 * t_full / n
    rate = 1 / t_stamp_grz
    core_h = galaxies * t_stamp_grz / 3600
    inst_h = core_h / VCPU_PER_M5_2XLARGE
    wall_h = core_h / (SEED_NODES * VCPU_PER_M5_2XLARGE)
    print(f"implied EMR cost, {galaxies / 1e6:.0f}M galaxies in grz at {n} targets per brick (3 x the fully populated "
          f"g-band time, local disk, no S3 transfer): {rate:,.0f} stamps/s per core -> {core_h:,.1f} core-hours "
          f"= {inst_h:,.1f} m5.2xlarge-instance-hours (cores/8); on the seeds' {SEED_NODES} x m5.2xlarge "
          f"({SEED_NODES * VCPU_PER_M5_2XLARGE} vCPU): {wall_h * 60:,.1f} min of wall time")
    print(f"  bricks to read: {galaxies / n:,.0f} x {3 * mb_full:.0f} MB (grz image+invvar) = "
          f"{galaxies / n * 3 * mb_full / 1e6:,.1f} TB")


def _mock_sweep(tmp: Path):
    """(catalogue rows with galaxy_id, MockSweepImager) of one demo-sized mock sweep written under ``tmp``."""
    from lensaudit.catalogs.lenscat_catalog import load_lenscat
    from lensaudit.mock.config import MOCK_SWEEP_BOXES, MockSkyConfig
    from lensaudit.mock.render import MockSweepImager
    from lensaudit.mock.writer import read_truth, write_mock_sweep
    from lensaudit.survey.reader import read_catalog_fits

    cfg = MockSkyConfig(n_objects_per_sweep=30000)
    p = write_mock_sweep(cfg, MOCK_SWEEP_BOXES[1].name, tmp / "s", tmp / "t", load_lenscat())
    rows = read_catalog_fits(p).to_pandas()
    rows["galaxy_id"] = rows.brickname + "_" + rows.objid.astype(str)
    return rows, MockSweepImager(rows, read_truth(tmp / "t"), cfg)


def bench_features(n_stamps: int, reps: int = 3) -> None:
    from lensaudit.cutouts.features import features_of, features_table, saturation_threshold

    rows, imager = _mock_sweep(scratch_dir("bench_feat_"))
    ids = rows.loc[rows.type.isin(["SER", "DEV", "REX", "EXP"]) & np.isfinite(rows.ra), "galaxy_id"].head(n_stamps)
    stamps = imager.stamps(ids)
    sat = saturation_threshold(stamps)
    t_block = t_one = np.inf
    for _ in range(reps):
        t0 = time.perf_counter()
        table = features_table(stamps, sat)
        t_block = min(t_block, time.perf_counter() - t0)
    for _ in range(max(1, reps - 2)):
        t0 = time.perf_counter()
        one = pd.DataFrame([features_of(s, sat) for s in stamps])
        t_one = min(t_one, time.perf_counter() - t0)
    np.testing.assert_allclose(table.to_numpy(), one.to_numpy(), rtol=1e-12, equal_nan=True)
    import lensaudit.cutouts.features as feat  # the reference: the blocks' row medians by np.median (before e4ffc91)
    import lensaudit.stamps as stamps_mod  # ... and the ring medians too (before session 23)

    rows_median, ring_median, t_np = feat._median_rows, stamps_mod.median_rows, np.inf
    feat._median_rows = lambda a, axis=1: np.median(a, axis=axis)
    stamps_mod.median_rows = lambda a: np.median(a, axis=1)
    try:
        for _ in range(reps):
            t0 = time.perf_counter()
            ref = features_table(stamps, sat)
            t_np = min(t_np, time.perf_counter() - t0)
    finally:
        feat._median_rows, stamps_mod.median_rows = rows_median, ring_median
    print(f"shortcut features, {len(stamps)} mock stamps, one core (commit {_commit()}, {_cpu_model()}):")
    print(f"  one stamp at a time (features_of): {len(stamps) / t_one:8,.0f} stamps/s")
    print(f"  blocks of 256 (features_table):    {len(stamps) / t_block:8,.0f} stamps/s  ({t_one / t_block:.2f}x)")
    print(f"  blocks of 256, row and ring medians by np.median (reference): {len(stamps) / t_np:8,.0f} stamps/s "
          f"(order_stats {t_np / t_block:.2f}x; tables equal: {ref.equals(table)})")
    _bench_store_features(stamps, sat, reps)


def _bench_store_features(stamps: np.ndarray, sat: float, reps: int) -> None:
    """The shortcut_features job's read + features from a cutout store (two shards, page cache warm):
    the partition read chunk by chunk into one buffer (``store_features_table``) against the whole
    array read at once and then ``features_table`` (the job before session 20), alternating."""
    from lensaudit.cutouts.features import features_table, store_features_table
    from lensaudit.cutouts.store import CutoutReader, write_shard

    tmp = scratch_dir("bench_feat_store_")
    half = len(stamps) // 2
    write_shard(tmp / "shards" / "a.npy", stamps[:half])
    write_shard(tmp / "shards" / "b.npy", stamps[half:])
    idx = pd.DataFrame({"cutout_path": ["shards/a.npy"] * half + ["shards/b.npy"] * (len(stamps) - half),
                        "cutout_offset": np.r_[np.arange(half), np.arange(len(stamps) - half)], "cutout_ok": True})
    idx["galaxy_id"] = [f"g{i:06d}" for i in range(len(idx))]
    reader = CutoutReader(tmp)
    t_whole = t_chunk = np.inf
    for _ in range(reps):
        t0 = time.perf_counter()
        whole = features_table(reader.read(idx), sat)
        t_whole = min(t_whole, time.perf_counter() - t0)
        t0 = time.perf_counter()
        chunked = store_features_table(reader, idx, sat)
        t_chunk = min(t_chunk, time.perf_counter() - t0)
    print(f"  from a cutout store, the whole array read, then features_table (reference): "
          f"{len(stamps) / t_whole:8,.0f} stamps/s")
    print(f"  from a cutout store, read chunk by chunk (store_features_table):           "
          f"{len(stamps) / t_chunk:8,.0f} stamps/s  ({t_whole / t_chunk:.2f}x; tables equal: {chunked.equals(whole)})")
    # the same once in a fresh interpreter per run (as a Spark task's first partition: memory
    # the process has not touched before), the two alternating
    import concurrent.futures
    import multiprocessing

    idx.to_parquet(tmp / "index.parquet")
    fresh = {"whole": [], "chunked": []}
    for _ in range(reps):
        for mode in fresh:
            with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
                fresh[mode].append(pool.submit(_store_features_once, str(tmp), sat, mode).result())
    print(f"  in a fresh process each, seconds (read + features): whole array {', '.join(f'{t:.2f}' for t in fresh['whole'])}; "
          f"chunked {', '.join(f'{t:.2f}' for t in fresh['chunked'])}  "
          f"({np.median(fresh['whole']) / np.median(fresh['chunked']):.2f}x at the medians)")
    # the saturation threshold (the job computes it once, its gate once more): the whole sample read,
    # then saturation_threshold (before session 22), against store_saturation_threshold's chunks
    sat_s = {"whole": [], "chunked": []}
    for _ in range(reps):
        for mode in sat_s:
            with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
                sat_s[mode].append(pool.submit(_saturation_once, str(tmp), mode).result())
    same = len({v for _, v in sat_s["whole"] + sat_s["chunked"]}) == 1
    print(f"  saturation threshold of the {len(stamps)} stamps, a fresh process each, seconds: whole sample "
          f"{', '.join(f'{t:.2f}' for t, _ in sat_s['whole'])}; chunked {', '.join(f'{t:.2f}' for t, _ in sat_s['chunked'])}  "
          f"({np.median([t for t, _ in sat_s['whole']]) / np.median([t for t, _ in sat_s['chunked']]):.2f}x at the medians; "
          f"the same threshold: {same})")
    shutil.rmtree(tmp, ignore_errors=True)


def _saturation_once(store: str, mode: str) -> tuple[float, float]:
    """(seconds, threshold) of the store's saturation threshold, the whole sample read at once or
    chunked (``store_saturation_threshold``); run in a fresh interpreter."""
    from lensaudit.cutouts.features import saturation_threshold, store_saturation_threshold
    from lensaudit.cutouts.store import CutoutReader

    idx = pd.read_parquet(Path(store) / "index.parquet")
    reader = CutoutReader(store)
    t0 = time.perf_counter()
    if mode == "whole":
        value = saturation_threshold(reader.read(idx.sort_values("galaxy_id")))
    else:
        value = store_saturation_threshold(idx, reader)
    return time.perf_counter() - t0, value


def _store_features_once(store: str, sat: float, mode: str) -> float:
    """Seconds for the features of the store's rows (``index.parquet`` beside its shards) read
    whole or chunked; run in a fresh interpreter by ``_bench_store_features``."""
    from lensaudit.cutouts.features import features_table, store_features_table
    from lensaudit.cutouts.store import CutoutReader

    idx = pd.read_parquet(Path(store) / "index.parquet")
    reader = CutoutReader(store)
    t0 = time.perf_counter()
    if mode == "whole":
        features_table(reader.read(idx), sat)
    else:
        store_features_table(reader, idx, sat)
    return time.perf_counter() - t0


def bench_shards(n_stamps: int, reps: int = 3) -> None:
    """Writing one shard from the stamps the cutout job holds (separate arrays): hashed and written
    stamp by stamp, vs the previous np.stack + sha256 of the bytes + np.save (same run, same bytes)."""
    import hashlib

    from lensaudit.cutouts.store import shard_relpath, write_shard

    rng = np.random.default_rng(0)
    stamps = [rng.normal(size=(3, 101, 101)).astype(np.float32) for _ in range(n_stamps)]
    tmp = scratch_dir("bench_shard_")
    t_new = t_old = np.inf
    for _ in range(reps):
        t0 = time.perf_counter()
        stack = np.stack(stamps, dtype=np.float32)
        name_old = hashlib.sha256(stack.tobytes()).hexdigest()[:16]
        np.save(tmp / "old.npy", stack)
        del stack
        t_old = min(t_old, time.perf_counter() - t0)
        t0 = time.perf_counter()
        rel = shard_relpath("s", 0, stamps)
        write_shard(tmp / "new.npy", stamps)
        t_new = min(t_new, time.perf_counter() - t0)
    same = (tmp / "old.npy").read_bytes() == (tmp / "new.npy").read_bytes() and name_old in rel
    mb = n_stamps * stamps[0].nbytes / 1e6
    print(f"one shard of {n_stamps} stamps ({mb:,.0f} MB), one core (commit {_commit()}, {_cpu_model()}):")
    print(f"  np.stack + sha256(tobytes) + np.save (reference): {t_old:6.3f} s")
    print(f"  stamp by stamp (shard_relpath + write_shard):     {t_new:6.3f} s  ({t_old / t_new:.2f}x; same bytes and "
          f"name: {same})")
    shutil.rmtree(tmp, ignore_errors=True)


def bench_rest(ns, parts) -> None:
    from lensaudit.cutouts.coadd import CoaddSource
    from lensaudit.cutouts.store import SHARD_ROWS, CutoutReader, write_shard

    tmp = scratch_dir("bench_cut_")
    if "mock" in parts:
        rows, imager = _mock_sweep(tmp)
        targets = rows[rows.type.isin(["SER", "DEV", "REX"]) & np.isfinite(rows.ra)].head(ns.stamps)
        t0 = time.perf_counter()
        for r in targets.itertuples(index=False):
            imager.stamp(r)
        t_mock = time.perf_counter() - t0
        print(f"mock source:   {ns.stamps / t_mock:10,.1f} stamps/s (3 bands, neighbours, PSF, noise)")

    if "coadd" in parts:
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
        print(f"coadd source:  {len(radec) / t_coadd:10,.1f} stamps/s (g band, real DR6 brick cached; {n_ok} ok)")

    if "store" not in parts:
        return
    rng = np.random.default_rng(0)
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

    # the host work of a read besides its pixel copies (a 1-px window: grouping rows by shard,
    # checks), which holds the GIL the scan's launching thread needs, against the previous grouping
    # alone (np.unique of the path strings + one string comparison per shard; same run)
    one = np.empty((4096, 3, 1, 1), np.float32)
    for label, rows in (("contiguous", idx), ("shuffled", shuffled)):
        batches = [rows.iloc[s:s + 4096] for s in range(0, n - 4095, 4096)]
        t_read = t_prev = float("inf")
        for _ in range(5):  # best of 5, alternating
            t0 = time.perf_counter()
            for b in batches:
                reader.read(b, one, window=(50, 51))
            t_read = min(t_read, (time.perf_counter() - t0) / len(batches))
            t0 = time.perf_counter()
            for b in batches:
                p = b["cutout_path"].to_numpy()
                for rel in np.unique(p):
                    np.flatnonzero(p == rel)
            t_prev = min(t_prev, (time.perf_counter() - t0) / len(batches))
        print(f"store read of a 1-px window, {label} batches of 4096: {t_read * 1e3:.2f} ms per batch "
              f"(the previous grouping alone: {t_prev * 1e3:.2f} ms; best of 5)")
    gb = n * 3 * 101 * 101 * 4 / 1e9
    print(f"store read, contiguous batches of 4096: {n / t_seq:12,.0f} cutouts/s ({gb / t_seq:.1f} GB/s)")
    print(f"store read, shuffled batches of 4096:   {n / t_shuf:12,.0f} cutouts/s ({gb / t_shuf:.1f} GB/s)")
    print(f"reference np.load of the same shards:   {n / t_ref:12,.0f} cutouts/s; ratio contiguous/reference "
          f"{t_ref / t_seq:.2f}x")
    print(f"target >= 50,000 cutouts/s: {'MET' if n / t_seq >= 5e4 else 'NOT MET'} (contiguous), "
          f"{'MET' if n / t_shuf >= 5e4 else 'NOT MET'} (shuffled)")

if __name__ == "__main__":
    main()
