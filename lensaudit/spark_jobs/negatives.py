"""Negative pools (the ``negative_pool`` asset): one Spark task per sweep partition.

Each task reads the sweep's Parquet, runs ``lensaudit.sampling.pools`` over the whole
sweep (the bright-neighbour proxy needs all of its rows), and writes atomically the
pool rows (one per galaxy and pool) and the per-cut removal counters.
"""

from __future__ import annotations

import json

import pyarrow as pa

from lensaudit.spark_jobs.common import run_tasks, status_batch
from lensaudit.spark_jobs.sweeps import sweep_table_schema

POOL_EXTRA = [
    pa.field("pool", pa.string(), metadata={"description": "N1 (Paper IV parity) or N2 (hard confuser)"}),
    pa.field("confuser_category", pa.string(), metadata={"description": "first N2 proxy that holds ('' for none)"}),
    pa.field("confuser_flags", pa.string(), metadata={"description": "every N2 proxy that holds, '|'-joined"}),
    pa.field("mag_z", pa.float64(), metadata={"description": "AB magnitude of flux_z, observed (not dereddened) [AB mag]"}),
]
COUNTS_SCHEMA = pa.schema([
    pa.field("sweep", pa.string(), metadata={"description": "sweep file"}),
    pa.field("pool", pa.string(), metadata={"description": "N1 or N2"}),
    pa.field("step", pa.int32(), metadata={"description": "order of the cut in the cascade (0 = rows in)"}),
    pa.field("cut", pa.string(), metadata={"description": "cut name (rows_in, removed_<cut>, kept)"}),
    pa.field("n_rows", pa.int64(), metadata={"description": "rows [count]"}),
])


def pool_table_schema() -> pa.Schema:
    return pa.schema(list(sweep_table_schema()) + POOL_EXTRA)


_INDEX_CACHE: dict = {}


def _lens_index(key: str, ra, dec):
    from lensaudit.sampling.exclusion import LensNeighbourIndex

    if key not in _INDEX_CACHE:
        _INDEX_CACHE.clear()
        _INDEX_CACHE[key] = LensNeighbourIndex(ra, dec)
    return _INDEX_CACHE[key]


def pool_one_sweep(sweep_table: pa.Table, lens_index, cuts) -> tuple[pa.Table, pa.Table]:
    """(pool rows, counters) for one sweep's Arrow table."""
    import numpy as np

    from lensaudit.sampling.confusers import category_names, flag_names
    from lensaudit.sampling.pools import N1_CUT_ORDER, N2_CUT_ORDER, classify_negatives, removal_counts

    cols = {name: sweep_table.column(name).to_numpy(zero_copy_only=False) for name in sweep_table.column_names}
    res = classify_negatives(cols, lens_index, cuts)
    sweep = cols["sweep"][0] if sweep_table.num_rows else ""
    parts, count_rows = [], []
    for pool, status, order in (("N1", res["n1_code"], N1_CUT_ORDER), ("N2", res["n2_code"], N2_CUT_ORDER)):
        keep = np.flatnonzero(status == 0)
        t = sweep_table.take(pa.array(keep))
        t = t.append_column(POOL_EXTRA[0], pa.array(np.full(len(keep), pool), pa.string()))
        cat = category_names(res["confuser_code"][keep]) if pool == "N2" else np.full(len(keep), "", dtype=object)
        flags = flag_names(res["confuser_flag_bits"][keep])
        t = t.append_column(POOL_EXTRA[1], pa.array(cat.astype(str), pa.string()))
        t = t.append_column(POOL_EXTRA[2], pa.array(flags.astype(str), pa.string()))
        t = t.append_column(POOL_EXTRA[3], pa.array(res["mag_z"][keep], pa.float64()))
        parts.append(t)
        counts = removal_counts(status, order)
        for step, (cut, n) in enumerate(counts.items()):
            count_rows.append({"sweep": sweep, "pool": pool, "step": step, "cut": cut, "n_rows": n})
    pool_table = pa.concat_tables(parts).cast(pool_table_schema())
    pool_table = pool_table.sort_by([("galaxy_id", "ascending"), ("pool", "ascending")])
    return pool_table, pa.Table.from_pylist(count_rows, schema=COUNTS_SCHEMA)


def build_negative_pools(spark, jobs: dict[str, tuple[str, str, str]], lens_ra, lens_dec, cuts) -> list[dict]:
    """jobs: sweep -> (sweep parquet, pool out path, counts out path)."""
    import numpy as np

    bc = spark.sparkContext.broadcast((np.asarray(lens_ra, float), np.asarray(lens_dec, float)))
    index_key = f"{len(lens_ra)}:{float(np.nansum(lens_ra)):.9f}:{float(np.nansum(lens_dec)):.9f}"

    def task(key: str):
        import pyarrow.parquet as pq

        from lensaudit.store import write_parquet_atomic

        src, out_pool, out_counts = jobs[key]
        try:
            ra, dec = bc.value
            table = pq.read_table(src)
            pool, counts = pool_one_sweep(table, _lens_index(index_key, ra, dec), cuts)
            write_parquet_atomic(pool, out_pool, schema=pool_table_schema())
            write_parquet_atomic(counts, out_counts, schema=COUNTS_SCHEMA)
            return status_batch(key, True, pool.num_rows, payload=json.dumps(counts.to_pylist()))
        except Exception as exc:
            return status_batch(key, False, error=f"{type(exc).__name__}: {exc}")

    return run_tasks(spark, list(jobs), task)
