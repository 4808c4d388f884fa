"""The tiny profile materialised with its home on S3 (``--home s3://…``) against a moto S3
server on 127.0.0.1, through the real CLI: every store file lands in the bucket with its
sha256, ``lensaudit gates`` passes on it, a second cache of the same URI verifies the same
bytes, and an object whose bytes no longer match its recorded sha256 fails its asset's gates."""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest



# one tiny materialisation (Spark, torch) plus three gate runs, on two busy cores
pytestmark = [pytest.mark.dagster, pytest.mark.timeout(1200)]
REPO = Path(__file__).resolve().parents[1]
REGION = "us-east-2"
BUCKET = "lensaudit-home"
URI = f"s3://{BUCKET}/tiny/run1"
SELECT = "+cutouts or shortcut_features or injection_realism"


def _env(moto_url: str, cache: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DAGSTER_", "LENSAUDIT_"))}
    env.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
                "AWS_DEFAULT_REGION": REGION, "AWS_ENDPOINT_URL": moto_url, "LENSAUDIT_CACHE": str(cache),
                "LENSAUDIT_HOME": URI})
    return env


def _cli(env, *args):
    return subprocess.run([sys.executable, "-m", "lensaudit_cli.main", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=1000)


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_tiny_home_on_s3(moto_url, tmp_path):
    s3 = boto3.client("s3", region_name=REGION, endpoint_url=moto_url, aws_access_key_id="testing",
                      aws_secret_access_key="testing")
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    env_a = _env(moto_url, tmp_path / "cache_a")
    # the data half with the cutout store (the tiny sky's detector stops at its blocking AUC gate
    # by design: test_pipeline_tiny.py), 13 assets and their checks
    r = _cli(env_a, "materialize", "--profile", "tiny", "--select", SELECT, "--home", URI)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-5000:]

    # every store file of the run's cache is in the bucket, with the sha256 of its bytes
    from lensaudit.s3store import S3Store

    cache_a = tmp_path / "cache_a" / BUCKET / "tiny" / "run1"
    files = S3Store(URI, cache_a).local_files()
    assert {"run_profile.json", "assets/training_manifest/data.parquet", "assets/shortcut_features/data.parquet",
            "plots/spatial_splits_sky.png"} <= set(files)
    assert any(f.startswith("cutout_store/shards/") for f in files)
    objects = {o["Key"][len("tiny/run1/"):]: o for p in s3.get_paginator("list_objects_v2").paginate(
        Bucket=BUCKET, Prefix="tiny/run1/") for o in p.get("Contents", [])}
    assert set(files) <= set(objects)
    assert not any(k.startswith("dagster/") or "/." in k for k in objects)  # no instance, no temporary
    for rel in files:
        head = s3.head_object(Bucket=BUCKET, Key=f"tiny/run1/{rel}")
        assert head["Metadata"]["sha256"] == _sha(cache_a / rel), rel

    r = _cli(env_a, "gates", "--home", URI)
    assert r.returncode == 0, r.stdout[-5000:] + r.stderr[-3000:]

    # a second home on a fresh cache reads the same URI: the same bytes, verified, gates green
    env_b = _env(moto_url, tmp_path / "cache_b")
    r = _cli(env_b, "gates", "--home", URI)
    assert r.returncode == 0, r.stdout[-5000:] + r.stderr[-3000:]
    cache_b = tmp_path / "cache_b" / BUCKET / "tiny" / "run1"
    assert all(_sha(cache_b / rel) == _sha(cache_a / rel) for rel in files)

    # a corrupted object (its bytes changed, its recorded sha256 kept) fails its asset's gates
    key = "tiny/run1/assets/training_manifest/data.parquet"
    meta = s3.head_object(Bucket=BUCKET, Key=key)["Metadata"]
    good = (cache_a / "assets/training_manifest/data.parquet").read_bytes()
    s3.put_object(Bucket=BUCKET, Key=key, Body=good[:-100] + bytes(100), Metadata=meta)
    env_c = _env(moto_url, tmp_path / "cache_c")
    r = _cli(env_c, "gates", "--home", URI)
    assert r.returncode == 1, r.stdout[-5000:] + r.stderr[-3000:]
    line = next(ln for ln in r.stdout.splitlines() if ln.startswith("training_manifest_splits_disjoint"))
    assert "FAIL" in line
    assert "fails its sha256 check" in r.stderr
    assert not (tmp_path / "cache_c" / BUCKET / "tiny/run1/assets/training_manifest/data.parquet").exists()
    # the first cache holds the good bytes, but the object was rewritten since it uploaded it:
    # a strict pull fetches and checks it, and the gates fail there too
    r = _cli(env_a, "gates", "--home", URI)
    assert r.returncode == 1 and "fails its sha256 check" in r.stderr, r.stdout[-5000:] + r.stderr[-3000:]

    # the torch steps on the same home, once the object is good again: the detector trains and
    # its checkpoint lands in the bucket with its sha256; the tiny model's evaluation then stops
    # the run at its blocking AUC gate (by design, as on a local home: test_pipeline_tiny.py)
    s3.put_object(Bucket=BUCKET, Key=key, Body=good, Metadata=meta)
    r = _cli(env_a, "materialize", "--profile", "tiny", "--select", "detector+", "--home", URI)
    out = r.stdout + r.stderr
    assert r.returncode == 1 and "detector_auc_better_than_chance" in out, out[-5000:]
    ckpt = "assets/detector/resnet18/best.pt"
    head = s3.head_object(Bucket=BUCKET, Key=f"tiny/run1/{ckpt}")
    assert head["Metadata"]["sha256"] == _sha(cache_a / ckpt)

    # the selection half on the same S3 home (selected explicitly, as test_pipeline_tiny.py does
    # past the tiny detector's gate): its tables and the report land in the bucket with their sha256
    r = _cli(env_a, "materialize", "--profile", "tiny", "--select", "injection_hosts+", "--home", URI)
    assert r.returncode == 0 and "audit report:" in r.stdout, (r.stdout + r.stderr)[-5000:]
    for rel in ("assets/completeness_table/data.parquet", "assets/audit_report/audit_report.html"):
        head = s3.head_object(Bucket=BUCKET, Key=f"tiny/run1/{rel}")
        assert head["Metadata"]["sha256"] == _sha(cache_a / rel), rel
