"""Sweep FITS -> per-sweep Parquet (the ``sweep_catalog`` asset), one Spark task per file."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa

from lensaudit.spark_jobs.common import run_tasks, status_batch

SWEEP_EXTRA = [
    pa.field("galaxy_id", pa.string(), metadata={"description": "<brickname>_<objid>"}),
    pa.field("sweep", pa.string(), metadata={"description": "sweep file name the row came from"}),
]


def sweep_table_schema() -> pa.Schema:
    from lensaudit.survey.schema import SWEEP_SCHEMA

    fields = list(SWEEP_SCHEMA) + [pa.field("brick_primary", pa.bool_(), metadata={"description": "primary in its brick"})]
    return pa.schema(fields + SWEEP_EXTRA)


def convert_one_sweep(sweep_file: str, source_path: str, out_path: str) -> dict:
    """Read one sweep FITS file and write it as Parquet at ``out_path`` (atomic)."""
    import numpy as np

    from lensaudit.store import write_parquet_atomic
    from lensaudit.survey.reader import read_catalog
    from lensaudit.survey.schema import galaxy_id

    read = read_catalog(source_path)  # DR10 DECam rows; the others counted by reason
    table = read.table
    gid = [galaxy_id(b, o) for b, o in zip(table.column("brickname").to_pylist(), table.column("objid").to_pylist())]
    table = table.append_column(SWEEP_EXTRA[0], pa.array(gid, pa.string()))
    table = table.append_column(SWEEP_EXTRA[1], pa.array(np.full(table.num_rows, sweep_file), pa.string()))
    n_invalid = int((~(np.isfinite(table.column("ra").to_numpy()) & np.isfinite(table.column("dec").to_numpy()))).sum())
    write_parquet_atomic(table, out_path, schema=sweep_table_schema())
    return {"rows": table.num_rows, "invalid_coords": n_invalid,
            "duplicate_galaxy_id": int(len(gid) - len(set(gid))),
            "rows_read": read.n_read, "removed_not_dr10_decam": read.removed}


def write_mock_sweep_file(sweep_file: str, mock: dict) -> str:
    """Write (or reuse) the mock sweep ``sweep_file`` as ``resources.sweeps.SweepSource.mock_writer``
    describes it; returns its path (the same bytes as the driver would write)."""
    from lensaudit.catalogs.lenscat_catalog import load_lenscat
    from lensaudit.mock.config import MockSkyConfig
    from lensaudit.mock.writer import write_mock_sweep

    return str(write_mock_sweep(MockSkyConfig.from_dict(mock["config"]), sweep_file, Path(mock["sweep_dir"]),
                                Path(mock["truth_dir"]), load_lenscat()))


def convert_sweeps(spark, jobs: dict[str, tuple[str, str]], mock: dict | None = None) -> list[dict]:
    """jobs: sweep_file -> (source_path, out_path).  With ``mock`` (the mock sky's
    ``SweepSource.mock_writer``) each task writes its mock sweep file first, at source_path.
    Returns one status row per sweep."""

    def task(key: str):
        src, out = jobs[key]
        try:
            if mock is not None:
                written = write_mock_sweep_file(key, mock)
                if Path(written) != Path(src):
                    raise ValueError(f"the mock sweep was written to {written}, the job reads {src}")
            info = convert_one_sweep(key, src, out)
            return status_batch(key, True, info["rows"], payload=json.dumps(info))
        except Exception as exc:  # reported per sweep, the asset fails on it
            return status_batch(key, False, error=f"{type(exc).__name__}: {exc}")

    return run_tasks(spark, list(jobs), task)
