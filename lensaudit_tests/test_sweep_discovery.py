"""Sweep files as dynamic partitions: ``sweep_discovery_sensor`` adds the new ``sweep-*.fits``
files of the configured location (directory, HTTP mirror on 127.0.0.1, S3 on a local moto
server, the mock sky) tick by tick, and ``lensaudit materialize`` registers them before it plans."""

import functools
import http.server
import threading

import dagster as dg
import pytest

from assets.automation import sweep_discovery_sensor
from lensaudit_tests._sensor_ticks import partition_tick
from assets.sweeps import SWEEP_PARTITIONS, SWEEP_PARTITIONS_NAME
from lensaudit.survey.sweep_files import list_sweep_files
from resources.sweeps import SweepLocationError, SweepSource, discover_sweep_partitions

A, B, C = "sweep-000m005-010p000.fits", "sweep-310m005-320p000.fits", "sweep-150p010-160p015.fits"
# names the sensor must ignore: other suffixes, a broken pattern, a folder, a checksum file
NOISE = ("sweep-000m005-010p000.fits.gz", "sweep-000m05-010p000.fits", "notes.txt", "sweep-000m005-010p000.sha256sum")


@pytest.fixture
def instance():
    with dg.instance_for_test() as inst:
        yield inst


def _tick(instance, location: str):
    """One evaluation as the daemon runs it; the partition requests are applied as the daemon does."""
    return partition_tick(sweep_discovery_sensor, instance, {"sweeps": SweepSource(location=location)},
                          SWEEP_PARTITIONS_NAME)


def _folder(tmp_path, names):
    d = tmp_path / "sweeps"
    d.mkdir(exist_ok=True)
    for n in names:
        (d / n).write_bytes(b"")
    (d / "sweep-020m005-030p000.fits").mkdir(exist_ok=True)  # a folder, not a sweep file
    return d


def test_sensor_is_registered_and_on_by_default():
    from definitions import defs

    sensor = defs.resolve_sensor_def("sweep_discovery_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert isinstance(SWEEP_PARTITIONS, dg.DynamicPartitionsDefinition) and SWEEP_PARTITIONS.name == "sweeps"
    graph = defs.resolve_asset_graph()
    for asset in ("sweep_catalog", "negative_pool", "cutouts"):
        assert graph.get(dg.AssetKey(asset)).partitions_def == SWEEP_PARTITIONS


def test_a_second_tick_adds_exactly_the_new_file(instance, tmp_path):
    d = _folder(tmp_path, [B, A, *NOISE])
    added, _ = _tick(instance, str(d))
    assert added == [A, B]  # sorted; the noise is ignored
    added, skip = _tick(instance, str(d))
    assert added == [] and "no new sweep file" in skip  # nothing changed: nothing added
    (d / C).write_bytes(b"")  # a file appears between ticks
    (d / "sweep-xyz.fits").write_bytes(b"")
    added, _ = _tick(instance, str(d))
    assert added == [C]
    assert instance.get_dynamic_partitions(SWEEP_PARTITIONS_NAME) == [A, B, C]  # later files come after
    assert list(SWEEP_PARTITIONS.get_partition_keys(dynamic_partitions_store=instance)) == [A, B, C]


def test_a_vanished_file_keeps_its_partition(instance, tmp_path):
    d = _folder(tmp_path, [A, B])
    _tick(instance, str(d))
    (d / A).unlink()
    added, _ = _tick(instance, str(d))
    assert added == [] and instance.get_dynamic_partitions(SWEEP_PARTITIONS_NAME) == [A, B]


def test_an_empty_location_skips(instance, tmp_path):
    added, skip = _tick(instance, str(_folder(tmp_path, NOISE)))
    assert added == [] and "no sweep-*.fits" in skip


def test_the_mock_sky_in_its_own_order(instance):
    added, _ = _tick(instance, "mock")
    assert added == discover_sweep_partitions("mock") and len(added) == 10


@pytest.mark.parametrize("where", ["missing_dir", "refused_http", "bad_scheme"])
def test_an_unreachable_location_fails_the_tick_clearly(instance, tmp_path, where):
    location = {"missing_dir": str(tmp_path / "no_such_dir"),
                "refused_http": f"http://127.0.0.1:{_closed_port()}/sweep/10.1/",
                "bad_scheme": "ftp://example.org/sweeps"}[where]
    with pytest.raises(SweepLocationError, match="sweep location") as err:
        with dg.build_sensor_context(instance=instance, resources={"sweeps": SweepSource(location=location)}) as ctx:
            sweep_discovery_sensor(ctx)
    assert location in str(err.value)
    assert instance.get_dynamic_partitions(SWEEP_PARTITIONS_NAME) == []


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the with block ends: connections are refused


@pytest.fixture
def http_mirror(tmp_path):
    """The folder served by Python's http.server on 127.0.0.1 (an index page, as a mirror's)."""
    d = _folder(tmp_path, [B, *NOISE])
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        yield d, f"http://127.0.0.1:{server.server_address[1]}/{d.name}"
    finally:
        server.shutdown()
        server.server_close()


def test_http_mirror(instance, http_mirror):
    d, url = http_mirror
    assert _tick(instance, url)[0] == [B]
    (d / A).write_bytes(b"")
    assert _tick(instance, url + "/")[0] == [A]
    with pytest.raises(SweepLocationError, match="404"):
        list_sweep_files(url + "/no_such_folder")


@pytest.fixture
def s3(monkeypatch):
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
                 "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": f"http://{host}:{port}"}.items():
        monkeypatch.setenv(k, v)
    for k in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(k, raising=False)
    client = boto3.client("s3")
    client.create_bucket(Bucket="dr10")
    try:
        yield client
    finally:
        server.stop()


def test_s3_prefix(instance, s3):
    for n in (B, *NOISE, f"sub/{A}"):
        s3.put_object(Bucket="dr10", Key=f"south/sweep/10.1/{n}", Body=b"")
    s3.put_object(Bucket="dr10", Key="south/sweep/10.1x/" + C, Body=b"")  # a sibling prefix
    assert _tick(instance, "s3://dr10/south/sweep/10.1")[0] == [B]
    s3.put_object(Bucket="dr10", Key=f"south/sweep/10.1/{A}", Body=b"")
    assert _tick(instance, "s3a://dr10/south/sweep/10.1/")[0] == [A]
    with pytest.raises(SweepLocationError, match="NoSuchBucket"):
        list_sweep_files("s3://no-such-bucket/sweep")


# ---- lensaudit materialize registers the partitions before it plans -------------------------

def test_materialize_registers_the_sweeps_and_keeps_the_profile_subset():
    from definitions import defs
    from lensaudit.config import get_profile
    from lensaudit_cli.main import plan_runs, plan_sweep_range

    keys = {dg.AssetKey("sweep_catalog"), dg.AssetKey("negative_pool")}
    mock = discover_sweep_partitions("mock")
    with dg.instance_for_test() as inst:
        tiny = plan_sweep_range(defs, inst, keys, "tiny")
        assert inst.get_dynamic_partitions(SWEEP_PARTITIONS_NAME) == mock  # all of the location's files
        subset = [k for k in mock if k in get_profile("tiny").sweep_subset]
        assert tiny == (subset[0], subset[-1])  # the tiny profile's sweeps only, as before
        assert plan_sweep_range(defs, inst, keys, "demo") == (mock[0], mock[-1])
        assert inst.get_dynamic_partitions(SWEEP_PARTITIONS_NAME) == mock  # nothing added twice
        (run,) = plan_runs(defs, keys, "tiny", tiny)
        assert run[1] == {"dagster/asset_partition_range_start": subset[0], "dagster/asset_partition_range_end": subset[-1]}
        assert plan_sweep_range(defs, inst, {dg.AssetKey("lens_catalog")}, "tiny") is None


def test_materialize_on_a_directory_with_foreign_partitions_in_between(tmp_path):
    from lensaudit_cli.main import sweep_range

    with pytest.raises(SystemExit, match="not contiguous"):
        sweep_range([A, "sweep-999p000-000p005.fits", B], [A, B], None, str(tmp_path))
    assert sweep_range(["x", A, B], [A, B], None, str(tmp_path)) == (A, B)
    with pytest.raises(SystemExit, match="no sweep-"):
        sweep_range([], [], None, str(tmp_path))


def test_materialize_on_an_unreachable_location_is_one_line(tmp_path, monkeypatch, capsys):
    import definitions
    from lensaudit_cli.main import main

    missing = tmp_path / "no_such_dir"
    defs = dg.Definitions(assets=definitions.defs.assets, asset_checks=definitions.defs.asset_checks,
                          jobs=definitions.defs.jobs,
                          resources={**definitions.defs.resources, "sweeps": SweepSource(location=str(missing))})
    monkeypatch.setattr(definitions, "defs", defs)
    for k in ("LENSAUDIT_HOME", "LENSAUDIT_PROFILE", "DAGSTER_HOME"):  # the CLI sets them; restored after
        monkeypatch.setenv(k, "")
    assert main(["materialize", "--profile", "tiny", "--select", "sweep_catalog", "--home", str(tmp_path / "h")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("lensaudit: sweep location") and str(missing) in err and "Traceback" not in err


def test_nothing_is_listed_when_the_code_location_loads(tmp_path):
    """The planted fault of the old static partitions: an unlistable location broke the import."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "LENSAUDIT_SWEEPS": str(tmp_path / "no_such_dir"), "PYTHONPATH": str(repo)}
    code = ("import definitions; d = definitions.defs; "
            "print(d.resources['sweeps'].location, len(d.resolve_asset_graph().get_all_asset_keys()))")
    r = subprocess.run([sys.executable, "-c", code], cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split()[-2:] == [str(tmp_path / "no_such_dir"), "15"]
