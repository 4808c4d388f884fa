"""The Spark engine: PySpark ``local[*]`` by default, Amazon EMR through Dagster Pipes.

Assets call a job as a typed function, ``spark.run(context, <job function>, **arguments)``
(``lensaudit.spark_jobs.entrypoint``: the job is the same in both modes); ``run`` checks the
arguments against the job's signature and sends the job's wire name with them to
``run_job(context, name, args)``, the one dispatcher of both engines.  Locally it runs
in-process on a shared SparkSession.  On EMR (``mode="emr"``), every Spark job of one
Dagster run is a step of one cluster (started by the run's first Spark asset, found
again through a record on S3, ended by ``emr_terminate_run_cluster`` or its idle timeout).
A step runs ``lensaudit/spark_jobs/entrypoint.py`` with the job name and its JSON
arguments, in which store paths are S3 URIs under ``emr.store_uri`` (the local store files
are uploaded before the step and what it wrote is downloaded after); the job reports its
summary through Dagster Pipes (``PipesS3ContextInjector`` and ``PipesS3MessageReader`` of
dagster-aws; the step gets the Pipes variables through ``spark.yarn.appMasterEnv``).
EMR needs the sweeps on S3 and the lensaudit wheel installed by ``emr.bootstrap_uri``;
deploy/README.md gives the settings.
"""

import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Concatenate, ParamSpec

import dagster as dg
from pydantic import ConfigDict, Field

_P = ParamSpec("_P")  # the arguments of a Spark job after its session


class EmrSettings(dg.Config):
    """Settings of the run's EMR cluster (boto3 ``run_job_flow``) and of its S3 layout.

    One cluster serves every Spark step of one Dagster run (``KeepJobFlowAliveWhenNoSteps``,
    ended by ``SparkResource.emr_terminate_run_cluster`` or by ``idle_timeout_s`` of idleness).
    ``store_uri`` is the store root on S3: local store paths in a job's arguments are
    addressed under it (inputs uploaded before the step, what the step wrote downloaded after).
    Times in seconds, memory as Spark sizes ("4g").  See deploy/README.md.  Unknown keys
    (e.g. a misspelt setting in the yaml) are refused.
    """

    model_config = ConfigDict(extra="forbid")

    region: str = "us-east-2"
    release_label: str = "emr-7.5.0"
    log_uri: str = ""
    pipes_bucket: str = ""
    pipes_prefix: str = "lensaudit/pipes/"  # run-cluster records and Pipes contexts under s3://pipes_bucket/pipes_prefix
    store_uri: str = ""  # s3://bucket/prefix: the store root ($LENSAUDIT_HOME) on S3
    code_uri: str = ""  # s3://.../entrypoint.py
    bootstrap_uri: str = ""  # s3://.../bootstrap.sh installing the lensaudit wheel (deploy/emr_bootstrap.sh)
    wheel_uri: str = ""  # s3://.../lensaudit-*.whl: the bootstrap action's argument
    python: str = "/opt/lensaudit-venv/bin/python"  # the interpreter the bootstrap installs (PYSPARK_PYTHON)
    subnet_id: str = ""
    instance_type: str = "m5.xlarge"
    core_instance_count: int = 2
    executor_memory: str = "4g"  # (instance memory - OS) / executors, reference/002 s2.3
    service_role: str = "EMR_DefaultRole"
    job_flow_role: str = "EMR_EC2_DefaultRole"
    idle_timeout_s: int = 3600  # AutoTerminationPolicy: the run's cluster ends after this long without steps
    step_concurrency: int = 1  # StepConcurrencyLevel: steps of one run that may run at once
    step_poll_s: float = 30.0  # seconds between step-state polls (and Pipes message reads)
    step_timeout_s: int = 6 * 3600  # a step still not finished after this long fails the asset
    cluster_wait_s: int = 300  # how long a second step of a run waits for the run's cluster record


#: glibc malloc tunables for the local Python workers (mallopt(3): M_MMAP_THRESHOLD 32 MiB, its maximum
#: on 64-bit; M_TRIM_THRESHOLD 16 GiB, i.e. never trim; M_TOP_PAD 256 MiB): a worker renders and checks
#: stamps in batches of ~30 MB arrays, which glibc would otherwise mmap and munmap batch after batch;
#: and numpy without its per-array huge-page advice (lensaudit/numpy_pages.py)
LOCAL_PYTHON_WORKER_ENV = {"MALLOC_MMAP_THRESHOLD_": str(32 * 2**20), "MALLOC_TRIM_THRESHOLD_": str(16 * 2**30),
                           "MALLOC_TOP_PAD_": str(256 * 2**20), "NUMPY_MADVISE_HUGEPAGE": "0"}


class SparkResource(dg.ConfigurableResource):
    mode: str = Field(default="local", description="local or emr")
    master: str = "local[*]"
    driver_memory: str = "4g"
    shuffle_partitions: int = 8
    driver_java_options: str = Field(
        default="-XX:TieredStopAtLevel=1",
        description="JVM options of the local driver, which also runs the tasks (empty: the JVM's defaults). "
                    "Default: the C1 compiler only; demo-sized local jobs are seconds of Spark SQL in a cold JVM, "
                    "where C2's compilation costs more CPU than it saves; a long local run over many real sweeps may "
                    "prefer '' (bench/bench_spark_jvm.py; bench/RESULTS.md, 'Data half, session 10').")
    python_worker_env: dict[str, str] = Field(
        default=LOCAL_PYTHON_WORKER_ENV,
        description="environment of the local session's Python workers (``spark.executorEnv.*``; empty: none). "
                    "Default: glibc's malloc keeps freed memory in the worker (no ``munmap`` of blocks below 32 MiB, "
                    "no trimming of the heap) instead of handing it back to the kernel and faulting fresh pages in for "
                    "the next batch of stamps, and numpy does not advise huge pages for new arrays; on a VM where the "
                    "kernel's huge-page attempts fail each such page costs ~50 us (bench/RESULTS.md, sessions 18 and 22). "
                    "The numbers computed do not depend on it.")
    log_level: str = "ERROR"
    emr: EmrSettings = EmrSettings()

    def local_spark_config(self) -> dict[str, str]:
        """The Spark configuration of the local session (master, memory, Arrow, UTC, no UI)."""
        return {"spark.master": self.master, "spark.app.name": "lensaudit",
                "spark.driver.memory": self.driver_memory,
                "spark.sql.shuffle.partitions": str(self.shuffle_partitions),
                "spark.sql.execution.arrow.pyspark.enabled": "true",
                "spark.ui.enabled": "false",
                "spark.sql.session.timeZone": "UTC",
                "spark.ui.showConsoleProgress": "false",
                "spark.sql.debug.maxToStringFields": "200",
                **({"spark.driver.extraJavaOptions": self.driver_java_options} if self.driver_java_options else {}),
                **{f"spark.executorEnv.{k}": str(v) for k, v in self.python_worker_env.items()}}

    def node_count(self) -> int | None:
        """Machines that run Spark tasks when this resource knows them: the EMR cluster's core
        instances (each runs executors; the cutout service's rate is split over them); None
        locally (the session's conf tells: ``lensaudit.cutouts.ratelimit.spark_node_count``)."""
        return int(self.emr.core_instance_count) if self.mode == "emr" else None

    def session(self):
        """The process-wide local SparkSession (created once, reused), built by dagster-pyspark's
        ``LazyPySparkResource`` (``SparkSession.builder`` with ``local_spark_config``, created on
        first use: EMR runs and assets without Spark never start a JVM)."""
        if self.mode != "local":
            raise RuntimeError("a local SparkSession is only available in mode='local'")
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        from dagster_pyspark import LazyPySparkResource

        spark = LazyPySparkResource(spark_config=self.local_spark_config()).spark_session
        spark.sparkContext.setLogLevel(self.log_level)
        return spark

    # --- EMR -----------------------------------------------------------------
    def _emr_check(self) -> None:
        e = self.emr
        missing = [k for k in ("log_uri", "pipes_bucket", "code_uri", "bootstrap_uri") if not getattr(e, k)]
        if missing:
            raise ValueError(f"EMR mode needs emr.{', emr.'.join(missing)}")
        for uri in (e.log_uri, e.code_uri, e.bootstrap_uri) + tuple(u for u in (e.store_uri, e.wheel_uri) if u):
            if not uri.startswith(("s3://", "s3a://")):
                raise ValueError(f"EMR URIs must be s3:// (got {uri!r})")
        if e.pipes_bucket.startswith(("s3://", "/")) or "/" in e.pipes_bucket:
            raise ValueError(f"emr.pipes_bucket is a bucket name, not a URI or path (got {e.pipes_bucket!r})")

    def emr_cluster_params(self, run_id: str) -> dict[str, Any]:
        """boto3 ``run_job_flow`` parameters of the one cluster of Dagster run ``run_id`` (no steps:
        each Spark job is added to it by ``emr_step``)."""
        self._emr_check()
        e = self.emr
        instances: dict[str, Any] = {
            "InstanceGroups": [
                {"Name": "primary", "InstanceRole": "MASTER", "InstanceType": e.instance_type, "InstanceCount": 1},
                {"Name": "core", "InstanceRole": "CORE", "InstanceType": e.instance_type,
                 "InstanceCount": e.core_instance_count},
            ],
            "KeepJobFlowAliveWhenNoSteps": True,  # steps of later assets of the run reuse it
        }
        if e.subnet_id:
            instances["Ec2SubnetId"] = e.subnet_id
        return {
            "Name": f"lensaudit-run-{run_id}",
            "ReleaseLabel": e.release_label,
            "LogUri": e.log_uri,
            "Applications": [{"Name": "Spark"}],
            "Instances": instances,
            "BootstrapActions": [{"Name": "install-lensaudit", "ScriptBootstrapAction": {
                "Path": e.bootstrap_uri, **({"Args": [e.wheel_uri]} if e.wheel_uri else {})}}],
            "Configurations": [
                {"Classification": "spark-defaults",
                 "Properties": {"spark.executor.memory": e.executor_memory, "spark.pyspark.python": e.python}},
                {"Classification": "spark-env",
                 "Configurations": [{"Classification": "export", "Properties": {"PYSPARK_PYTHON": e.python}}]},
            ],
            "StepConcurrencyLevel": e.step_concurrency,
            "AutoTerminationPolicy": {"IdleTimeout": e.idle_timeout_s},
            "ServiceRole": e.service_role,
            "JobFlowRole": e.job_flow_role,
            "VisibleToAllUsers": True,
            "Tags": [{"Key": "dagster/run-id", "Value": run_id}, {"Key": "app", "Value": "lensaudit"}],
        }

    def emr_step(self, job: str, args: dict[str, Any], pipes_env: dict[str, str] | None = None) -> dict[str, Any]:
        """One lensaudit Spark step (``add_job_flow_steps``).  ``args`` must hold only S3 URIs
        (see ``emr_map_args``); ``pipes_env`` (the Pipes bootstrap variables) reaches the driver
        through ``spark.yarn.appMasterEnv`` of this step alone, so steps of one cluster do not share it."""
        self._emr_check()
        local = [f"{where}={v!r}" for where, v in _walk_strings(args) if _looks_local(v)]
        if local:
            raise EmrPathError(f"EMR step {job!r} arguments hold local paths: {', '.join(local)}")
        conf = [f"spark.yarn.appMasterEnv.AWS_DEFAULT_REGION={self.emr.region}"]
        conf += [f"spark.yarn.appMasterEnv.{k}={v}" for k, v in sorted((pipes_env or {}).items())]
        step_args = ["spark-submit", "--deploy-mode", "cluster", *[a for c in conf for a in ("--conf", c)],
                     self.emr.code_uri, "--job", job, "--args-json", json.dumps(args, sort_keys=True)]
        size = len("command-runner.jar") + sum(len(a) for a in step_args)
        if size > EMR_STEP_MAX_CHARS:
            raise EmrStepTooLarge(
                f"EMR step {job!r}: its HadoopJarStep strings total {size} characters, over EMR's limit of "
                f"{EMR_STEP_MAX_CHARS} (AddJobFlowSteps); the job's arguments ({len(step_args[-1])} characters of "
                "JSON) must go to S3 and the entrypoint read them from there")
        return {
            "Name": f"lensaudit {job}",
            # the cluster serves the other assets of the run: a failed step fails its asset only
            "ActionOnFailure": "CONTINUE",
            # a Spark step through command-runner: spark-submit is named once (reference/002 s3.2)
            "HadoopJarStep": {"Jar": "command-runner.jar", "Args": step_args},
        }

    def emr_run_job_flow_params(self, job: str, args: dict[str, Any], run_id: str = "adhoc") -> dict[str, Any]:
        """The run's cluster parameters with ``job`` as its first step (for inspection and docs)."""
        params = self.emr_cluster_params(run_id)
        params["Steps"] = [self.emr_step(job, args)]
        return params

    def emr_map_args(self, args: dict[str, Any], home: Path) -> tuple[dict[str, Any], list[tuple[Path, str]]]:
        """Address every local path of ``args`` under ``emr.store_uri``.

        Returns the arguments with S3 URIs in place of store paths, and the (local path, S3 URI)
        pairs to sync.  S3 URIs pass unchanged; a local path outside the store root ``home``
        (or any local path while ``emr.store_uri`` is unset) raises ``EmrPathError``.
        """
        home = Path(home).resolve()
        root = self.emr.store_uri.rstrip("/")
        pairs: list[tuple[Path, str]] = []
        bad: list[str] = []

        def conv(v: Any, where: str) -> Any:
            if isinstance(v, dict):
                return {k: conv(x, f"{where}.{k}") for k, x in v.items()}
            if isinstance(v, (list, tuple)):
                return [conv(x, f"{where}[{i}]") for i, x in enumerate(v)]
            if not isinstance(v, str) or not _looks_local(v):
                return v
            p = Path(v.removeprefix("file://")).expanduser().resolve()
            if not root or (p != home and home not in p.parents):
                bad.append(f"{where.lstrip('.')}={v!r}")
                return v
            uri = root + "/" + p.relative_to(home).as_posix() if p != home else root
            pairs.append((p, uri))
            return uri

        out = conv(args, "")
        if bad:
            why = (f"outside the store root {home} (only store paths are mapped to emr.store_uri)" if root
                   else "and emr.store_uri (the store root on S3) is not set")
            raise EmrPathError(f"EMR mode: step arguments {', '.join(bad)} are local paths {why}; "
                               "put inputs such as sweeps on S3 (s3://...)")
        return out, pairs

    def _boto(self, service: str):
        import boto3

        return boto3.client(service, region_name=self.emr.region)

    def _record_key(self, run_id: str) -> str:
        return f"{self.emr.pipes_prefix}clusters/{run_id}.json"

    def emr_cluster_for_run(self, run_id: str, log=None) -> str:
        """The job flow id of run ``run_id``'s cluster, started on first use.

        The first caller claims ``s3://pipes_bucket/pipes_prefix/clusters/<run_id>.json`` with a
        conditional put (``If-None-Match: *``) and starts the cluster; concurrent callers of the
        same run wait for the record and reuse the cluster.  A recorded cluster that has ended
        (e.g. idle timeout) is replaced.
        """
        from botocore.exceptions import ClientError

        emr, s3 = self._boto("emr"), self._boto("s3")
        bucket, key = self.emr.pipes_bucket, self._record_key(run_id)
        try:
            s3.put_object(Bucket=bucket, Key=key, Body=b"{}", IfNoneMatch="*")
            owner = True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                raise
            owner = False
        if not owner:
            deadline = time.monotonic() + self.emr.cluster_wait_s
            while True:
                rec = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read() or b"{}")
                if rec.get("cluster_id"):
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"run {run_id}: no EMR cluster recorded at s3://{bucket}/{key} "
                                       f"after {self.emr.cluster_wait_s} s")
                time.sleep(min(2.0, self.emr.step_poll_s))
            cid = rec["cluster_id"]
            state = emr.describe_cluster(ClusterId=cid)["Cluster"]["Status"]["State"]
            if state not in ("TERMINATING", "TERMINATED", "TERMINATED_WITH_ERRORS"):
                return cid
            if log:
                log.warning(f"[emr] cluster {cid} of run {run_id} is {state}; starting a new one")
        try:
            cid = emr.run_job_flow(**self.emr_cluster_params(run_id))["JobFlowId"]
        except Exception:
            if owner:
                s3.delete_object(Bucket=bucket, Key=key)
            raise
        s3.put_object(Bucket=bucket, Key=key, Body=json.dumps({"cluster_id": cid, "run_id": run_id}).encode())
        if log:
            log.info(f"[emr] started cluster {cid} for run {run_id}")
        return cid

    def emr_terminate_run_cluster(self, run_id: str) -> str | None:
        """End run ``run_id``'s cluster (call when the run ends); returns its id, None if it had none."""
        from botocore.exceptions import ClientError

        s3 = self._boto("s3")
        try:
            rec = json.loads(s3.get_object(Bucket=self.emr.pipes_bucket, Key=self._record_key(run_id))["Body"].read())
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise
        cid = rec.get("cluster_id")
        if cid:
            self._boto("emr").terminate_job_flows(JobFlowIds=[cid])
        s3.delete_object(Bucket=self.emr.pipes_bucket, Key=self._record_key(run_id))
        return cid

    def _emr_wait_step(self, emr, cid: str, step_id: str) -> dict:
        deadline = time.monotonic() + self.emr.step_timeout_s
        while True:
            step = emr.describe_step(ClusterId=cid, StepId=step_id)["Step"]
            state = step["Status"]["State"]
            if state == "COMPLETED":
                return step
            if state in ("CANCELLED", "FAILED", "INTERRUPTED"):
                detail = step["Status"].get("FailureDetails") or step["Status"].get("StateChangeReason") or {}
                raise dg.Failure(f"EMR step {step_id} ({step['Name']}) on cluster {cid} ended {state}: {detail}",
                                 metadata={"emr_cluster_id": cid, "emr_step_id": step_id})
            if time.monotonic() > deadline:
                raise dg.Failure(f"EMR step {step_id} on cluster {cid} still {state} after {self.emr.step_timeout_s} s")
            time.sleep(self.emr.step_poll_s)

    def _run_emr(self, context, job: str, args: dict[str, Any]) -> dict[str, Any]:
        """``_run_emr_step`` with anticipated errors (settings, local paths, AWS refusals) as a
        ``dg.Failure`` that names the job and the cause."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return self._run_emr_step(context, job, args)
        except (ValueError, BotoCoreError, ClientError, TimeoutError) as exc:
            raise dg.Failure(description=f"{job} on EMR: {type(exc).__name__}: {exc}") from exc

    def _run_emr_step(self, context, job: str, args: dict[str, Any]) -> dict[str, Any]:
        from dagster._core.errors import DagsterExecutionInterruptedError
        from dagster._core.pipes.client import PipesClientCompletedInvocation
        from dagster._core.pipes.utils import open_pipes_session
        from dagster_aws.pipes import PipesS3ContextInjector, PipesS3MessageReader

        self._emr_check()
        mapped, pairs = self.emr_map_args(args, _context_home(context))  # before any AWS call
        self.emr_step(job, mapped, _PIPES_ENV_RESERVE)  # the step will fit (checked before any AWS call)
        s3, emr = self._boto("s3"), self._boto("emr")
        store = _S3Sync(s3)
        store.upload(pairs)
        before = store.snapshot(pairs)
        cid = self.emr_cluster_for_run(context.run_id, context.log)
        with open_pipes_session(
            context=context,
            message_reader=PipesS3MessageReader(bucket=self.emr.pipes_bucket, client=s3,
                                                interval=self.emr.step_poll_s),
            context_injector=PipesS3ContextInjector(bucket=self.emr.pipes_bucket, client=s3,
                                                    key_prefix=f"{self.emr.pipes_prefix}context/"),
        ) as session:
            step = self.emr_step(job, mapped, session.get_bootstrap_env_vars())
            step_id = emr.add_job_flow_steps(JobFlowId=cid, Steps=[step])["StepIds"][0]
            session.report_launched({"extras": {"cluster_id": cid, "step_id": step_id}})
            context.log.info(f"[emr] {job}: step {step_id} on cluster {cid}")
            try:
                self._emr_wait_step(emr, cid, step_id)
            except DagsterExecutionInterruptedError:
                context.log.warning(f"[emr] interrupted: cancelling step {step_id}")
                emr.cancel_steps(ClusterId=cid, StepIds=[step_id])
                raise
        invocation = PipesClientCompletedInvocation(session, metadata={"emr_cluster_id": cid, "emr_step_id": step_id})
        try:
            result = invocation.get_materialize_result()
            raw = result.metadata["summary"]
        except Exception as exc:
            raise dg.Failure(f"EMR step {step_id} of {job} completed without a Pipes summary: {exc}") from exc
        n = store.download_changed(pairs, before)
        context.log.info(f"[emr] {job}: {n} file(s) written by the step downloaded from {self.emr.store_uri}")
        return json.loads(raw.value if hasattr(raw, "value") else raw)

    def emr_pipes_client(self):
        """dagster-aws ``PipesEMRClient`` on the same S3 Pipes locations, for a one-off job on a
        cluster of its own (``run`` starts one cluster per call); ``run_job`` uses the run's cluster."""
        from dagster_aws.pipes import PipesEMRClient, PipesS3ContextInjector, PipesS3MessageReader

        s3 = self._boto("s3")
        return PipesEMRClient(
            client=self._boto("emr"),
            message_reader=PipesS3MessageReader(bucket=self.emr.pipes_bucket, client=s3, interval=self.emr.step_poll_s),
            context_injector=PipesS3ContextInjector(bucket=self.emr.pipes_bucket, client=s3,
                                                    key_prefix=f"{self.emr.pipes_prefix}context/"),
        )

    def run(self, context, job: Callable[Concatenate[Any, _P], dict], *args: _P.args, **kwargs: _P.kwargs
            ) -> dict[str, Any]:
        """Run the Spark job function ``job`` (one of ``lensaudit.spark_jobs.entrypoint.JOBS``)
        with its typed arguments (all but the session) and return its JSON summary.  The
        arguments are bound to the job's signature before any engine starts
        (``entrypoint.wire_call``); the job then goes through ``run_job`` by its wire name."""
        from lensaudit.spark_jobs.entrypoint import wire_call

        name, wire_args = wire_call(job, *args, **kwargs)
        return self.run_job(context, name, wire_args)

    def run_job(self, context, job: str, args: dict[str, Any]) -> dict[str, Any]:
        """Run a lensaudit Spark job by its wire name (``JOBS``) with keyword arguments that are
        plain JSON values, and return its JSON summary: in-process on the local session, or as
        a step of the run's EMR cluster.  Assets call ``run`` (typed) instead."""
        if self.mode == "local":
            from lensaudit.spark_jobs.entrypoint import run_job

            return run_job(self.session(), job, args)
        if self.mode == "emr":
            return self._run_emr(context, job, args)
        raise ValueError(f"unknown Spark mode {self.mode!r} (local or emr)")


class EmrPathError(ValueError):
    """A Spark job argument that an EMR step could not read: a local path outside the store."""


class EmrStepTooLarge(ValueError):
    """A step whose HadoopJarStep strings exceed EMR's limit."""


# AddJobFlowSteps: "The string values passed into HadoopJarStep object cannot exceed a total of 10240 characters."
EMR_STEP_MAX_CHARS = 10240
# room kept for the two Pipes bootstrap variables (about 150 characters each in practice)
_PIPES_ENV_RESERVE = {"DAGSTER_PIPES_CONTEXT": "x" * 512, "DAGSTER_PIPES_MESSAGES": "x" * 512}


def _walk_strings(v: Any, where: str = ""):
    if isinstance(v, dict):
        for k, x in v.items():
            yield from _walk_strings(x, f"{where}.{k}")
    elif isinstance(v, (list, tuple)):
        for i, x in enumerate(v):
            yield from _walk_strings(x, f"{where}[{i}]")
    elif isinstance(v, str):
        yield where.lstrip("."), v


def _looks_local(v: str) -> bool:
    """A string naming a local file system path (absolute, ~, ./, file://, or an existing relative one)."""
    if "://" in v:
        return v.startswith("file://")
    return v.startswith(("/", "~", "./", "../")) or (os.sep in v and os.path.exists(v))


def _context_home(context) -> Path:
    """The store root of the run: the run's ``settings`` resource, else ``$LENSAUDIT_HOME``."""
    from lensaudit.store import lensaudit_home

    try:
        settings = context.resources.settings
    except Exception:  # the asset has no settings resource
        settings = None
    return settings.home_path() if settings is not None else lensaudit_home(None)


class _S3Sync:
    """Copies store files between the local store root and ``emr.store_uri`` (boto3 S3 client)."""

    def __init__(self, s3):
        self.s3 = s3

    @staticmethod
    def _split(uri: str) -> tuple[str, str]:
        bucket, _, key = uri.split("://", 1)[1].partition("/")
        return bucket, key

    def _objects(self, uri: str) -> dict[str, dict]:
        bucket, key = self._split(uri)
        out = {}
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key):
            for o in page.get("Contents", []):
                if o["Key"] == key or o["Key"].startswith(key.rstrip("/") + "/"):
                    out[o["Key"]] = o
        return out

    def upload(self, pairs: list[tuple[Path, str]]) -> int:
        """Upload the local files and folders that exist, skipping those whose S3 copy has the same
        size and is not older (``aws s3 sync``'s rule, to the second)."""
        n = 0
        for local, uri in pairs:
            if not local.exists():
                continue
            bucket, key = self._split(uri)
            have = self._objects(uri)
            files = [local] if local.is_file() else sorted(p for p in local.rglob("*") if p.is_file())
            for f in files:
                k = key if f == local else f"{key.rstrip('/')}/{f.relative_to(local).as_posix()}"
                o = have.get(k)
                # S3 keeps whole seconds: a copy made in the second the file was written counts as current
                if o and o["Size"] == f.stat().st_size and o["LastModified"].timestamp() >= int(f.stat().st_mtime):
                    continue
                self.s3.upload_file(str(f), bucket, k)
                n += 1
        return n

    def snapshot(self, pairs: list[tuple[Path, str]]) -> dict[str, str]:
        return {k: o["ETag"] for _, uri in pairs for k, o in self._objects(uri).items()}

    def download_changed(self, pairs: list[tuple[Path, str]], before: dict[str, str]) -> int:
        """Download what appeared or changed under the pairs' URIs since ``before`` (atomic per file)."""
        n = 0
        for local, uri in pairs:
            bucket, key = self._split(uri)
            for k, o in self._objects(uri).items():
                if before.get(k) == o["ETag"]:
                    continue
                target = local if k == key else local / k[len(key.rstrip("/")) + 1:]
                target.parent.mkdir(parents=True, exist_ok=True)
                tmp = target.with_name(f".{target.name}.part")
                self.s3.download_file(bucket, k, str(tmp))
                os.replace(tmp, target)
                n += 1
        return n
