"""Helpers shared by the Spark jobs: Arrow <-> Spark schemas, per-task status rows.

Jobs here take a ``SparkSession``; they never create one (``resources/spark.py`` does).
Imports of heavy libraries happen inside the functions that run on executors, so that
a worker imports what it needs itself (reference/002 section 1.1).
"""

from __future__ import annotations

import pyarrow as pa

STATUS_SCHEMA = pa.schema([
    ("key", pa.string()), ("ok", pa.bool_()), ("n_rows", pa.int64()), ("error", pa.string()), ("payload", pa.string()),
])


def spark_schema(arrow_schema: pa.Schema):
    from pyspark.sql.pandas.types import from_arrow_schema

    return from_arrow_schema(arrow_schema)


def status_batch(key: str, ok: bool, n_rows: int = 0, error: str = "", payload: str = "") -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist([{"key": key, "ok": ok, "n_rows": n_rows, "error": error, "payload": payload}],
                                      schema=STATUS_SCHEMA)


def run_tasks(spark, keys: list[str], task_fn) -> list[dict]:
    """Run ``task_fn(key) -> RecordBatch(STATUS_SCHEMA)`` once per key, one Spark task
    per key, and return the status rows sorted by key.  ``task_fn`` must catch its own
    errors and report them in the status row (nothing is lost silently)."""
    if not keys:
        return []
    df = spark.createDataFrame([(k,) for k in sorted(keys)], "key string").repartition(len(keys), "key")

    def _map(batches):
        for batch in batches:
            for k in batch.column("key").to_pylist():
                yield task_fn(k)

    rows = df.mapInArrow(_map, spark_schema(STATUS_SCHEMA)).collect()
    return sorted((r.asDict() for r in rows), key=lambda r: r["key"])
