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


def task_sizes(count) -> dict[str, float] | None:
    """``count()`` (work per key, for ``run_tasks``' scheduling), or None when it cannot be
    counted here (e.g. a store this driver cannot list): the order is a hint, and a task that
    cannot read its input reports that itself."""
    try:
        return count()
    except Exception:  # noqa: BLE001 - scheduling hint only; the tasks report their own errors
        return None


def run_tasks(spark, keys: list[str], task_fn, sizes: dict[str, float] | None = None) -> list[dict]:
    """Run ``task_fn(key) -> RecordBatch(STATUS_SCHEMA)`` once per key, one Spark task
    per key, and return the status rows sorted by key.  ``task_fn`` must catch its own
    errors and report them in the status row (nothing is lost silently).  ``sizes`` (work
    per key, e.g. rows) schedules the largest tasks first (longest-processing-time order: the
    last task to start is a small one, so no core waits long for a straggler); without it
    tasks start in key order."""
    if not keys:
        return []
    ordered = sorted(keys)
    if sizes:
        ordered.sort(key=lambda k: -float(sizes.get(k, 0)))  # stable: equal sizes stay in key order
    # exactly one key per partition, started in partition order (``spark.range`` splits evenly;
    # hashing keys into partitions, as ``repartition(n, "key")`` does, put 3 of the demo's 10
    # sweeps in one task and left 4 empty)
    df = spark.range(0, len(ordered), 1, len(ordered))

    def _map(batches):
        for batch in batches:
            for i in batch.column("id").to_pylist():
                yield task_fn(ordered[i])

    rows = df.mapInArrow(_map, spark_schema(STATUS_SCHEMA)).collect()
    return sorted((r.asDict() for r in rows), key=lambda r: r["key"])
