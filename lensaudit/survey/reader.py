"""Read Legacy Surveys Tractor / sweep FITS tables into Arrow tables.

Columns come back lower-case, strings stripped of FITS padding, with the dtypes of
``lensaudit.survey.schema.SWEEP_SCHEMA``.  A file missing any required column raises
``SchemaError`` naming the file and every missing column.  Rows with
``brick_primary == False`` (Tractor files only; sweeps hold primary rows only) are kept
and flagged, never dropped here.
"""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa

from lensaudit.survey.schema import OPTIONAL_COLUMNS, REQUIRED_COLUMNS, SWEEP_SCHEMA, SchemaError


def _column_names(hdu) -> list[str]:
    return [c.name for c in hdu.columns]


def read_catalog_fits(path: str | os.PathLike, hdu: int = 1, columns: tuple[str, ...] = REQUIRED_COLUMNS) -> pa.Table:
    """Read ``columns`` (lower-case names) of a Tractor/sweep FITS file as an Arrow table.

    Adds ``brick_primary`` (bool, True when absent from the file, as in sweeps).
    """
    from astropy.io import fits

    path = os.fspath(path)
    try:
        remote = "://" in path
        hdul = fits.open(path, memmap=not remote, use_fsspec=remote)
    except Exception as exc:  # astropy raises OSError/TypeError/ValueError on corrupt files
        raise SchemaError(f"{path}: cannot be read as FITS ({type(exc).__name__}: {exc})") from exc
    with hdul:
        if len(hdul) <= hdu or not hasattr(hdul[hdu], "columns"):
            raise SchemaError(f"{path}: HDU {hdu} is not a binary table")
        table_hdu = hdul[hdu]
        by_lower = {n.lower(): n for n in _column_names(table_hdu)}
        missing = [c for c in columns if c not in by_lower]
        if missing:
            raise SchemaError(f"{path}: missing required columns {missing}")
        data = table_hdu.data
        n = 0 if data is None else len(data)
        arrays, fields = [], []
        for name in columns:
            field = SWEEP_SCHEMA.field(name)
            raw = np.asarray(data[by_lower[name]]) if n else np.array([])
            if raw.ndim > 1:
                raise SchemaError(f"{path}: column {name} is not scalar (shape {raw.shape[1:]})")
            if pa.types.is_string(field.type):
                arr = pa.array(np.char.strip(raw.astype(str)) if n else [], type=pa.string())
            else:
                arr = pa.array(raw.astype(field.type.to_pandas_dtype(), copy=False) if n else [], type=field.type)
            arrays.append(arr)
            fields.append(field)
        primary_name = by_lower.get(OPTIONAL_COLUMNS[0])
        if primary_name is not None and n:
            primary = pa.array(np.asarray(data[primary_name]).astype(bool))
        else:
            primary = pa.array(np.ones(n, dtype=bool))
        arrays.append(primary)
        fields.append(pa.field("brick_primary", pa.bool_(), metadata={"description": "primary in its brick"}))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))
