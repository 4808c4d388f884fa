"""The Spark jobs on the shared local session: per-file failures, pools, manifest."""

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from astropy.io import fits

from lensaudit.mock.config import MOCK_SWEEP_BOXES, MockSkyConfig
from lensaudit.mock.writer import write_mock_sweep
from lensaudit.sampling.pools import N1_CUT_ORDER, NegativeCuts
from lensaudit.spark_jobs.entrypoint import run_job
from lensaudit.splits import healpix_index, split_of_pixels

pytestmark = pytest.mark.spark
CFG = MockSkyConfig(n_objects_per_sweep=6000)


@pytest.fixture(scope="module")
def converted(tmp_path_factory, spark, lenscat_all):
    d = tmp_path_factory.mktemp("sweeps")
    names = [b.name for b in MOCK_SWEEP_BOXES[:2]]
    jobs = {n: [str(write_mock_sweep(CFG, n, d / "fits", d / "truth", lenscat_all)), str(d / "pq" / n.replace(".fits", ".parquet"))]
            for n in names}
    # a third, broken sweep: one required column removed
    src = jobs[names[0]][0]
    with fits.open(src) as h:
        cols = [c for c in h[1].columns if c.name != "PSFSIZE_R"]
        fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(fits.ColDefs(cols))]).writeto(d / "broken.fits")
    bad = "sweep-000p000-010p005.fits"
    jobs[bad] = [str(d / "broken.fits"), str(d / "pq" / "bad.parquet")]
    summary = run_job(spark, "sweep_catalog", {"jobs": jobs})
    return d, names, {t["key"]: t for t in summary["tasks"]}, bad


def test_sweep_conversion_reports_each_file(converted):
    d, names, tasks, bad = converted
    assert not tasks[bad]["ok"] and "broken.fits" in tasks[bad]["error"] and "psfsize_r" in tasks[bad]["error"]
    assert not (d / "pq" / "bad.parquet").exists()
    for n in names:
        assert tasks[n]["ok"]
        info = json.loads(tasks[n]["payload"])
        t = pq.read_table(d / "pq" / n.replace(".fits", ".parquet"))
        assert t.num_rows == info["rows"] and info["duplicate_galaxy_id"] == 0
        assert set(t.column("sweep").to_pylist()) == {n}


def test_sweep_job_writes_the_mock_sweeps_in_its_tasks(converted, spark, tmp_path):
    """With the mock sky's ``mock_writer`` (a JSON round trip, as a job's arguments), each task
    writes its sweep and truth files first: the same bytes as the driver writes, the same table."""
    from dataclasses import asdict

    d, names, _, _ = converted
    mock = json.loads(json.dumps({"config": asdict(CFG), "sweep_dir": str(tmp_path / "fits"),
                                  "truth_dir": str(tmp_path / "truth")}))
    assert MockSkyConfig.from_dict(mock["config"]) == CFG
    jobs = {n: [str(tmp_path / "fits" / n), str(tmp_path / "pq" / n.replace(".fits", ".parquet"))] for n in names}
    summary = run_job(spark, "sweep_catalog", {"jobs": jobs, "mock": mock})
    assert all(t["ok"] for t in summary["tasks"]), summary
    for n in names:
        stem = n.replace(".fits", ".parquet")
        assert (tmp_path / "fits" / n).read_bytes() == (d / "fits" / n).read_bytes()
        assert (tmp_path / "truth" / stem).read_bytes() == (d / "truth" / stem).read_bytes()
        pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "pq" / stem), pd.read_parquet(d / "pq" / stem))
    # a job that would read another path than the one the task wrote fails that sweep, with its reason
    jobs[names[0]][0] = str(tmp_path / "elsewhere.fits")
    tasks = {t["key"]: t for t in run_job(spark, "sweep_catalog", {"jobs": jobs, "mock": mock})["tasks"]}
    assert not tasks[names[0]]["ok"] and "elsewhere.fits" in tasks[names[0]]["error"] and tasks[names[1]]["ok"]


def test_negative_pool_job_counts_every_row(converted, spark):
    d, names, _, _ = converted
    jobs = {n: [str(d / "pq" / n.replace(".fits", ".parquet")), str(d / "pool" / f"{n}.parquet"), str(d / "cnt" / f"{n}.parquet")]
            for n in names}
    from dataclasses import asdict

    summary = run_job(spark, "negative_pool", {"jobs": jobs, "cuts": asdict(NegativeCuts())})
    for t in summary["tasks"]:
        assert t["ok"], t["error"]
    for n in names:
        counts = pd.read_parquet(jobs[n][2])
        pool = pd.read_parquet(jobs[n][1])
        n_in = pq.read_metadata(jobs[n][0]).num_rows
        for p in ("N1", "N2"):
            c = counts[counts.pool == p].set_index("cut")["n_rows"]
            assert c["rows_in"] == n_in
            assert c.drop("rows_in").sum() == n_in  # every row: removed by exactly one cut, or kept
            assert c["kept"] == (pool.pool == p).sum()
        assert list(counts[counts.pool == "N1"].cut)[1:-1] == [f"removed_{x}" for x in N1_CUT_ORDER]
        assert not pool.duplicated(["galaxy_id", "pool"]).any()
        assert (pool.loc[pool.pool == "N2", "confuser_category"] != "").all()


def _synthetic(n_neg=4000, seed=3):
    rng = np.random.default_rng(seed)
    ra = rng.uniform(150, 160, n_neg)
    dec = rng.uniform(0, 5, n_neg)
    neg = pd.DataFrame({"galaxy_id": [f"n{i}" for i in range(n_neg)], "ra": ra, "dec": dec,
                        "type": rng.choice(["SER", "DEV", "REX"], n_neg), "nobs_z": rng.integers(3, 14, n_neg).astype(np.int16),
                        "pool": np.where(rng.random(n_neg) < 0.3, "N2", "N1")})
    neg["confuser_category"] = np.where(neg.pool == "N2", "ring", "")
    pos = pd.DataFrame({"galaxy_id": [f"p{i}" for i in range(8)], "ra": rng.uniform(150, 160, 8),
                        "dec": rng.uniform(0, 5, 8), "type": ["DEV"] * 5 + ["SER", "REX", "EXP"],
                        "nobs_z": np.array([4, 4, 7, 2, 12, 5, 5, 5], np.int16), "tier": ["A"] * 3 + ["B"] * 5})
    pos["sample_weight"] = np.where(pos.tier == "A", 1.0, 0.5)
    return pos, neg


def _fill(df):
    from lensaudit.spark_jobs.manifest import MANIFEST_SCHEMA

    for f in MANIFEST_SCHEMA:
        if f.name not in df:
            df[f.name] = "" if str(f.type) == "string" else 0
    return df


def test_manifest_job_is_deterministic_and_honours_the_plan(tmp_path, spark):
    pos, neg = _synthetic()
    allg = pd.concat([pos[["galaxy_id", "ra", "dec"]], neg[["galaxy_id", "ra", "dec"]]])
    allg["healpix_128"] = healpix_index(allg.ra, allg.dec)
    allg["split"] = split_of_pixels(allg.healpix_128, 1)
    # put all positives into the train split's pixels for this unit test
    allg.loc[allg.galaxy_id.str.startswith("p"), "split"] = "train"
    allg = allg[~(allg.galaxy_id.str.startswith("n") & allg.healpix_128.isin(allg.loc[allg.galaxy_id.str.startswith("p"), "healpix_128"]))]
    allg.to_parquet(tmp_path / "splits.parquet")
    pool = _fill(neg.copy()).drop(columns=["split", "healpix_128", "selected_for_nobs_z_bin", "nobs_z_bin", "type_bin",
                                           "label", "tier", "sample_weight", "lens_id"])
    pool.to_parquet(tmp_path / "pool.parquet")
    _fill(pos.copy()).drop(columns=["split", "healpix_128"]).assign(
        nobs_g=np.int16(5), nobs_r=np.int16(5)).to_parquet(tmp_path / "pos.parquet")
    outs = []
    for k in range(2):
        args = dict(positives=str(tmp_path / "pos.parquet"), splits=[str(tmp_path / "splits.parquet")],
                    pool_files=[str(tmp_path / "pool.parquet")], ratio=100, n2_fraction=0.15, seed=42,
                    out_manifest=str(tmp_path / f"m{k}.parquet"), out_shortfalls=str(tmp_path / f"s{k}.parquet"),
                    out_excluded=str(tmp_path / f"x{k}.parquet"),
                    parity={"dec_min": -18.0, "dec_max": 32.0, "min_nobs": 3, "types": ["SER", "DEV", "REX"]})
        run_job(spark, "training_manifest", args)
        outs.append(pd.read_parquet(tmp_path / f"m{k}.parquet"))
    pd.testing.assert_frame_equal(outs[0], outs[1])
    m = outs[0]
    sf = pd.read_parquet(tmp_path / "s0.parquet")
    assert m.galaxy_id.is_unique
    from lensaudit.gates import data_gates

    r = data_gates.manifest_ratio(m, sf, 100, 1.0)
    assert not r.details["accounting_errors"] and not r.details["negatives_in_strata_without_positives"]
    # positives outside the negatives' domain are excluded with their reason, not trained on
    ex = pd.read_parquet(tmp_path / "x0.parquet")
    assert dict(zip(ex.galaxy_id, ex.reason)) == {"p3": "nobs_z", "p7": "type"}
    assert not m.galaxy_id.isin(ex.galaxy_id).any() and (sf.type_bin != "OTHER").all()
    neg_m = m[m.label == 0]
    assert abs((neg_m.pool == "N2").mean() - 0.15) < 0.01
    # the first rows in hash order were taken inside each stratum and pool
    from lensaudit.sampling.stratify import selection_key

    n1_own = neg_m[(neg_m.pool == "N1") & (neg_m.nobs_z_bin == neg_m.selected_for_nobs_z_bin)]
    for (b, t), grp in n1_own.groupby(["nobs_z_bin", "type_bin"]):
        cand = neg[(neg.pool == "N1") & (neg.type == t) & ~neg.galaxy_id.isin(neg_m.loc[neg_m.pool == "N2", "galaxy_id"])]
        cand = cand[cand.galaxy_id.isin(allg.loc[allg.split == "train", "galaxy_id"])]
        from lensaudit.sampling.stratify import nobs_z_bin as nb

        cand = cand[nb(cand.nobs_z) == b]
        keys = sorted(cand.galaxy_id, key=lambda g: selection_key(g, 42))
        assert set(grp.galaxy_id) == set(keys[:len(grp)])


@pytest.mark.spark
def test_local_session_is_dagster_pyspark_with_our_config(spark):
    """The local session comes from dagster-pyspark's LazyPySparkResource with the resource's
    settings (UTC session time zone, Arrow transfers, no Spark UI), and is the one session of the process."""
    from resources.spark import SparkResource

    conf = spark.sparkContext.getConf()
    assert spark.conf.get("spark.sql.session.timeZone") == "UTC"
    assert spark.conf.get("spark.sql.execution.arrow.pyspark.enabled") == "true"
    assert conf.get("spark.ui.enabled") == "false" and conf.get("spark.app.name") == "lensaudit"
    assert SparkResource(master="local[2]").session() is spark


def test_run_tasks_gives_each_key_its_own_task_largest_first(spark):
    """One Spark task per key (no two keys hashed into one task, no empty task), started
    largest first when sizes are given; status rows come back sorted by key."""
    from lensaudit.spark_jobs.common import run_tasks, status_batch

    def task(key):
        from pyspark import TaskContext

        return status_batch(key, True, n_rows=TaskContext.get().partitionId())

    keys = [f"sweep-{i:03d}" for i in range(10)]
    rows = run_tasks(spark, keys[::-1], task)
    assert [r["key"] for r in rows] == keys
    assert [r["n_rows"] for r in rows] == list(range(10))  # key order, one partition each
    sizes = {k: s for k, s in zip(keys, [5, 0, 9, 9, 1, 7, 3, 2, 8, 4])}
    rows = run_tasks(spark, keys, task, sizes=sizes)
    started = sorted(keys, key=lambda k: next(r["n_rows"] for r in rows if r["key"] == k))
    assert started == ["sweep-002", "sweep-003", "sweep-008", "sweep-005", "sweep-000", "sweep-009", "sweep-006",
                       "sweep-007", "sweep-004", "sweep-001"]
    assert run_tasks(spark, [], task) == []
    # sizes are a scheduling hint: one that cannot be counted leaves key order
    from lensaudit.spark_jobs.common import task_sizes

    assert task_sizes(lambda: {"a": 3}) == {"a": 3}
    assert task_sizes(lambda: pd.read_parquet("/nonexistent/manifest.parquet")) is None
