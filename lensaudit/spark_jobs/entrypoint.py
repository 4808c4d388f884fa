"""Every Spark job of lensaudit as ``job(spark, **json_args) -> summary dict``.

Arguments and results are JSON-serialisable (paths, numbers), so the same job runs
in-process on a local SparkSession or as an EMR step through Dagster Pipes
(``python -m lensaudit.spark_jobs.entrypoint --job NAME --args-json '{...}'``), where
the summary is reported back with ``dagster_pipes``.

Assets call a job as a typed function, ``spark.run(context, cutouts_job, sweeps=..., ...)``
(``resources.spark.SparkResource.run``): go-to-definition reaches the job and a type checker
checks the arguments against its signature (``ParamSpec``); ``wire_call`` binds them to the
signature at run time as well, so a wrong or missing argument fails before any engine
starts.  ``JOBS`` is the one mapping between a job function and its wire name, the name an
EMR step carries on its command line with the JSON arguments.
"""

from __future__ import annotations

import argparse
import inspect
import json
from typing import Any, Callable

import numpy as np
import pandas as pd


def sweep_catalog_job(spark, jobs: dict[str, list[str]], mock: dict | None = None) -> dict:
    """``jobs``: sweep key -> [sweep FITS path, output Parquet path]; ``mock``: the mock sky's
    ``SweepSource.mock_writer`` when the tasks write the mock sweep files (local sessions)."""
    from lensaudit.spark_jobs.sweeps import convert_sweeps

    rows = convert_sweeps(spark, {k: tuple(v) for k, v in jobs.items()}, mock)
    return {"tasks": rows}


def negative_pool_job(spark, jobs: dict[str, list[str]], cuts: dict[str, Any], mock_profile: str | None = None) -> dict:
    """``jobs``: sweep key -> [sweep_catalog partition, pool output, filter-counts output];
    ``cuts``: the fields of ``lensaudit.sampling.pools.NegativeCuts``; ``mock_profile``: the run's
    profile name when the sweeps are the mock sky, whose own known lenses
    (``lensaudit.mock.lens_supplement``) are excluded around as well as lenscat's."""
    from lensaudit.catalogs.lenscat_catalog import load_lenscat
    from lensaudit.config import get_profile
    from lensaudit.mock.lens_supplement import known_lenses
    from lensaudit.sampling.pools import NegativeCuts
    from lensaudit.spark_jobs.negatives import build_negative_pools

    cuts_obj = NegativeCuts(**{k: tuple(v) if isinstance(v, list) else v for k, v in cuts.items()})
    lenses = known_lenses(load_lenscat(), get_profile(mock_profile).mock if mock_profile else None)
    rows = build_negative_pools(spark, {k: tuple(v) for k, v in jobs.items()}, lenses["ra"], lenses["dec"], cuts_obj)
    return {"tasks": rows, "lenscat_entries_excluded_around": int(len(lenses))}


def positives_job(spark, sweep_files: dict[str, str], lens_catalog: str, radius_arcsec: float,
                  out_matched: str, out_unmatched: str) -> dict:
    import pyarrow as pa

    from lensaudit.catalogs.crossmatch import resolve_matches
    from lensaudit.spark_jobs.positives import crossmatch_lenses
    from lensaudit.store import write_parquet_atomic
    from lensaudit.survey.sweeps import parse_sweep_name
    from lensaudit.spark_jobs.positives import POSITIVES_SCHEMA, UNMATCHED_SCHEMA

    lenses = pd.read_parquet(lens_catalog)
    rows, tables = crossmatch_lenses(spark, sweep_files, lenses, radius_arcsec)
    failed = [r for r in rows if not r["ok"]]
    if failed:
        return {"tasks": rows}
    covered = np.zeros(len(lenses), dtype=bool)
    for sweep in sweep_files:
        covered |= parse_sweep_name(sweep).contains(lenses["ra"].to_numpy(), lenses["dec"].to_numpy())
    cand = pa.concat_tables(tables).to_pandas() if tables else pd.DataFrame(columns=["lens_id", "galaxy_id", "sep_arcsec"])
    lens_part = lenses.rename(columns={"ra": "lens_ra", "dec": "lens_dec"})
    matched, unmatched = resolve_matches(lens_part.assign(ra=lenses["ra"], dec=lenses["dec"]), cand, covered)
    write_parquet_atomic(matched[POSITIVES_SCHEMA.names], out_matched, schema=POSITIVES_SCHEMA)
    write_parquet_atomic(unmatched[UNMATCHED_SCHEMA.names], out_unmatched, schema=UNMATCHED_SCHEMA)
    return {"tasks": rows, "matched": int(len(matched)), "unmatched": int(len(unmatched)),
            "covered": int(covered.sum())}


def training_manifest_inputs(home, profile) -> dict[str, Any]:
    """``training_manifest_job``'s arguments, outputs apart, for a home whose positives, spatial splits
    and negative pool are materialised and a ``lensaudit.config.Profile`` (the ``training_manifest``
    asset and ``bench/bench_spark_jvm.py`` run the job with the same ones)."""
    from pathlib import Path

    from lensaudit.store import asset_files, partition_file

    home = Path(home)
    m, cuts = profile.manifest, profile.cuts
    return {"positives": str(partition_file(home, "positives", "data")),
            "splits": [str(f) for f in asset_files(home, "spatial_splits")],
            "pool_files": [str(f) for f in asset_files(home, "negative_pool")],
            "ratio": m.negatives_per_positive, "n2_fraction": m.n2_fraction, "seed": m.seed,
            "parity": {"dec_min": cuts.dec_min_deg, "dec_max": cuts.dec_max_deg, "min_nobs": cuts.min_nobs,
                       "types": list(cuts.types)}}


def training_manifest_job(spark, positives: str, splits: list[str], pool_files: list[str], ratio: int,
                          n2_fraction: float, seed: int, out_manifest: str, out_shortfalls: str,
                          parity: dict[str, Any], out_excluded: str) -> dict:
    """``parity``: dec_min, dec_max, min_nobs, types of the negatives' domain; positives outside
    it are excluded with a reason (``sampling.parity``) and written to ``out_excluded``."""
    from lensaudit.sampling.parity import split_positives
    from lensaudit.spark_jobs.manifest import EXCLUDED_POSITIVES_SCHEMA, SHORTFALL_SCHEMA, build_manifest
    from lensaudit.store import write_parquet_atomic

    pos = pd.read_parquet(positives)
    split_tab = pd.concat([pd.read_parquet(f, columns=["galaxy_id", "split", "healpix_128"]) for f in splits])
    pos = pos.merge(split_tab, on="galaxy_id", how="inner")
    pos, excluded = split_positives(pos, parity["dec_min"], parity["dec_max"], parity["min_nobs"], parity["types"])
    table, shortfalls = build_manifest(spark, pos, pool_files, splits, ratio, n2_fraction, seed)
    write_parquet_atomic(table, out_manifest)
    write_parquet_atomic(shortfalls[SHORTFALL_SCHEMA.names], out_shortfalls, schema=SHORTFALL_SCHEMA)
    write_parquet_atomic(excluded.reindex(columns=EXCLUDED_POSITIVES_SCHEMA.names), out_excluded,
                         schema=EXCLUDED_POSITIVES_SCHEMA)
    return {"rows": table.num_rows, "shortfall_total": int(shortfalls["shortfall"].clip(lower=0).sum()),
            "excluded_positives": int(len(excluded))}


def cutouts_job(spark, sweeps: list[str], manifest: str, spec: dict[str, Any], store_dir: str,
                index_paths: dict[str, str]) -> dict:
    from lensaudit.cutouts.ratelimit import resolve_rate_spec
    from lensaudit.spark_jobs.cutouts import build_cutouts

    # a global rate of the cutout service becomes each node's interval here, from this Spark conf
    spec = resolve_rate_spec(spec, spark.sparkContext.getConf().get)
    out = {"tasks": build_cutouts(spark, sweeps, manifest, spec, store_dir, index_paths)}
    if "nodes" in spec and spec.get("global_rate_per_s"):
        out["http_rate"] = {k: spec.get(k) for k in ("global_rate_per_s", "nodes", "min_interval_s", "node_retry_budget")}
    return out


def shortcut_features_job(spark, index_paths: dict[str, str], store_dir: str, out: str) -> dict:
    from lensaudit.cutouts.features import store_saturation_threshold
    from lensaudit.cutouts.store import CutoutReader
    from lensaudit.spark_jobs.cutouts import build_features
    from lensaudit.store import write_parquet_atomic

    index = pd.concat([pd.read_parquet(p) for p in index_paths.values()], ignore_index=True)
    sat = store_saturation_threshold(index, CutoutReader(store_dir))
    rows, feats = build_features(spark, index_paths, store_dir, sat)
    if all(r["ok"] for r in rows):
        from lensaudit.spark_jobs.cutouts import SHORTCUT_FEATURES_SCHEMA

        write_parquet_atomic(feats[SHORTCUT_FEATURES_SCHEMA.names].astype({"label": "int8"}), out,
                             schema=SHORTCUT_FEATURES_SCHEMA)
    return {"tasks": rows, "rows": int(len(feats)), "saturation_threshold_nmgy": sat,
            "excluded_not_ok": int((~index["cutout_ok"]).sum())}


#: wire name -> job function: the one mapping between the two (EMR steps carry the name)
JOBS: dict[str, Callable[..., dict]] = {
    "sweep_catalog": sweep_catalog_job,
    "negative_pool": negative_pool_job,
    "positives": positives_job,
    "training_manifest": training_manifest_job,
    "cutouts": cutouts_job,
    "shortcut_features": shortcut_features_job,
}


def wire_name(job: Callable[..., dict]) -> str:
    """The name ``job`` travels under (``JOBS``); a function that is not a registered job raises."""
    for name, fn in JOBS.items():
        if fn is job:
            return name
    raise KeyError(f"{getattr(job, '__qualname__', job)!r} is not a Spark job of lensaudit.spark_jobs.entrypoint.JOBS")


def wire_call(job: Callable[..., dict], *args: Any, **kwargs: Any) -> tuple[str, dict[str, Any]]:
    """(wire name, keyword arguments) of the call ``job(spark, *args, **kwargs)``: the arguments
    are bound to the job's signature here (``TypeError`` for a wrong or missing one), so a bad
    call fails before the local session or the EMR step starts."""
    name = wire_name(job)
    params = list(inspect.signature(job).parameters)
    bound = inspect.signature(job).bind(None, *args, **kwargs)
    return name, {k: v for k, v in bound.arguments.items() if k != params[0]}


def run_job(spark, name: str, args: dict) -> dict:
    """Run the job registered as ``name`` (the wire side: the EMR step and the local engine)."""
    if name not in JOBS:
        raise KeyError(f"unknown Spark job {name!r}; known: {sorted(JOBS)}")
    return JOBS[name](spark, **args)


def main(argv=None) -> int:
    """EMR step entry point: runs one job and reports its summary through Dagster Pipes."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--job", required=True, choices=sorted(JOBS))
    parser.add_argument("--args-json", required=True)
    ns = parser.parse_args(argv)
    from dagster_pipes import PipesS3ContextLoader, PipesS3MessageWriter, open_dagster_pipes
    from pyspark.sql import SparkSession

    import boto3

    spark = SparkSession.builder.appName(f"lensaudit-{ns.job}").getOrCreate()
    s3 = boto3.client("s3")
    with open_dagster_pipes(context_loader=PipesS3ContextLoader(client=s3),
                            message_writer=PipesS3MessageWriter(client=s3)) as pipes:
        summary = run_job(spark, ns.job, json.loads(ns.args_json))
        pipes.report_asset_materialization(metadata={"summary": {"raw_value": json.dumps(summary), "type": "json"}})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
