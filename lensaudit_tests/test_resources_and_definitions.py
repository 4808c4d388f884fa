import json
import subprocess
import sys
from pathlib import Path

import pytest

from resources.spark import EmrSettings, SparkResource
from resources.sweeps import SweepLocationError, discover_sweep_partitions

REPO = Path(__file__).resolve().parents[1]


def _emr():
    return SparkResource(mode="emr", emr=EmrSettings(
        region="us-east-2", log_uri="s3://bucket/logs/", pipes_bucket="bucket", code_uri="s3://bucket/code/entrypoint.py",
        bootstrap_uri="s3://bucket/code/bootstrap.sh", subnet_id="subnet-123", core_instance_count=3))


def test_emr_job_flow_is_built_from_config():
    params = _emr().emr_run_job_flow_params("negative_pool", {"jobs": {"a": ["s3://x", "s3://y", "s3://z"]}})
    assert params["ReleaseLabel"].startswith("emr-7") and params["Instances"]["Ec2SubnetId"] == "subnet-123"
    groups = {g["InstanceRole"]: g for g in params["Instances"]["InstanceGroups"]}
    assert groups["CORE"]["InstanceCount"] == 3
    args = params["Steps"][0]["HadoopJarStep"]["Args"]
    assert args[0] == "spark-submit" and args.count("spark-submit") == 1
    assert args[args.index("--job") + 1] == "negative_pool"
    assert json.loads(args[args.index("--args-json") + 1])["jobs"]["a"][0] == "s3://x"
    assert params["BootstrapActions"][0]["ScriptBootstrapAction"]["Path"] == "s3://bucket/code/bootstrap.sh"


def test_emr_pipes_client_builds_offline():
    from dagster_aws.pipes import PipesEMRClient, PipesS3MessageReader

    client = _emr().emr_pipes_client()
    assert isinstance(client, PipesEMRClient) and isinstance(client.message_reader, PipesS3MessageReader)


def test_emr_config_errors_are_clear():
    with pytest.raises(ValueError, match="log_uri"):
        SparkResource(mode="emr").emr_run_job_flow_params("x", {})
    bad = SparkResource(mode="emr", emr=EmrSettings(log_uri="/local", pipes_bucket="b", code_uri="s3://c", bootstrap_uri="s3://d"))
    with pytest.raises(ValueError, match="s3://"):
        bad.emr_run_job_flow_params("x", {})
    with pytest.raises(RuntimeError):
        SparkResource(mode="emr").session()


def test_entrypoint_cli_rejects_unknown_job():
    from lensaudit.spark_jobs.entrypoint import run_job

    with pytest.raises(KeyError, match="unknown Spark job"):
        run_job(None, "nope", {})


def test_jobs_are_called_as_typed_functions_through_one_dispatcher():
    """``SparkResource.run`` takes the job function and its keyword arguments, binds them to the
    job's signature before any engine starts, and hands the job's wire name and the same
    arguments to ``run_job`` (the dispatcher of both engines, whose name and JSON an EMR step
    carries)."""
    from lensaudit.spark_jobs.entrypoint import JOBS, negative_pool_job, wire_call, wire_name

    assert {wire_name(fn) for fn in JOBS.values()} == set(JOBS)  # one mapping, both ways
    assert wire_call(negative_pool_job, jobs={"a": ["x", "y", "z"]}, cuts={"max_mag_z": 20.0}) == (
        "negative_pool", {"jobs": {"a": ["x", "y", "z"]}, "cuts": {"max_mag_z": 20.0}})
    with pytest.raises(TypeError):  # a misspelt argument fails at the call, not inside the job
        wire_call(negative_pool_job, jobs={}, cut={})
    with pytest.raises(TypeError):  # a missing one as well
        wire_call(negative_pool_job, jobs={})
    with pytest.raises(KeyError, match="not a Spark job"):
        wire_call(len, [])

    class Recorder(SparkResource):
        def run_job(self, context, job, args):
            return {"job": job, "args": args}

    assert Recorder().run(None, negative_pool_job, jobs={}, cuts={}) == {"job": "negative_pool",
                                                                       "args": {"jobs": {}, "cuts": {}}}
    # the EMR step built from the typed call is the one the wire-name call builds
    name, args = wire_call(negative_pool_job, jobs={"a": ["s3://x", "s3://y", "s3://z"]}, cuts={})
    assert _emr().emr_step(name, args) == _emr().emr_step("negative_pool",
                                                          {"jobs": {"a": ["s3://x", "s3://y", "s3://z"]}, "cuts": {}})


def test_sweep_partition_discovery(tmp_path):
    assert len(discover_sweep_partitions("mock")) == 10
    (tmp_path / "sweep-310m005-320p000.fits").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("x")
    assert discover_sweep_partitions(str(tmp_path)) == ["sweep-310m005-320p000.fits"]
    with pytest.raises(SweepLocationError, match="missing"):
        discover_sweep_partitions(str(tmp_path / "missing"))


def test_definitions_validate():
    r = subprocess.run([sys.executable, "-m", "dagster", "definitions", "validate", "-w", "workspace.yaml"],
                       cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr


def test_import_contracts_hold():
    """The import-linter contracts of pyproject.toml: science never imports Dagster, and no two
    sub-packages of lensaudit import each other."""
    import subprocess
    import sys
    from pathlib import Path

    lint = Path(sys.executable).with_name("lint-imports")
    r = subprocess.run([str(lint)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "0 broken" in r.stdout, r.stdout[-3000:] + r.stderr[-2000:]


def test_emr_settings_load_from_the_example_yaml(monkeypatch):
    monkeypatch.setenv("LENSAUDIT_SPARK_MODE", "emr")
    monkeypatch.setenv("LENSAUDIT_EMR_CONFIG", str(REPO / "deploy" / "emr.example.yaml"))
    import importlib

    import definitions

    importlib.reload(definitions)
    spark = definitions._spark_resource()
    assert spark.mode == "emr" and spark.emr.core_instance_count == 4
    params = spark.emr_run_job_flow_params("sweep_catalog", {"jobs": {}})
    assert params["LogUri"] == "s3://my-bucket/lensaudit/emr-logs/"
    monkeypatch.delenv("LENSAUDIT_SPARK_MODE")
    monkeypatch.delenv("LENSAUDIT_EMR_CONFIG")
    importlib.reload(definitions)


def test_materialize_plans_one_run_per_partitions_definition():
    """The CLI splits the main selection: data half (sweep range), the detector per
    architecture of the profile, then the selection function downstream of it."""
    import dagster as dg

    from definitions import defs
    from lensaudit_cli.main import plan_runs

    keys = set(defs.resolve_asset_graph().get_all_asset_keys())
    sweeps = ("sweep-040p010-050p015.fits", "sweep-190p035-200p040.fits")
    runs = plan_runs(defs, keys, "demo", sweeps)
    names = [{k.to_user_string() for k in ks} for ks, _ in runs]
    assert len(runs) == 3
    assert {"cutouts", "injection_hosts", "training_manifest"} <= names[0]
    assert (runs[0][1]["dagster/asset_partition_range_start"], runs[0][1]["dagster/asset_partition_range_end"]) == sweeps
    assert names[1] == {"detector", "detector_evaluation"} and runs[1][1] == {"dagster/partition": "resnet18"}
    assert names[2] == {"completeness_table", "failure_modes", "audit_report"} and runs[2][1] == {}
    only_data = plan_runs(defs, {dg.AssetKey("lens_catalog")}, "demo", None)
    assert len(only_data) == 1 and only_data[0][1] == {}


def test_gpu_steps_carry_the_placement_tags_and_only_they():
    """Every step that takes the device resource (assets and the external-audit op) carries
    GPU_OP_TAGS (a k8s step executor reads dagster-k8s/config to put it on a GPU node); the
    Spark and pandas steps do not."""
    import json

    from assets import ALL_ASSETS
    from assets._wiring import GPU_OP_TAGS
    from assets.external import audit_external_detector

    gpu = {a.key.to_user_string() for a in ALL_ASSETS if "device" in a.required_resource_keys}
    assert gpu == {"injection_realism", "detector", "detector_evaluation", "completeness_table"}
    for a in ALL_ASSETS:
        tags = a.op.tags
        if a.key.to_user_string() in gpu:
            assert tags["lensaudit/device"] == "gpu"
            k8s = tags["dagster-k8s/config"]
            k8s = json.loads(k8s) if isinstance(k8s, str) else k8s
            assert k8s == GPU_OP_TAGS["dagster-k8s/config"]
        else:
            assert "lensaudit/device" not in tags and "dagster-k8s/config" not in tags
    assert audit_external_detector.tags["lensaudit/device"] == "gpu"


def test_local_spark_driver_runs_with_the_configured_jvm_options(spark):
    """The local session's JVM was started with ``driver_java_options`` (C1 only by default);
    an empty setting leaves the JVM's defaults."""
    args = list(spark.sparkContext._jvm.java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments())
    assert "-XX:TieredStopAtLevel=1" in args
    assert SparkResource().local_spark_config()["spark.driver.extraJavaOptions"] == "-XX:TieredStopAtLevel=1"
    assert "spark.driver.extraJavaOptions" not in SparkResource(driver_java_options="").local_spark_config()


def test_local_spark_python_workers_get_the_malloc_environment(spark):
    """The local session's Python workers run with ``python_worker_env`` (glibc's malloc keeps freed
    memory: bench/RESULTS.md, session 18); an empty setting adds no ``spark.executorEnv``."""
    import os

    from resources.spark import LOCAL_PYTHON_WORKER_ENV

    seen = spark.sparkContext.parallelize([0, 1], 2).map(
        lambda _: {k: os.environ.get(k) for k in LOCAL_PYTHON_WORKER_ENV}).collect()
    assert seen == [LOCAL_PYTHON_WORKER_ENV] * 2
    assert int(LOCAL_PYTHON_WORKER_ENV["MALLOC_MMAP_THRESHOLD_"]) <= 32 * 2**20  # glibc's maximum on 64-bit
    conf = SparkResource().local_spark_config()
    assert {k: conf[f"spark.executorEnv.{k}"] for k in LOCAL_PYTHON_WORKER_ENV} == LOCAL_PYTHON_WORKER_ENV
    assert not any(k.startswith("spark.executorEnv.") for k in SparkResource(python_worker_env={}).local_spark_config())
