"""EMR mode of the Spark resource against a real moto server (S3 + EMR) on 127.0.0.1.

moto records clusters and steps but runs nothing, so ``EmrStepPlayer`` plays the step: it
reads the step's ``spark-submit`` arguments from moto, checks they hold S3 URIs only, writes
the job's outputs to S3, runs the Pipes side the way ``lensaudit.spark_jobs.entrypoint.main``
does (``dagster_pipes.open_dagster_pipes`` with ``PipesS3ContextLoader`` and
``PipesS3MessageWriter``, the bootstrap parameters taken from the step's
``spark.yarn.appMasterEnv`` settings), and sets the step COMPLETED (or FAILED) in moto.
The Dagster side is the production code: real assets, ``dg.materialize``, boto3 over HTTP.
"""

import io
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import boto3
import dagster as dg
import pandas as pd
import pytest


from moto.backends import get_backend  # noqa: E402
from moto.core import DEFAULT_ACCOUNT_ID  # noqa: E402

from resources.settings import LensauditSettings  # noqa: E402
from resources.spark import EmrPathError, EmrSettings, SparkResource  # noqa: E402
from resources.sweeps import SweepSource  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
REGION = "us-east-2"
BUCKET = "lensaudit-test"
TIMEOUT_S = 60


@pytest.fixture
def aws(moto_url, monkeypatch):
    """Fake credentials and the moto endpoint for this test only; a fresh server state."""
    import requests

    requests.post(f"{moto_url}/moto-api/reset", timeout=10)
    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
                 "AWS_DEFAULT_REGION": REGION, "AWS_ENDPOINT_URL": moto_url}.items():
        monkeypatch.setenv(k, v)
    for k in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(k, raising=False)
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    return {"s3": s3, "emr": boto3.client("emr", region_name=REGION)}


def _spark() -> SparkResource:
    return SparkResource(mode="emr", emr=EmrSettings(
        region=REGION, log_uri=f"s3://{BUCKET}/emr-logs/", pipes_bucket=BUCKET, store_uri=f"s3://{BUCKET}/store",
        code_uri=f"s3://{BUCKET}/code/entrypoint.py", bootstrap_uri=f"s3://{BUCKET}/code/bootstrap.sh",
        step_poll_s=0.2, step_timeout_s=TIMEOUT_S, cluster_wait_s=10))


def _parquet(df: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    return buf.getvalue()


def _put(s3, uri: str, body: bytes) -> None:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    s3.put_object(Bucket=bucket, Key=key, Body=body)


# argv: summary JSON, then the step's own "--job NAME --args-json JSON"
_DRIVER = """
import json, sys
import pyspark.sql

class _Builder:
    def appName(self, name):
        return self
    def getOrCreate(self):
        return None

class _Session:  # moto runs no Spark: the session is stood in for
    builder = _Builder()

pyspark.sql.SparkSession = _Session
from lensaudit.spark_jobs import entrypoint

summary = json.loads(sys.argv[1])
job = sys.argv[3]
entrypoint.JOBS[job] = lambda spark, **args: summary  # the job's computation: the test wrote its outputs
sys.exit(entrypoint.main(sys.argv[2:]))
"""


class EmrStepPlayer:
    """Plays every EMR step moto holds (see the module docstring).  ``jobs[name](s3, args) -> summary``
    writes the job's outputs; ``fail`` names jobs whose step fails without a Pipes summary."""

    def __init__(self, jobs: dict, fail: tuple = (), silent: tuple = ()):
        self.jobs, self.fail, self.silent = jobs, fail, silent
        self.seen: list[dict] = []
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=10)
        if self.errors:
            raise AssertionError(f"the EMR step player failed: {self.errors!r}") from self.errors[0]

    def _loop(self):
        done = set()
        while not self._stop.is_set():
            # moto files EMR calls made through AWS_ENDPOINT_URL under its default region: look in all
            regions = list(get_backend("emr")[DEFAULT_ACCOUNT_ID].values())
            for cluster in [c for b in regions for c in list(b.clusters.values())]:
                for step in list(cluster.steps):
                    if step.id in done or step.state not in ("RUNNING", "PENDING"):
                        continue
                    done.add(step.id)
                    try:
                        self._play(cluster.id, step)
                    except BaseException as exc:  # surfaced in __exit__
                        self.errors.append(exc)
                        step.state = "FAILED"
            time.sleep(0.05)

    def _play(self, cluster_id, step):
        args = list(step.args)
        assert args[0] == "spark-submit" and args.count("spark-submit") == 1
        env = {}
        for i, a in enumerate(args):
            if a == "--conf" and args[i + 1].startswith("spark.yarn.appMasterEnv."):
                k, _, v = args[i + 1].removeprefix("spark.yarn.appMasterEnv.").partition("=")
                env[k] = v
        job = args[args.index("--job") + 1]
        job_args = json.loads(args[args.index("--args-json") + 1])
        self.seen.append({"cluster_id": cluster_id, "step_id": step.id, "job": job, "args": job_args, "env": env,
                          "code": args[args.index("--job") - 1]})
        if job in self.fail:
            step.state = "FAILED"
            return
        if job in self.silent:  # a step that ends well but never opened Pipes
            step.state = "COMPLETED"
            return
        s3 = boto3.client("s3", region_name=env["AWS_DEFAULT_REGION"])
        summary = self.jobs[job](s3, job_args)
        # the step's driver: lensaudit.spark_jobs.entrypoint.main in a fresh process with the
        # step's appMasterEnv; only the Spark session and the job's computation are stood in for
        r = subprocess.run([sys.executable, "-c", _DRIVER, json.dumps(summary), *args[args.index("--job"):]],
                           env={**os.environ, **env, "PYTHONPATH": str(REPO)}, cwd=REPO,
                           capture_output=True, text=True, timeout=TIMEOUT_S)
        assert r.returncode == 0, r.stdout + r.stderr
        step.state = "COMPLETED"


def _positives_job(s3, a):
    _put(s3, a["out_matched"], _parquet(pd.DataFrame({"lens_id": ["L1", "L2"], "sep_arcsec": [0.2, 0.9],
                                                      "tier": ["A", "B"]})))
    _put(s3, a["out_unmatched"], _parquet(pd.DataFrame({"lens_id": ["L3"], "reason": ["no_source_within_radius"]})))
    return {"tasks": [{"key": k, "ok": True, "error": ""} for k in a["sweep_files"]], "matched": 2, "unmatched": 1,
            "covered": 3}


def _manifest_job(s3, a):
    _put(s3, a["out_manifest"], _parquet(pd.DataFrame({"galaxy_id": [1, 2, 3], "split": ["train"] * 3,
                                                       "label": [1, 0, 0], "tier": ["A", "N1", "N2"]})))
    _put(s3, a["out_shortfalls"], _parquet(pd.DataFrame({"split": ["train"], "shortfall": [0]})))
    _put(s3, a["out_excluded"], _parquet(pd.DataFrame({"galaxy_id": [9], "reason": ["dec_out_of_range"]})))
    return {"rows": 3, "shortfall_total": 0, "excluded_positives": 1}


def _home(tmp_path):
    """A store with the inputs of positives and training_manifest as the upstream assets leave them."""
    from lensaudit.store import partition_file

    home = (tmp_path / "home").resolve()
    files = {partition_file(home, "lens_catalog", "data"): pd.DataFrame({"lens_id": ["L1"], "ra": [1.0], "dec": [2.0]}),
             partition_file(home, "sweep_catalog", "sweep-000m005-010p000"): pd.DataFrame({"ra": [1.0]}),
             partition_file(home, "spatial_splits", "sweep-000m005-010p000"): pd.DataFrame({"galaxy_id": [1]}),
             partition_file(home, "negative_pool", "sweep-000m005-010p000"): pd.DataFrame({"galaxy_id": [2]})}
    for p, df in files.items():
        p.parent.mkdir(parents=True, exist_ok=True)
        df.to_parquet(p, index=False)
    return home


def _cluster_steps(emr):
    clusters = emr.list_clusters()["Clusters"]
    return {c["Id"]: emr.list_steps(ClusterId=c["Id"])["Steps"] for c in clusters}


@pytest.mark.dagster
def test_one_cluster_per_run_pipes_round_trip_and_store_sync(aws, tmp_path):
    """positives and training_manifest (the real assets) in one run: one job flow, two steps,
    S3-only step arguments, inputs uploaded, summaries back through Pipes, outputs downloaded."""
    from assets.catalogs import positives
    from assets.manifest import training_manifest
    from lensaudit.store import partition_file

    home = _home(tmp_path)
    spark = _spark()
    with EmrStepPlayer({"positives": _positives_job, "training_manifest": _manifest_job}) as player:
        result = dg.materialize([positives, training_manifest], resources={
            "spark": spark, "settings": LensauditSettings(home=str(home), profile="tiny")})
    assert result.success
    steps = _cluster_steps(aws["emr"])
    assert len(steps) == 1, steps  # one job flow for the run
    (cid, cl_steps), = steps.items()
    assert sorted(s["Name"] for s in cl_steps) == ["lensaudit positives", "lensaudit training_manifest"]
    assert all(s["Status"]["State"] == "COMPLETED" for s in cl_steps)
    assert {s["cluster_id"] for s in player.seen} == {cid} and [s["job"] for s in player.seen] == [
        "positives", "training_manifest"]
    cluster = aws["emr"].describe_cluster(ClusterId=cid)["Cluster"]
    assert cluster["Name"] == f"lensaudit-run-{result.run_id}" and cluster["AutoTerminate"] is False
    assert {t["Key"]: t["Value"] for t in cluster["Tags"]}["dagster/run-id"] == result.run_id
    # the step arguments hold S3 URIs only, under the store root; its inputs were uploaded
    store = f"s3://{BUCKET}/store/"
    for seen in player.seen:
        assert seen["code"] == f"s3://{BUCKET}/code/entrypoint.py"
        assert {"DAGSTER_PIPES_CONTEXT", "DAGSTER_PIPES_MESSAGES"} <= set(seen["env"])
        flat = json.dumps(seen["args"])
        assert str(home) not in flat and str(tmp_path) not in flat
    pos = player.seen[0]["args"]
    assert pos["lens_catalog"] == store + "assets/lens_catalog/data.parquet"
    assert pos["out_matched"] == store + "assets/positives/data.parquet"
    keys = {o["Key"] for o in aws["s3"].list_objects_v2(Bucket=BUCKET, Prefix="store/")["Contents"]}
    assert "store/assets/lens_catalog/data.parquet" in keys
    assert "store/assets/negative_pool/sweep-000m005-010p000.parquet" in keys
    man = player.seen[1]["args"]
    assert man["pool_files"] == [store + "assets/negative_pool/sweep-000m005-010p000.parquet"]
    # the Pipes summaries reached the assets, which read the downloaded outputs
    mats = {m.asset_key.to_user_string(): m.metadata for m in result.asset_materializations_for_node("positives")
            + result.asset_materializations_for_node("training_manifest")}
    assert mats["positives"]["covered_lenses"].value == 3 and mats["positives"]["dagster/row_count"].value == 2
    assert mats["training_manifest"]["dagster/row_count"].value == 3
    assert mats["training_manifest"]["excluded_positives"].value == 1
    assert pd.read_parquet(partition_file(home, "training_manifest_excluded_positives", "data"))["reason"].tolist() == [
        "dec_out_of_range"]
    # the run's cluster is recorded on S3 and ended on request
    assert spark.emr_terminate_run_cluster(result.run_id) == cid
    assert aws["emr"].describe_cluster(ClusterId=cid)["Cluster"]["Status"]["State"] == "TERMINATED"
    assert spark.emr_terminate_run_cluster(result.run_id) is None


@pytest.mark.dagster
def test_second_run_gets_its_own_cluster_and_ended_cluster_is_replaced(aws, tmp_path):
    spark = _spark()
    a = spark.emr_cluster_for_run("run-a")
    assert spark.emr_cluster_for_run("run-a") == a
    b = spark.emr_cluster_for_run("run-b")
    assert b != a
    aws["emr"].terminate_job_flows(JobFlowIds=[a])  # e.g. its idle timeout
    c = spark.emr_cluster_for_run("run-a")
    assert c not in (a, b)
    assert len(aws["emr"].list_clusters(ClusterStates=["WAITING", "RUNNING", "STARTING"])["Clusters"]) == 2


def _one_sweep_partition():
    """A mock sweep name, registered as a (dynamic) sweep partition of an ephemeral instance."""
    from assets.sweeps import SWEEP_PARTITIONS_NAME
    from resources.sweeps import discover_sweep_partitions

    key = discover_sweep_partitions("mock")[0]
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(SWEEP_PARTITIONS_NAME, [key])
    return key, instance


@pytest.mark.dagster
def test_local_path_outside_the_store_fails_before_any_cluster_call(aws, tmp_path):
    """The real sweep_catalog asset with sweeps in a local folder: a clear error, no cluster, no step."""
    from assets.sweeps import sweep_catalog

    home = _home(tmp_path)
    key, instance = _one_sweep_partition()
    with EmrStepPlayer({}):
        result = dg.materialize([sweep_catalog], partition_key=key, raise_on_error=False, instance=instance, resources={
            "spark": _spark(), "settings": LensauditSettings(home=str(home), profile="tiny"),
            "sweeps": SweepSource(location=str(tmp_path / "dr10_sweeps"))})
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    msg = failure.step_failure_data.user_failure_data.description
    assert msg.startswith("sweep_catalog on EMR: EmrPathError: EMR mode: step arguments") and "outside the store root" in msg
    assert f"jobs.{key}[0]=" in msg and "dr10_sweeps" in msg
    assert aws["emr"].list_clusters()["Clusters"] == []
    assert "Contents" not in aws["s3"].list_objects_v2(Bucket=BUCKET)


@pytest.fixture
def short_pipes_wait(monkeypatch):
    """Dagster's message reader waits 10 s for a closing message that a failed step never sends."""
    import dagster._core.pipes.utils as pipes_utils

    monkeypatch.setattr(pipes_utils, "WAIT_FOR_LOGS_AFTER_EXECUTION_INTERVAL", 1)


@pytest.mark.dagster
def test_missing_store_bucket_is_a_clear_failure_before_any_cluster(aws, tmp_path):
    from assets.catalogs import positives

    spark = SparkResource(mode="emr", emr=_spark().emr.model_copy(update={"store_uri": "s3://no-such-bucket/store"}))
    result = dg.materialize([positives], raise_on_error=False, resources={
        "spark": spark, "settings": LensauditSettings(home=str(_home(tmp_path)), profile="tiny")})
    assert not result.success
    msg = next(e for e in result.all_events if e.is_step_failure).step_failure_data.user_failure_data.description
    assert msg.startswith("positives on EMR: ") and "NoSuchBucket" in msg
    assert aws["emr"].list_clusters()["Clusters"] == []


@pytest.mark.dagster
def test_step_over_emrs_argument_limit_fails_before_any_aws_call(aws, tmp_path):
    """positives over 200 sweeps: the argument JSON passes EMR's 10240-character HadoopJarStep
    limit (moto does not enforce it): refused before anything is uploaded or started."""
    from assets.catalogs import positives
    from lensaudit.store import partition_file

    home = _home(tmp_path)
    for i in range(200):
        p = partition_file(home, "sweep_catalog", f"sweep-{i:03d}m005-{i + 1:03d}p000")
        pd.DataFrame({"ra": [1.0]}).to_parquet(p)
    result = dg.materialize([positives], raise_on_error=False, resources={
        "spark": _spark(), "settings": LensauditSettings(home=str(home), profile="tiny")})
    assert not result.success
    msg = next(e for e in result.all_events if e.is_step_failure).step_failure_data.user_failure_data.description
    assert "EmrStepTooLarge" in msg and "limit of 10240" in msg
    assert aws["emr"].list_clusters()["Clusters"] == []
    assert "Contents" not in aws["s3"].list_objects_v2(Bucket=BUCKET)


@pytest.mark.dagster
def test_step_without_pipes_summary_fails_the_asset(aws, tmp_path, short_pipes_wait):
    from assets.catalogs import positives

    with EmrStepPlayer({}, silent=("positives",)):
        result = dg.materialize([positives], raise_on_error=False, resources={
            "spark": _spark(), "settings": LensauditSettings(home=str(_home(tmp_path)), profile="tiny")})
    assert not result.success
    msg = next(e for e in result.all_events if e.is_step_failure).step_failure_data.user_failure_data.description
    assert "completed without a Pipes summary" in msg


@pytest.mark.dagster
def test_sweeps_on_s3_pass_and_failed_step_fails_the_asset(aws, tmp_path, short_pipes_wait):
    """sweep_catalog with sweeps on S3: the step gets the S3 sweep URI and a store URI for the
    output; the step fails (no Pipes summary): the asset fails naming the step."""
    from assets.sweeps import sweep_catalog

    home = _home(tmp_path)
    key, instance = _one_sweep_partition()
    with EmrStepPlayer({}, fail=("sweep_catalog",)) as player:
        result = dg.materialize([sweep_catalog], partition_key=key, raise_on_error=False, instance=instance, resources={
            "spark": _spark(), "settings": LensauditSettings(home=str(home), profile="tiny"),
            "sweeps": SweepSource(location="s3://dr10-sweeps/10.1/south/sweep")})
    assert not result.success
    msg = next(e for e in result.all_events if e.is_step_failure).step_failure_data.user_failure_data.description
    assert "ended FAILED" in msg and "lensaudit sweep_catalog" in msg
    assert player.seen[0]["args"]["jobs"][key] == ["s3://dr10-sweeps/10.1/south/sweep/" + key,
                                                   f"s3://{BUCKET}/store/assets/sweep_catalog/{key.removesuffix('.fits')}.parquet"]


def test_every_job_argument_dict_maps_to_s3(tmp_path):
    """The argument dicts of the six Spark jobs (as assets/*.py build them) hold only S3 URIs after mapping."""
    from lensaudit.store import partition_file, safe_join

    home = _home(tmp_path)
    pf = lambda a, k="data": str(partition_file(home, a, k))  # noqa: E731
    k = "sweep-000m005-010p000.fits"
    jobs = {
        "sweep_catalog": {"jobs": {k: ["s3://src/" + k, pf("sweep_catalog", k)]}},
        "negative_pool": {"jobs": {k: [pf("sweep_catalog", k), pf("negative_pool", k),
                                       pf("negative_pool_filter_counts", k)]}, "cuts": {"dec_min_deg": -18.0}},
        "positives": {"sweep_files": {k: pf("sweep_catalog", k)}, "lens_catalog": pf("lens_catalog"),
                      "radius_arcsec": 1.5, "out_matched": pf("positives"), "out_unmatched": pf("positives_unmatched")},
        "training_manifest": {"positives": pf("positives"), "splits": [pf("spatial_splits", k)],
                              "pool_files": [pf("negative_pool", k)], "ratio": 100, "n2_fraction": 0.15, "seed": 1,
                              "out_manifest": pf("training_manifest"), "out_shortfalls": pf("training_manifest_shortfalls"),
                              "out_excluded": pf("training_manifest_excluded_positives"),
                              "parity": {"dec_min": -18.0, "dec_max": 32.0, "min_nobs": 3, "types": ["SER", "DEV"]}},
        "cutouts": {"sweeps": [k], "manifest": pf("training_manifest"),
                    "spec": {"kind": "http", "location": "https://www.legacysurvey.org/viewer",
                             "cache_dir": str(home / "http_cache")},
                    "store_dir": str(safe_join(home, "cutout_store")), "index_paths": {k: pf("cutouts", k)}},
        "shortcut_features": {"index_paths": {k: pf("cutouts", k)}, "store_dir": str(safe_join(home, "cutout_store")),
                              "out": pf("shortcut_features")},
    }
    spark = _spark()
    for job, args in jobs.items():
        mapped, pairs = spark.emr_map_args(args, home)
        step = spark.emr_step(job, mapped)
        flat = json.dumps(step)
        assert str(home) not in flat, job
        assert all(uri.startswith(f"s3://{BUCKET}/store/") for _, uri in pairs), job
    assert mapped["store_dir"] == f"s3://{BUCKET}/store/cutout_store"
    assert jobs["cutouts"]["spec"]["location"] == "https://www.legacysurvey.org/viewer"
    with pytest.raises(EmrPathError, match="local paths"):
        spark.emr_step("cutouts", jobs["cutouts"])  # unmapped: refused
    unset = SparkResource(mode="emr", emr=_spark().emr.model_copy(update={"store_uri": ""}))
    with pytest.raises(EmrPathError, match="store_uri"):
        unset.emr_map_args(jobs["positives"], home)


def test_example_settings_start_a_cluster_on_the_server(aws):
    """deploy/emr.example.yaml's cluster parameters are accepted by run_job_flow (botocore
    validates the request shape, the server records it)."""
    import yaml

    with open(REPO / "deploy" / "emr.example.yaml") as f:
        spark = SparkResource(mode="emr", emr=EmrSettings(**{**yaml.safe_load(f), "region": REGION,
                                                             "pipes_bucket": BUCKET}))
    cid = spark.emr_cluster_for_run("example-run")
    cluster = aws["emr"].describe_cluster(ClusterId=cid)["Cluster"]
    assert cluster["ReleaseLabel"] == "emr-7.5.0" and cluster["Status"]["State"] == "WAITING"
    assert cluster["StepConcurrencyLevel"] == 1
    assert spark.emr_terminate_run_cluster("example-run") == cid


def test_concurrent_assets_of_one_run_share_one_cluster(aws):
    """Four step processes of one run asking at once: the conditional put lets one start the
    cluster, the others wait for its record (moto honours If-None-Match: *)."""
    from concurrent.futures import ThreadPoolExecutor

    spark = _spark()
    aws["s3"].put_object(Bucket=BUCKET, Key="x", Body=b"1", IfNoneMatch="*")
    with pytest.raises(Exception, match="PreconditionFailed"):
        aws["s3"].put_object(Bucket=BUCKET, Key="x", Body=b"2", IfNoneMatch="*")
    with ThreadPoolExecutor(4) as pool:
        ids = list(pool.map(lambda _: spark.emr_cluster_for_run("run-c"), range(4)))
    assert len(set(ids)) == 1
    assert len(aws["emr"].list_clusters()["Clusters"]) == 1


def test_store_sync_skips_unchanged_inputs_and_downloads_only_what_the_step_changed(aws, tmp_path):
    from resources.spark import _S3Sync

    home = _home(tmp_path)
    mapped, pairs = _spark().emr_map_args({"lens": str(home / "assets" / "lens_catalog" / "data.parquet"),
                                           "dir": str(home / "assets" / "negative_pool"),
                                           "out": str(home / "assets" / "positives" / "data.parquet")}, home)
    sync = _S3Sync(aws["s3"])
    assert sync.upload(pairs) == 2  # the file and the folder's one file; the output does not exist yet
    assert sync.upload(pairs) == 0  # unchanged: not sent again
    before = sync.snapshot(pairs)
    _put(aws["s3"], mapped["out"], b"written by the step")
    _put(aws["s3"], mapped["dir"] + "/extra.parquet", b"also written")
    assert sync.download_changed(pairs, before) == 2
    assert (home / "assets" / "positives" / "data.parquet").read_bytes() == b"written by the step"
    assert (home / "assets" / "negative_pool" / "extra.parquet").read_bytes() == b"also written"
    assert not list(home.rglob(".*.part"))
