"""Operations of the code location: per-partition metadata under single-run backfills, the
profile picked per run (launchpad run config), code versions, the run queue limit."""

import json
import re
import shutil
from pathlib import Path

import dagster as dg
import pytest

from lensaudit.store import partition_file
from resources.cutout_source import CutoutSourceResource
from resources.settings import RUN_PROFILE_FILE, LensauditSettings
from resources.spark import SparkResource
from resources.sweeps import SweepSource

REPO = Path(__file__).resolve().parents[1]


# --- per-partition metadata -------------------------------------------------------------

from assets.sweeps import SWEEP_PARTITIONS_NAME  # noqa: E402
from resources.sweeps import discover_sweep_partitions  # noqa: E402

KEYS = discover_sweep_partitions("mock")[:2]  # a two-partition range, as a backfill run has
ROWS = dict(zip(KEYS, (3, 5)))
RANGE_TAGS = {"dagster/asset_partition_range_start": KEYS[0], "dagster/asset_partition_range_end": KEYS[1]}


class FakeSpark(SparkResource):
    """Answers the Spark jobs with status rows of known per-partition counts."""

    drop_key: str = ""

    def run_job(self, context, job, args):
        def task(key, rows, payload):
            return {"key": key, "ok": True, "n_rows": rows, "error": "", "payload": json.dumps(payload)}

        if job == "sweep_catalog":
            keys = list(args["jobs"])
            tasks = [task(k, ROWS[k], {"rows": ROWS[k], "invalid_coords": ROWS[k] - 2}) for k in keys]
        elif job == "negative_pool":
            keys = list(args["jobs"])
            tasks = [task(k, ROWS[k], [{"pool": "N1", "cut": "dec_range", "n_rows": 10 * ROWS[k]}]) for k in keys]
        elif job == "cutouts":
            keys = list(args["sweeps"])
            tasks = [task(k, ROWS[k], {"rows": ROWS[k], "ok": ROWS[k] - 1, "fail_reasons": {"no_coverage": 1}})
                     for k in keys]
        else:
            raise AssertionError(job)
        return {"tasks": [t for t in tasks if t["key"] != self.drop_key]}


def _materialize(asset, tmp_path, drop_key=""):
    home = tmp_path / "home"
    for k in KEYS:  # negative_pool checks that its sweep_catalog partitions exist
        p = partition_file(home, "sweep_catalog", k)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"")
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(SWEEP_PARTITIONS_NAME, KEYS)  # as the discovery sensor does
    return dg.materialize(
        [asset], tags=RANGE_TAGS, raise_on_error=False, instance=instance,
        resources={"settings": LensauditSettings(home=str(home), profile="tiny"), "spark": FakeSpark(drop_key=drop_key),
                   "sweeps": SweepSource(location=str(tmp_path)),
                   "cutout_source": CutoutSourceResource(kind="coadd", location=str(tmp_path))})


def _per_partition(result):
    out = {}
    for ev in result.get_asset_materialization_events():
        m = ev.event_specific_data.materialization
        out[m.partition] = {k: getattr(v, "value", v) for k, v in m.metadata.items()}
    return out


def _assets():
    from assets.cutouts import cutouts
    from assets.negatives import negative_pool
    from assets.sweeps import sweep_catalog

    return {"sweep_catalog": sweep_catalog, "negative_pool": negative_pool, "cutouts": cutouts}


@pytest.mark.parametrize("name", ["sweep_catalog", "negative_pool", "cutouts"])
def test_single_run_backfill_gives_each_partition_its_own_metadata(name, tmp_path):
    asset = _assets()[name]
    assert asset.backfill_policy == dg.BackfillPolicy.single_run()
    result = _materialize(asset, tmp_path)
    assert result.success
    per = _per_partition(result)
    assert sorted(per) == sorted(KEYS), "one materialisation per partition of the run"
    for k in KEYS:
        assert per[k]["dagster/row_count"] == ROWS[k], (k, per[k])  # not the run's total (8)
        assert per[k]["rows_in_run"] == sum(ROWS.values()) and per[k]["partitions_in_run"] == 2
    if name == "sweep_catalog":
        assert [per[k]["invalid_coords"] for k in KEYS] == [1, 3]
        assert per[KEYS[0]]["path"] != per[KEYS[1]]["path"]
    if name == "negative_pool":
        assert [per[k]["removal_counters_N1"]["dec_range"] for k in KEYS] == [30, 50]
    if name == "cutouts":
        assert [per[k]["cutouts_ok"] for k in KEYS] == [2, 4]
        assert per[KEYS[1]]["index_path"].endswith(Path(KEYS[1]).stem + ".parquet")


def test_a_partition_without_a_result_fails_the_step(tmp_path):
    """The planted fault: a task row missing for one partition of the run."""
    result = _materialize(_assets()["sweep_catalog"], tmp_path, drop_key=KEYS[1])
    assert not result.success
    failure = [e for e in result.all_events if e.is_step_failure][0]
    assert "no result for partition" in failure.event_specific_data.error.message
    assert result.get_asset_materialization_events() == []


# --- the profile is chosen per run ------------------------------------------------------

@dg.asset
def _profile_probe(context: dg.AssetExecutionContext, settings: LensauditSettings) -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"profile": settings.profile_obj().name})


def _probe_profile(run_config=None) -> str:
    defs = dg.Definitions(assets=[_profile_probe], resources={"settings": LensauditSettings()})
    job = defs.resolve_implicit_global_asset_job_def()
    r = job.execute_in_process(run_config=run_config or {}, instance=dg.DagsterInstance.ephemeral())
    return r.get_asset_materialization_events()[0].event_specific_data.materialization.metadata["profile"].value


def test_profile_is_read_when_the_run_executes_not_at_import(monkeypatch, tmp_path):
    monkeypatch.setenv("LENSAUDIT_HOME", str(tmp_path))
    monkeypatch.delenv("LENSAUDIT_PROFILE", raising=False)
    from definitions import defs

    assert defs.resources["settings"].profile == "" and defs.resources["settings"].home == ""
    assert _probe_profile() == "demo"
    monkeypatch.setenv("LENSAUDIT_PROFILE", "full")  # after the definitions were built
    assert _probe_profile() == "full"
    (tmp_path / RUN_PROFILE_FILE).write_text(json.dumps({"profile": "tiny"}))  # the store's record wins
    assert _probe_profile() == "tiny"
    launchpad = {"resources": {"settings": {"config": {"profile": "demo"}}}}
    assert _probe_profile(launchpad) == "demo"  # the launchpad wins over everything


def test_bad_profile_fails_clearly(monkeypatch, tmp_path):
    monkeypatch.setenv("LENSAUDIT_HOME", str(tmp_path))
    with pytest.raises(dg.Failure, match="unknown lensaudit profile 'huge'"):
        LensauditSettings(profile="huge").profile_name()
    (tmp_path / RUN_PROFILE_FILE).write_text("{not json")
    with pytest.raises(dg.Failure, match="unreadable profile record"):
        LensauditSettings().profile_name()


def test_the_launchpad_accepts_the_profile_on_the_real_jobs():
    from definitions import defs
    from lensaudit_cli.main import RUN_PROFILE_FILE as CLI_FILE

    assert CLI_FILE == RUN_PROFILE_FILE
    for name in ("lensaudit_main", "lensaudit_detector"):
        job = defs.resolve_job_def(name)
        cfg = dg.validate_run_config(job, {"resources": {"settings": {"config": {"profile": "tiny"}}}})
        assert cfg["resources"]["settings"]["config"]["profile"] == "tiny"


# --- code versions ----------------------------------------------------------------------

def test_every_asset_has_a_code_version():
    from definitions import defs

    graph = defs.resolve_asset_graph()
    versions = {k.to_user_string(): graph.get(k).code_version for k in graph.get_all_asset_keys()}
    assert len(versions) == 15
    assert all(v and re.fullmatch(r"[0-9a-f]{16}", v) for v in versions.values()), versions


def test_code_version_follows_the_code_an_asset_reaches():
    from assets._versions import _module_source, code_closure, code_version, compute_fn
    from assets.detector import detector
    from assets.sweeps import sweep_catalog

    det, sw = compute_fn(detector), compute_fn(sweep_catalog)
    assert code_version(det) == code_version(det)
    assert "mod:lensaudit.detector.train" in code_closure(det)
    assert "mod:lensaudit.spark_jobs.sweeps" in code_closure(sw)  # the Spark job run by name
    assert not any(k.startswith("mod:lensaudit.gates") for k in code_closure(det))

    def edited(target):
        def read(name):
            text, pkg = _module_source(name)
            return (text + "\n# edited\n", pkg) if name == target else (text, pkg)
        return read

    # the planted change: a science module of the detector, then the sweep reader's Spark job
    assert code_version(det, edited("lensaudit.detector.train")) != code_version(det)
    assert code_version(sw, edited("lensaudit.detector.train")) == code_version(sw)
    assert code_version(sw, edited("lensaudit.spark_jobs.sweeps")) != code_version(sw)
    assert code_version(det, edited("lensaudit.config")) != code_version(det)  # the profiles


# --- bounded concurrency ----------------------------------------------------------------

def test_instance_queues_runs_one_at_a_time(tmp_path):
    shutil.copy(REPO / "dagster.yaml", tmp_path / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert instance.get_concurrency_config().run_queue_config.max_concurrent_runs == 1
    # the planted fault: the file without the limit gives Dagster's unbounded-ish default
    text = (REPO / "dagster.yaml").read_text()
    (tmp_path / "dagster.yaml").write_text(text.split("concurrency:")[0])
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert instance.get_concurrency_config().run_queue_config.max_concurrent_runs != 1
