"""The Spark engine: PySpark ``local[*]`` by default, Amazon EMR through Dagster Pipes.

Assets call ``spark.run_job(context, name, args)``; the job
(``lensaudit.spark_jobs.entrypoint``) is the same in both modes.  Locally it runs
in-process on a shared SparkSession.  On EMR, ``PipesEMRClient`` starts a cluster whose
single Spark step runs ``lensaudit/spark_jobs/entrypoint.py`` with the job name and its
JSON arguments; the job reports its summary back through Pipes (S3 context injector and
message reader).  EMR needs the store and the sweeps on S3 and the lensaudit wheel at
``emr.code_uri`` (installed by ``emr.bootstrap_uri``).
"""


import json
import os
import sys
from typing import Any

import dagster as dg
from pydantic import Field


class EmrSettings(dg.Config):
    """Settings of an EMR cluster for one Spark step (boto3 ``run_job_flow``)."""

    region: str = "us-east-2"
    release_label: str = "emr-7.5.0"
    log_uri: str = ""
    pipes_bucket: str = ""
    code_uri: str = ""  # s3://.../entrypoint.py
    bootstrap_uri: str = ""  # s3://.../bootstrap.sh installing the lensaudit wheel
    subnet_id: str = ""
    instance_type: str = "m5.xlarge"
    core_instance_count: int = 2
    executor_memory: str = "4g"  # (instance memory - OS) / executors, reference/002 s2.3
    service_role: str = "EMR_DefaultRole"
    job_flow_role: str = "EMR_EC2_DefaultRole"


class SparkResource(dg.ConfigurableResource):
    mode: str = Field(default="local", description="local or emr")
    master: str = "local[*]"
    driver_memory: str = "4g"
    shuffle_partitions: int = 8
    log_level: str = "ERROR"
    emr: EmrSettings = EmrSettings()

    def session(self):
        """The process-wide local SparkSession (created once, reused)."""
        if self.mode != "local":
            raise RuntimeError("a local SparkSession is only available in mode='local'")
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        from pyspark.sql import SparkSession

        spark = (SparkSession.builder.master(self.master).appName("lensaudit")
                .config("spark.driver.memory", self.driver_memory)
                .config("spark.sql.shuffle.partitions", str(self.shuffle_partitions))
                .config("spark.sql.execution.arrow.pyspark.enabled", "true")
                .config("spark.ui.enabled", "false")
                .config("spark.sql.session.timeZone", "UTC")
                .config("spark.ui.showConsoleProgress", "false")
                .config("spark.sql.debug.maxToStringFields", "200")
                .getOrCreate())
        spark.sparkContext.setLogLevel(self.log_level)
        return spark

    # --- EMR -----------------------------------------------------------------
    def emr_run_job_flow_params(self, job: str, args: dict[str, Any]) -> dict[str, Any]:
        """boto3 ``run_job_flow`` parameters for one lensaudit Spark step."""
        e = self.emr
        missing = [k for k in ("log_uri", "pipes_bucket", "code_uri", "bootstrap_uri") if not getattr(e, k)]
        if missing:
            raise ValueError(f"EMR mode needs emr.{', emr.'.join(missing)}")
        for uri in (e.log_uri, e.code_uri, e.bootstrap_uri):
            if not uri.startswith(("s3://", "s3a://")):
                raise ValueError(f"EMR URIs must be s3:// (got {uri!r})")
        instances: dict[str, Any] = {
            "InstanceGroups": [
                {"Name": "primary", "InstanceRole": "MASTER", "InstanceType": e.instance_type, "InstanceCount": 1},
                {"Name": "core", "InstanceRole": "CORE", "InstanceType": e.instance_type,
                 "InstanceCount": e.core_instance_count},
            ],
            "KeepJobFlowAliveWhenNoSteps": False,
        }
        if e.subnet_id:
            instances["Ec2SubnetId"] = e.subnet_id
        return {
            "Name": f"lensaudit-{job}",
            "ReleaseLabel": e.release_label,
            "LogUri": e.log_uri,
            "Applications": [{"Name": "Spark"}],
            "Instances": instances,
            "BootstrapActions": [{"Name": "install-lensaudit", "ScriptBootstrapAction": {"Path": e.bootstrap_uri}}],
            "Configurations": [{"Classification": "spark-defaults",
                                "Properties": {"spark.executor.memory": e.executor_memory}}],
            "Steps": [{
                "Name": f"lensaudit {job}",
                "ActionOnFailure": "TERMINATE_CLUSTER",
                # a Spark step through command-runner: spark-submit is named once (reference/002 s3.2)
                "HadoopJarStep": {"Jar": "command-runner.jar",
                                  "Args": ["spark-submit", "--deploy-mode", "cluster", e.code_uri,
                                           "--job", job, "--args-json", json.dumps(args, sort_keys=True)]},
            }],
            "ServiceRole": e.service_role,
            "JobFlowRole": e.job_flow_role,
            "VisibleToAllUsers": True,
        }

    def emr_pipes_client(self):
        """A PipesEMRClient wired to S3 for context and messages."""
        import boto3
        from dagster_aws.pipes import PipesEMRClient, PipesS3ContextInjector, PipesS3MessageReader

        s3 = boto3.client("s3", region_name=self.emr.region)
        return PipesEMRClient(
            client=boto3.client("emr", region_name=self.emr.region),
            message_reader=PipesS3MessageReader(bucket=self.emr.pipes_bucket, client=s3),
            context_injector=PipesS3ContextInjector(bucket=self.emr.pipes_bucket, client=s3),
        )

    def run_job(self, context, job: str, args: dict[str, Any]) -> dict[str, Any]:
        """Run a lensaudit Spark job and return its JSON summary."""
        if self.mode == "local":
            from lensaudit.spark_jobs.entrypoint import run_job

            return run_job(self.session(), job, args)
        if self.mode == "emr":
            invocation = self.emr_pipes_client().run(context=context, run_job_flow_params=self.emr_run_job_flow_params(job, args))
            result = invocation.get_materialize_result()
            raw = result.metadata["summary"]
            return json.loads(raw.value if hasattr(raw, "value") else raw)
        raise ValueError(f"unknown Spark mode {self.mode!r} (local or emr)")
