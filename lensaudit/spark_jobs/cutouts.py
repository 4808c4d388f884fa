"""Cutouts and shortcut features on Spark: one task per sweep partition.

``cutouts``: each task takes its sweep's manifest rows sorted by brick, gets every stamp
from the configured source (mock sky, coadd bricks or the cutout service), runs QC,
(batch sources are called on chunks of rows: the coadd source on chunks of whole bricks,
so it reads and decompresses each brick band once for all its targets),
writes float32 shards named by their content hash (a re-run never overwrites a shard an
older index points to) and then, atomically, the partition's index; shards of the
partition no longer referenced are removed last.  A stamp that fails (source failure,
exception, QC) is an index row with ``cutout_ok = false`` and its reason.
``shortcut_features``: each task reads its partition's good stamps and computes
``lensaudit.cutouts.features`` for them.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from lensaudit.arrow_fields import described as _f

from lensaudit.cutouts.features import FEATURES
from lensaudit.spark_jobs.common import run_tasks, status_batch, task_sizes
from lensaudit.survey.instrument import BANDS

QC_BAND_STATS = ("p1", "p50", "p99", "mad", "outer_bg", "clip_frac")


SHORTCUT_FEATURES_SCHEMA = pa.schema([
    _f("galaxy_id", pa.string(), "<brickname>_<objid>"),
    _f("label", pa.int8(), "1 lens, 0 negative"),
    _f("split", pa.string(), "train / val / test"),
] + [_f(f, pa.float64(), "see lensaudit.cutouts.features (nmgy per pixel, AB mag for colours)") for f in FEATURES])

INDEX_SCHEMA = pa.schema([
    _f("galaxy_id", pa.string(), "<brickname>_<objid>"),
    _f("sweep", pa.string(), "sweep partition"),
    _f("brickname", pa.string(), "brick"),
    _f("ra", pa.float64(), "[deg]"), _f("dec", pa.float64(), "[deg]"),
    _f("label", pa.int8(), "1 lens, 0 negative"), _f("split", pa.string(), "train/val/test"),
    _f("cutout_path", pa.string(), "shard path relative to $LENSAUDIT_HOME/cutout_store ('' on failure)"),
    _f("cutout_offset", pa.int32(), "row in the shard (-1 on failure)"),
    _f("cutout_ok", pa.bool_(), "stamp usable (source ok and QC ok)"),
    _f("fail_reason", pa.string(), "why not ('' when ok)"),
    _f("bands", pa.string(), "channel order of the stamp"),
    _f("nan_frac", pa.float64(), "NaN fraction of the stamp"),
    _f("central_nan_frac", pa.float64(), "NaN fraction of the central 50x50"),
] + [_f(f"has_{b}", pa.bool_(), f"band {b} present") for b in BANDS]
  + [_f(f"{s}_{b}", pa.float64(), f"QC {s} of band {b} [nmgy/pixel]") for b in BANDS for s in QC_BAND_STATS])


#: the index's column names (``pa.Schema.names`` builds a new list on every access)
_INDEX_COLUMNS = frozenset(INDEX_SCHEMA.names)


#: failure reason of a target whose brick the survey-bricks table shows without g, r and z data
REASON_NOT_COVERED = "brick_not_covered"


def _source(spec: dict, sweep: str):
    """The cutout source of a task; with ``spec["survey_bricks"]`` (the data configuration's
    survey-bricks table, read once per process) a target in a brick without data in every band
    fails with ``brick_not_covered`` before the source is asked (no download)."""
    src = _raw_source(spec, sweep)
    if spec.get("survey_bricks") and spec["kind"] != "mock":
        return _CoverageFilter(src, _covered(spec["survey_bricks"]))
    return src


@lru_cache(maxsize=2)
def _covered(path: str) -> frozenset[str]:
    from lensaudit.survey.bricks import covered_bricks, read_survey_bricks

    return covered_bricks(read_survey_bricks(path))


class _CoverageFilter:
    """Rows whose brick has no data in g, r and z (survey-bricks) fail with their reason; the
    others go to the wrapped source (its batch path, and its whole-brick chunking, kept)."""

    def __init__(self, inner, covered: frozenset[str]):
        self.inner, self.covered = inner, covered
        self.whole_bricks = getattr(inner, "whole_bricks", False)
        if hasattr(inner, "batch"):
            self.batch = self._batch

    @staticmethod
    def _failure(brick: str) -> "_SourceFailure":
        return _SourceFailure(f"{REASON_NOT_COVERED}: brick {brick} has no g, r and z data in the survey-bricks table")

    def __call__(self, r):
        if r.brickname not in self.covered:
            raise self._failure(r.brickname)
        return self.inner(r)

    def _batch(self, rows: pd.DataFrame) -> dict:
        ok = rows["brickname"].isin(self.covered).to_numpy()
        out = self.inner.batch(rows[ok]) if ok.any() else {}
        out.update({g: self._failure(b) for g, b in zip(rows.loc[~ok, "galaxy_id"], rows.loc[~ok, "brickname"])})
        return out


def _raw_source(spec: dict, sweep: str):
    kind = spec["kind"]
    if kind == "mock":
        from lensaudit.mock.config import MockSkyConfig
        from lensaudit.mock.render import MockSweepImager

        config = MockSkyConfig.from_dict(spec["mock_config"])
        rows = pd.read_parquet(spec["sweep_parquet"][sweep])
        truth = pd.read_parquet(Path(spec["truth_dir"]) / sweep.replace(".fits", ".parquet"))
        return _MockSource(MockSweepImager(rows, truth, config))
    if kind == "coadd":
        from lensaudit.cutouts.coadd import CoaddSource

        return _CoaddBatchSource(CoaddSource(spec["location"]))
    if kind == "http":
        from lensaudit.cutouts.http import DEFAULT_MIN_INTERVAL_S, HttpCutoutSource

        # the interval (per machine: nodes / global rate when one is configured, resolve_rate_spec)
        # and the run's retry budget are shared by every task of this machine (files in the cache dir)
        src = HttpCutoutSource(spec["location"], cache_dir=spec.get("cache_dir"),
                               min_interval_s=spec.get("min_interval_s", DEFAULT_MIN_INTERVAL_S),
                               layer=spec.get("layer", "ls-dr10"), retries=int(spec.get("retries", 4)),
                               timeout_s=float(spec.get("timeout_s", 30.0)),
                               run_retry_budget=spec.get("node_retry_budget"), run_key=spec.get("run_key", ""))
    else:
        raise ValueError(f"unknown cutout source {kind!r}")

    def get(r):
        c = src.cutout(float(r.ra), float(r.dec), bands=BANDS)
        if not c.ok:
            raise _SourceFailure(c.reason)
        return c.data
    return get


class _SourceFailure(Exception):
    pass


class _CoaddBatchSource:
    """Coadd bricks as a batch source: ``batch`` cuts all rows of a chunk with
    ``CoaddSource.cutouts`` (each brick band read once); a failed row maps to its
    ``_SourceFailure``.  Chunks hold whole bricks (``whole_bricks``)."""

    whole_bricks = True

    def __init__(self, src):
        self.src = src

    def __call__(self, r):
        c = self.src.cutout(float(r.ra), float(r.dec), bands=BANDS)
        if not c.ok:
            raise _SourceFailure(c.reason)
        return c.data

    def batch(self, rows: pd.DataFrame) -> dict:
        try:
            cuts = self.src.cutouts(rows["ra"].to_numpy(float), rows["dec"].to_numpy(float), bands=BANDS)
        except Exception:  # noqa: BLE001 - each row is retried alone and fails with its own reason
            return {}
        return {g: c.data if c.ok else _SourceFailure(c.reason) for g, c in zip(rows["galaxy_id"], cuts)}


class _MockSource:
    """The mock sky as a cutout source: ``batch`` renders many stamps in one call (the
    batched renderer), the call renders one (the fallback that turns a failure into its row)."""

    def __init__(self, imager):
        self.imager = imager

    def __call__(self, r):
        return self.imager.stamp(r)

    def batch(self, rows: pd.DataFrame) -> dict:
        ids = [g for g in rows["galaxy_id"] if self.imager.has(g)]
        try:
            stamps = self.imager.stamps(ids)
        except Exception:  # noqa: BLE001 - each row is retried alone and fails with its own reason
            return {}
        return dict(zip(ids, stamps))


#: rows per call of a batch source (mock sky; coadd: whole bricks up to this, a larger brick is one call)
SOURCE_BATCH_ROWS = 256


def brick_chunks(bricknames, max_rows: int = SOURCE_BATCH_ROWS) -> list[tuple[int, int]]:
    """[start, stop) row ranges over rows sorted by brick: whole bricks only, consecutive
    bricks merged while the chunk stays within ``max_rows`` (a larger brick is one chunk)."""
    names = list(bricknames)
    runs, start = [], 0
    for i in range(1, len(names) + 1):
        if i == len(names) or names[i] != names[start]:
            runs.append((start, i))
            start = i
    chunks: list[tuple[int, int]] = []
    for a, b in runs:
        if chunks and b - chunks[-1][0] <= max_rows:
            chunks[-1] = (chunks[-1][0], b)
        else:
            chunks.append((a, b))
    return chunks


def cutouts_one_partition(sweep: str, manifest: pd.DataFrame, spec: dict, store_dir: str, index_out: str,
                          shard_rows: int = 2048) -> dict:
    from lensaudit.cutouts.qc import quality, quality_batch
    from lensaudit.cutouts.store import shard_relpath, write_shard
    from lensaudit.store import reap_stale_temps, write_parquet_atomic

    rows = manifest[manifest["sweep"] == sweep].sort_values(["brickname", "galaxy_id"], kind="stable")
    get = _source(spec, sweep) if len(rows) else None
    store = Path(store_dir)
    stem = sweep.replace(".fits", "")
    written: list[str] = []

    def write_next_shard(chunk: list) -> None:
        """Shard number len(written) from (record number, stamp) pairs: hashed and written stamp by
        stamp (no stacked copy), its rows pointed at it; the stamps are then free to go."""
        stamps = [d for _, d in chunk]
        rel = shard_relpath(stem, len(written), stamps)
        if not (store / rel).exists():
            write_shard(store / rel, stamps)
        written.append(rel)
        for off, (i, _) in enumerate(chunk):
            records[i]["cutout_path"], records[i]["cutout_offset"] = rel, off

    records, good = [], []
    pre: dict = {}
    pre_qc: dict = {}
    chunk_at: dict = {}
    if getattr(get, "whole_bricks", False):
        chunk_at = dict(brick_chunks(rows["brickname"]))
    elif hasattr(get, "batch"):
        chunk_at = {a: a + SOURCE_BATCH_ROWS for a in range(0, len(rows), SOURCE_BATCH_ROWS)}
    for n_row, r in enumerate(rows.itertuples(index=False)):
        if n_row in chunk_at:
            pre = get.batch(rows.iloc[n_row:chunk_at[n_row]])
            got = [g for g, d in pre.items() if isinstance(d, np.ndarray)]
            try:  # the chunk's QC at once; on any error each stamp's own QC below gives its row and reason
                pre_qc = dict(zip(got, quality_batch([pre[g] for g in got], BANDS)))
            except Exception:  # noqa: BLE001
                pre_qc = {}
        rec = {"galaxy_id": r.galaxy_id, "sweep": sweep, "brickname": r.brickname, "ra": r.ra, "dec": r.dec,
               "label": r.label, "split": r.split, "cutout_path": "", "cutout_offset": -1, "cutout_ok": False,
               "fail_reason": "", "bands": BANDS}
        try:
            data = pre.pop(r.galaxy_id) if r.galaxy_id in pre else get(r)
            if isinstance(data, _SourceFailure):
                raise data
            qc = pre_qc.pop(r.galaxy_id) if r.galaxy_id in pre_qc else quality(data, BANDS)
            rec.update({k: v for k, v in qc.items() if k in _INDEX_COLUMNS})
            if qc["qc_ok"]:
                rec["cutout_ok"] = True
                good.append((len(records), data))
            else:
                rec["fail_reason"] = f"qc: {qc['qc_reason']}"
        except _SourceFailure as exc:
            rec["fail_reason"] = f"source: {exc}"
        except Exception as exc:  # a broken stamp is a row with its reason, never a lost batch
            rec["fail_reason"] = f"error: {type(exc).__name__}: {exc}"
        records.append(rec)
        if len(good) == shard_rows:  # written as it fills: the task holds one shard of stamps, not its partition
            write_next_shard(good)
            good = []
    if good:
        write_next_shard(good)
    index = pd.DataFrame(records, columns=INDEX_SCHEMA.names)
    write_parquet_atomic(index, index_out, schema=INDEX_SCHEMA)
    keep = set(written)
    for old in (store / "shards").glob(f"{stem}-*.npy") if (store / "shards").exists() else []:
        if f"shards/{old.name}" not in keep:
            old.unlink()
    reap_stale_temps(store / "shards", f"{stem}-")  # half-written shards of a killed run of this partition
    reasons = index.loc[~index["cutout_ok"], "fail_reason"].value_counts().to_dict()
    return {"rows": int(len(index)), "ok": int(index["cutout_ok"].sum()), "fail_reasons": reasons,
            "shards": sorted(written)}


def build_cutouts(spark, sweeps: list[str], manifest_path: str, spec: dict, store_dir: str, index_paths: dict) -> list[dict]:
    def task(key: str):
        try:
            manifest = pd.read_parquet(manifest_path)
            info = cutouts_one_partition(key, manifest, spec, store_dir, index_paths[key])
            return status_batch(key, True, info["rows"], payload=json.dumps(info))
        except Exception as exc:
            return status_batch(key, False, error=f"{type(exc).__name__}: {exc}")

    return run_tasks(spark, sweeps, task, sizes=task_sizes(
        lambda: pd.read_parquet(manifest_path, columns=["sweep"])["sweep"].value_counts().to_dict()))


def features_one_partition(index_path: str, store_dir: str, sat_threshold: float) -> pd.DataFrame:
    from lensaudit.cutouts.features import FEATURES, store_features_table
    from lensaudit.cutouts.store import CutoutReader

    index = pd.read_parquet(index_path)
    ok = index[index["cutout_ok"]]
    if ok.empty:
        return pd.DataFrame(columns=["galaxy_id", "label", "split", *FEATURES])
    out = store_features_table(CutoutReader(store_dir), ok, sat_threshold)
    out.insert(0, "split", ok["split"].to_numpy())
    out.insert(0, "label", ok["label"].to_numpy())
    out.insert(0, "galaxy_id", ok["galaxy_id"].to_numpy())
    return out


def build_features(spark, index_paths: dict, store_dir: str, sat_threshold: float) -> tuple[list[dict], pd.DataFrame]:
    import base64
    import io

    def task(key: str):
        try:
            df = features_one_partition(index_paths[key], store_dir, sat_threshold)
            buf = io.BytesIO()
            df.to_parquet(buf, index=False)
            return status_batch(key, True, len(df), payload=base64.b64encode(buf.getvalue()).decode())
        except Exception as exc:
            return status_batch(key, False, error=f"{type(exc).__name__}: {exc}")

    import pyarrow.parquet as pq

    sizes = task_sizes(lambda: {k: pq.ParquetFile(p).metadata.num_rows for k, p in index_paths.items()})
    rows = run_tasks(spark, sorted(index_paths), task, sizes=sizes)
    frames = [pd.read_parquet(io.BytesIO(base64.b64decode(r["payload"]))) for r in rows if r["ok"] and r["n_rows"]]
    for r in rows:
        r["payload"] = ""
    feats = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return rows, feats.sort_values("galaxy_id", kind="stable").reset_index(drop=True) if len(feats) else feats
