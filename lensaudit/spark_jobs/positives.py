"""Crossmatch of the lens catalogue to the sweep rows (the ``positives`` asset).

One Spark task per sweep finds, for each lens inside the sweep's box (plus the match
radius), the nearest primary row; the driver keeps each lens's nearest candidate over
all sweeps (``lensaudit.catalogs.crossmatch.resolve_matches``).
"""

from __future__ import annotations

import io

import pyarrow as pa

from lensaudit.arrow_fields import described as _f
from lensaudit.spark_jobs.common import run_tasks, status_batch
from lensaudit.spark_jobs.sweeps import sweep_table_schema

_LENS_PART = [
    _f("lens_id", pa.string(), "lenscat entry"),
    _f("lens_name", pa.string(), "lenscat name"),
    _f("lens_ra", pa.float64(), "lenscat right ascension [deg]"),
    _f("lens_dec", pa.float64(), "lenscat declination [deg]"),
    _f("grading", pa.string(), "confident or probable"),
    _f("tier", pa.string(), "A or B"),
    _f("sample_weight", pa.float64(), "loss weight: 1.0 (A), 0.5 (B)"),
]
POSITIVES_SCHEMA = pa.schema(_LENS_PART + [_f("sep_arcsec", pa.float64(), "lens to Tractor row separation [arcsec]")]
                             + list(sweep_table_schema()))
UNMATCHED_SCHEMA = pa.schema(_LENS_PART + [_f("reason", pa.string(), "why no Tractor row was matched")])


def candidates_one_sweep(sweep_table: pa.Table, lens_id, lens_ra, lens_dec, radius_arcsec: float) -> pa.Table:
    import numpy as np

    from lensaudit.catalogs.crossmatch import nearest_rows

    primary = sweep_table.filter(sweep_table.column("brick_primary"))
    ra = primary.column("ra").to_numpy()
    dec = primary.column("dec").to_numpy()
    idx, sep = nearest_rows(lens_ra, lens_dec, ra, dec, radius_arcsec)
    hit = np.flatnonzero(idx >= 0)
    rows = primary.take(pa.array(idx[hit]))
    rows = rows.append_column("lens_id", pa.array(np.asarray(lens_id)[hit].astype(str), pa.string()))
    return rows.append_column("sep_arcsec", pa.array(sep[hit], pa.float64()))


def crossmatch_lenses(spark, sweep_files: dict[str, str], lenses, radius_arcsec: float) -> tuple[list[dict], list[pa.Table]]:
    """sweep_files: sweep -> sweep parquet.  Returns (status rows, candidate tables)."""
    import numpy as np

    lens_arrays = (lenses["lens_id"].to_numpy().astype(str), lenses["ra"].to_numpy(float), lenses["dec"].to_numpy(float))
    bc = spark.sparkContext.broadcast(lens_arrays)

    def task(key: str):
        import pyarrow.parquet as pq

        from lensaudit.survey.sweeps import parse_sweep_name

        try:
            lid, lra, ldec = bc.value
            box = parse_sweep_name(key)
            margin = radius_arcsec / 3600.0
            near = ((lra >= box.ra1 - margin / max(np.cos(np.deg2rad(box.dec2)), 1e-3)) & (lra < box.ra2 + margin)
                    & (ldec >= box.dec1 - margin) & (ldec < box.dec2 + margin))
            table = pq.read_table(sweep_files[key])
            cand = candidates_one_sweep(table, lid[near], lra[near], ldec[near], radius_arcsec)
            sink = io.BytesIO()
            with pa.ipc.new_stream(sink, cand.schema) as w:
                w.write_table(cand)
            import base64

            return status_batch(key, True, cand.num_rows, payload=base64.b64encode(sink.getvalue()).decode())
        except Exception as exc:
            return status_batch(key, False, error=f"{type(exc).__name__}: {exc}")

    rows = run_tasks(spark, list(sweep_files), task)
    tables = []
    import base64

    for r in rows:
        if r["ok"]:
            tables.append(pa.ipc.open_stream(base64.b64decode(r["payload"])).read_all())
            r["payload"] = ""
    return rows, tables
