"""The s3:// home's sync (``lensaudit.s3store``) against a moto S3 server on 127.0.0.1: push
with recorded sha256, pull of missing and changed objects, corrupt objects never installed,
keys outside the prefix refused, and the settings resource syncing around a Dagster run."""

import hashlib
import json
import os
from pathlib import Path

import boto3
import pytest



from lensaudit.s3store import (S3Store, S3StoreError, cache_dir, owner_asset,  # noqa: E402
                               parse_s3_uri, push_order)

REGION = "us-east-2"
BUCKET = "lensaudit-s3store"
URI = f"s3://{BUCKET}/homes/h1"


@pytest.fixture
def s3(moto_url, monkeypatch, tmp_path):
    import requests

    requests.post(f"{moto_url}/moto-api/reset", timeout=10)
    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
                 "AWS_DEFAULT_REGION": REGION, "AWS_ENDPOINT_URL": moto_url,
                 "LENSAUDIT_CACHE": str(tmp_path / "cache")}.items():
        monkeypatch.setenv(k, v)
    # the CLI tests' main() sets LENSAUDIT_HOME, LENSAUDIT_PROFILE and DAGSTER_HOME: restored afterwards
    for k in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "LENSAUDIT_HOME", "LENSAUDIT_PROFILE",
              "DAGSTER_HOME"):
        monkeypatch.setenv(k, "")  # recorded (an unset variable is not), so that what main() sets is undone
        monkeypatch.delenv(k)
    client = boto3.client("s3", region_name=REGION)
    client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    return client


def _home(root, files: dict[str, bytes]):
    for rel, body in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(body)


FILES = {"run_profile.json": b'{"profile": "tiny"}', "cutout_store/shards/s-0000-ab.npy": b"shard bytes",
         "assets/cutouts/sweep-a.parquet": b"index bytes", "assets/detector/resnet18/best.pt": b"weights",
         "plots/x.png": b"png"}


def test_uri_and_cache(s3, tmp_path):
    assert parse_s3_uri("s3://b-1/a/b/") == ("b-1", "a/b")
    assert cache_dir("s3://b-1/a/b") == (tmp_path / "cache" / "b-1" / "a" / "b").resolve()
    for bad in ("s3://Bad_Bucket/x", "s3://bucket/../x", "s3://bucket/a/.hidden", "/local/path"):
        with pytest.raises(S3StoreError):
            parse_s3_uri(bad)
    from lensaudit.store import lensaudit_home

    assert lensaudit_home(URI) == cache_dir(URI)


def test_push_records_sha256_and_orders_indexes_last(s3, tmp_path):
    store = S3Store(URI, tmp_path / "a")
    _home(store.root, FILES)
    (store.root / "dagster").mkdir()
    (store.root / "dagster" / "runs.db").write_bytes(b"local only")
    (store.root / "assets" / "cutouts" / ".sweep-b.parquet.1-h.x.tmp").write_bytes(b"half written")
    rep = store.push()
    assert rep.uploaded == sorted(FILES, key=push_order)
    assert rep.uploaded[-1] == "assets/cutouts/sweep-a.parquet"  # the index after its shard
    assert rep.uploaded.index("cutout_store/shards/s-0000-ab.npy") < rep.uploaded.index("assets/cutouts/sweep-a.parquet")
    for rel, body in FILES.items():
        head = s3.head_object(Bucket=BUCKET, Key=f"homes/h1/{rel}")
        assert head["Metadata"]["sha256"] == hashlib.sha256(body).hexdigest()
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]}
    assert keys == {f"homes/h1/{rel}" for rel in FILES}  # no Dagster instance, no temporary
    assert store.push().uploaded == []  # nothing changed: nothing sent


def test_pull_fetches_missing_and_changed_objects(s3, tmp_path):
    a = S3Store(URI, tmp_path / "a")
    _home(a.root, FILES)
    a.push()
    b = S3Store(URI, tmp_path / "b")
    rep = b.pull()
    assert sorted(rep.fetched) == sorted(FILES) and not rep.corrupt
    assert all((b.root / rel).read_bytes() == body for rel, body in FILES.items())
    assert b.pull().fetched == []  # in sync: nothing fetched
    # another cache rewrites an object: b (unchanged since its sync) fetches the new bytes
    (a.root / "assets/cutouts/sweep-a.parquet").write_bytes(b"index v2")
    assert a.push().uploaded == ["assets/cutouts/sweep-a.parquet"]
    assert b.pull().fetched == ["assets/cutouts/sweep-a.parquet"]
    assert (b.root / "assets/cutouts/sweep-a.parquet").read_bytes() == b"index v2"
    # a file written in b since its sync is kept by a plain pull (the push sends it) ...
    (b.root / "plots/x.png").write_bytes(b"new png")
    assert b.pull().fetched == [] and (b.root / "plots/x.png").read_bytes() == b"new png"
    # ... and replaced by a strict pull, which also drops what S3 does not hold
    (b.root / "plots/extra.png").write_bytes(b"not on S3")
    rep = b.pull(strict=True)
    assert rep.fetched == ["plots/x.png"] and rep.removed == ["plots/extra.png"]
    assert (b.root / "plots/x.png").read_bytes() == b"png"


def test_hash_mismatch_and_unrecorded_objects_are_never_installed(s3, tmp_path):
    a = S3Store(URI, tmp_path / "a")
    _home(a.root, FILES)
    a.push()
    key = "homes/h1/assets/cutouts/sweep-a.parquet"
    recorded = s3.head_object(Bucket=BUCKET, Key=key)["Metadata"]
    s3.put_object(Bucket=BUCKET, Key=key, Body=b"bit rot", Metadata=recorded)  # bytes no longer match
    s3.put_object(Bucket=BUCKET, Key="homes/h1/assets/lens_catalog/data.parquet", Body=b"foreign")  # no sha256
    b = S3Store(URI, tmp_path / "b")
    rep = b.pull()
    assert set(rep.corrupt) == {"assets/cutouts/sweep-a.parquet", "assets/lens_catalog/data.parquet"}
    assert "recorded" in rep.corrupt["assets/cutouts/sweep-a.parquet"]
    assert not (b.root / "assets/cutouts/sweep-a.parquet").exists()
    assert not list((b.root / "assets/cutouts").glob(".*"))  # no temporary left
    assert (b.root / "cutout_store/shards/s-0000-ab.npy").read_bytes() == FILES["cutout_store/shards/s-0000-ab.npy"]
    # a cache holding the good bytes still fails a strict pull: the object was rewritten since
    assert set(a.pull().corrupt) == {"assets/lens_catalog/data.parquet"}  # a plain pull keeps its good copy ...
    assert set(a.pull(strict=True).corrupt) == {"assets/cutouts/sweep-a.parquet", "assets/lens_catalog/data.parquet"}
    assert (a.root / "assets/cutouts/sweep-a.parquet").read_bytes() == FILES["assets/cutouts/sweep-a.parquet"]
    assert owner_asset("assets/cutouts/sweep-a.parquet") == "cutouts"
    assert owner_asset("cutout_store/shards/s-0000-ab.npy") == "cutouts"
    assert owner_asset("assets/training_manifest_shortfalls/data.parquet") == "training_manifest"  # side table
    assert owner_asset("plots/x.png") is None


@pytest.mark.parametrize("key", ["homes/h1/assets/../../escape.parquet", "homes/h1/assets/.hidden",
                                 "homes/h1//double", "homes/h1/a b.parquet"])
def test_key_escaping_the_prefix_is_refused(s3, tmp_path, key):
    s3.put_object(Bucket=BUCKET, Key=key, Body=b"x", Metadata={"sha256": hashlib.sha256(b"x").hexdigest()})
    b = S3Store(URI, tmp_path / "b")
    with pytest.raises(S3StoreError, match="refused"):
        b.pull()
    assert not (tmp_path / "escape.parquet").exists() and not list(tmp_path.rglob("escape.parquet"))


def test_settings_resource_syncs_around_a_run(s3, tmp_path, monkeypatch):
    """In a Dagster run the settings resource pulls before and pushes after: an asset writing
    into ``home_path()`` ends on S3 with its sha256; a corrupt object fails the run's setup."""
    import dagster as dg

    from resources.settings import LensauditSettings

    src = S3Store(URI, tmp_path / "seed")
    _home(src.root, {"run_profile.json": json.dumps({"profile": "tiny"}).encode()})
    src.push()

    @dg.asset
    def probe(settings: LensauditSettings) -> None:
        home = settings.home_path()
        assert (home / "run_profile.json").is_file()  # pulled before the step
        assert settings.profile_name() == "tiny"
        out = home / "assets" / "probe" / "data.parquet"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(b"probe table")

    res = dg.materialize([probe], resources={"settings": LensauditSettings(home=URI)})
    assert res.success
    head = s3.head_object(Bucket=BUCKET, Key="homes/h1/assets/probe/data.parquet")
    assert head["Metadata"]["sha256"] == hashlib.sha256(b"probe table").hexdigest()
    s3.put_object(Bucket=BUCKET, Key="homes/h1/assets/probe/data.parquet", Body=b"tampered",
                  Metadata=head["Metadata"])
    monkeypatch.setenv("LENSAUDIT_CACHE", str(tmp_path / "fresh"))
    # Dagster wraps the resource's dg.Failure in its resource-init error; the message names the object
    with pytest.raises(dg.DagsterError) as err:
        dg.materialize([probe], resources={"settings": LensauditSettings(home=URI)})
    assert "assets/probe/data.parquet: bytes hash to" in str(err.value.__cause__)
    assert not (tmp_path / "fresh" / BUCKET / "homes/h1/assets/probe/data.parquet").exists()


def test_cli_bad_s3_home_is_one_line_exit_2(s3, capsys):
    from lensaudit_cli.main import main

    for argv in (["gates", "--home", "s3://no-such-bucket/h"], ["materialize", "--home", "s3://no-such-bucket/h"],
                 ["gates", "--home", "s3://Bad_Bucket/h"]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert "cannot open the home" in err and "Traceback" not in err, err


# -- the UI's path: the multiprocess executor, one settings resource (pull ... push) per step process --
def _write(path, body: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(body)


def _mp_assets():
    import dagster as dg

    from resources.settings import LensauditSettings

    @dg.asset
    def s3_upstream(settings: LensauditSettings) -> None:
        home = settings.home_path()
        _write(home / "cutout_store" / "shards" / "up-0000.npy", b"up shard")
        _write(home / "assets" / "s3_upstream" / "data.parquet", b"up index")

    @dg.asset(deps=[s3_upstream])
    def s3_downstream(settings: LensauditSettings) -> None:
        home = settings.home_path()
        up = (home / "assets" / "s3_upstream" / "data.parquet").read_bytes()
        _write(home / "assets" / "s3_downstream" / "data.parquet", up + b" + down")

    return [s3_upstream, s3_downstream]


def mp_job():
    import dagster as dg

    from resources.settings import LensauditSettings

    job = dg.define_asset_job("s3_steps", executor_def=dg.multiprocess_executor)
    defs = dg.Definitions(assets=_mp_assets(), jobs=[job],
                          resources={"settings": LensauditSettings(home=os.environ["S3_TEST_URI"])})
    return defs.resolve_job_def("s3_steps")


def test_multiprocess_steps_each_pull_and_push(s3, tmp_path, monkeypatch):
    import dagster as dg

    monkeypatch.setenv("S3_TEST_URI", URI)
    here = str(Path(__file__).resolve().parent)  # the step processes import this module by its file's name
    job = dg.build_reconstructable_job(Path(__file__).stem, "mp_job", reconstructor_working_directory=here)
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        res = dg.execute_job(job, instance=instance)
        assert res.success
    for rel, body in {"cutout_store/shards/up-0000.npy": b"up shard", "assets/s3_upstream/data.parquet": b"up index",
                      "assets/s3_downstream/data.parquet": b"up index + down"}.items():
        head = s3.head_object(Bucket=BUCKET, Key=f"homes/h1/{rel}")
        assert head["Metadata"]["sha256"] == hashlib.sha256(body).hexdigest(), rel
    fresh = S3Store(URI, tmp_path / "fresh")
    assert len(fresh.pull().fetched) == 3


def test_cli_summary_reads_an_s3_home_and_refuses_a_corrupt_one(s3, tmp_path, capsys):
    from lensaudit_cli.main import main

    src = S3Store(URI, tmp_path / "seed")
    _home(src.root, {"run_profile.json": b'{"profile": "tiny"}', "assets/lens_catalog/data.parquet": b"not parquet"})
    src.push()
    s3.put_object(Bucket=BUCKET, Key="homes/h1/assets/lens_catalog/data.parquet", Body=b"other")  # no sha256
    assert main(["summary", "--home", URI]) == 1
    err = capsys.readouterr().err
    assert "fails its sha256 check" in err and "Traceback" not in err
    assert not (tmp_path / "cache" / BUCKET / "homes/h1/assets/lens_catalog/data.parquet").exists()
