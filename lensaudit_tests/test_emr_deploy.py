"""deploy/: the example EMR settings load into EmrSettings, every setting is documented, the
bootstrap script parses and refuses to run without its wheel argument."""

import subprocess
from pathlib import Path

import pytest
import yaml

from resources.spark import EmrSettings, SparkResource

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"


def _example() -> dict:
    with open(DEPLOY / "emr.example.yaml") as f:
        return yaml.safe_load(f)


def test_example_yaml_loads_into_emr_settings_and_names_every_setting():
    raw = _example()
    settings = EmrSettings(**raw)
    assert set(raw) == set(EmrSettings.model_fields), set(EmrSettings.model_fields) ^ set(raw)
    params = SparkResource(mode="emr", emr=settings).emr_cluster_params("r1")
    assert params["Instances"]["KeepJobFlowAliveWhenNoSteps"] is True
    assert params["AutoTerminationPolicy"] == {"IdleTimeout": 3600}
    assert params["BootstrapActions"][0]["ScriptBootstrapAction"] == {
        "Path": raw["bootstrap_uri"], "Args": [raw["wheel_uri"]]}
    env = next(c for c in params["Configurations"] if c["Classification"] == "spark-env")
    assert env["Configurations"][0]["Properties"]["PYSPARK_PYTHON"] == raw["python"]


def test_unknown_setting_is_refused():
    with pytest.raises(Exception, match="bogus"):
        EmrSettings(**{**_example(), "bogus": 1})


def test_every_setting_is_documented():
    doc = (DEPLOY / "README.md").read_text()
    missing = [k for k in EmrSettings.model_fields if f"| `{k}` |" not in doc]
    assert missing == []


def test_bootstrap_script_parses_and_needs_the_wheel():
    script = DEPLOY / "emr_bootstrap.sh"
    assert subprocess.run(["bash", "-n", str(script)], timeout=30).returncode == 0
    r = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "usage" in r.stderr
