"""Read Legacy Surveys Tractor / sweep FITS tables into Arrow tables, strictly.

Columns come back lower-case, strings stripped of FITS padding, with the dtypes of
``lensaudit.survey.schema.SWEEP_SCHEMA``.  Nothing is converted silently:

* a file missing any required column raises ``SchemaError`` naming the file and every
  missing column;
* a column whose values cannot be stored in the schema type without changing them raises
  ``SchemaError`` naming the column and the offending rows (0-based row numbers in the
  FITS table): integers outside the target range (an int32 ``NOBS_Z`` of 40002 would wrap
  to -25534 in int16), NaN or non-integer values in an integer column (NaN would become 0,
  2.7 would become 2), anything but a FITS logical in a boolean column (the string 'F'
  would become True), non-character data in a string column, finite values beyond the
  float32 range in a float32 column.  Every column is checked before anything is
  returned, and one error lists all problems of the file.

NaN stays allowed in floating-point columns (real catalogues carry it, and rows with NaN
coordinates are counted downstream).

Only DR10 DECam rows are returned by default (``RELEASE`` in ``DR10_DECAM_RELEASES`` and,
where the file has a ``PHOTSYS`` column, ``PHOTSYS == 'S'``); the other rows are counted by
reason (``CatalogRead.removed``), never dropped silently.  Rows with
``brick_primary == False`` (Tractor files only; sweeps hold primary rows only) are kept
and flagged, never dropped here.
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from lensaudit.survey.schema import (
    DR10_DECAM_RELEASES,
    NORTH_RELEASES,
    OLD_DECAM_RELEASES,
    OPTIONAL_COLUMNS,
    REQUIRED_COLUMNS,
    SWEEP_SCHEMA,
    SchemaError,
)

#: at most this many offending rows are listed per problem (the count is always given)
MAX_ROWS_LISTED = 10

#: removal reasons of the RELEASE / PHOTSYS check
REASON_NORTH = "north_bass_mzls"
REASON_OLD_DECAM = "decam_not_dr10"
REASON_UNKNOWN = "unknown_release"
REASON_PHOTSYS = "photsys_not_south"

#: schema metadata keys of ``read_catalog_fits`` tables (the counts of ``CatalogRead``)
META_ROWS_READ = b"lensaudit.rows_read"
META_ROWS_REMOVED = b"lensaudit.rows_removed"

_BRICK_PRIMARY = pa.field("brick_primary", pa.bool_(), metadata={"description": "primary in its brick"})


@dataclass(frozen=True)
class CatalogRead:
    """A strictly read catalogue file.

    table: the kept rows (schema columns + ``brick_primary``);
    n_read: rows in the file;
    removed: rows not kept, by reason (``north_bass_mzls``, ``decam_not_dr10``,
        ``unknown_release``, ``photsys_not_south``); empty when none were removed.
    """

    table: pa.Table
    n_read: int
    removed: dict[str, int] = field(default_factory=dict)

    @property
    def n_removed(self) -> int:
        return int(sum(self.removed.values()))


def _rows(mask: np.ndarray) -> str:
    idx = np.flatnonzero(mask)
    shown = ", ".join(str(int(i)) for i in idx[:MAX_ROWS_LISTED])
    more = f", ... ({len(idx)} rows)" if len(idx) > MAX_ROWS_LISTED else ""
    return f"rows [{shown}{more}]"


def _values(raw: np.ndarray, mask: np.ndarray) -> str:
    vals = raw[mask][:MAX_ROWS_LISTED]
    return "values [" + ", ".join(repr(v.item() if hasattr(v, "item") else v) for v in vals) + "]"


def _stored_as(raw: np.ndarray, fits_format: str) -> str:
    return f"stored as {raw.dtype.name} (FITS format {fits_format!r})"


def column_problems(name: str, raw: np.ndarray, target: pa.DataType, fits_format: str = "?",
                    tnull=None) -> list[str]:
    """Why ``raw`` (one FITS column) cannot become ``target`` unchanged; [] when it can."""
    kind = raw.dtype.kind
    out: list[str] = []
    if pa.types.is_string(target):
        if kind not in "SU":
            out.append(f"{_stored_as(raw, fits_format)}, expected a character column")
        return out
    if pa.types.is_boolean(target):
        if kind != "b":
            out.append(f"{_stored_as(raw, fits_format)}, expected a FITS logical (L) column; "
                       f"{_rows(np.ones(len(raw), bool))} hold {_values(raw, np.ones(len(raw), bool))}")
        return out
    if pa.types.is_integer(target):
        info = np.iinfo(target.to_pandas_dtype())
        if kind in "iu":
            bad = (raw < info.min) | (raw > info.max)
            if bad.any():
                out.append(f"{_rows(bad)} hold {_values(raw, bad)} outside the {target} range "
                           f"[{info.min}, {info.max}] (they would wrap around)")
            if tnull is not None:
                null = raw == tnull
                if null.any():
                    out.append(f"{_rows(null)} are null (TNULL={tnull}) in an integer column")
            return out
        if kind == "f":
            nonfinite = ~np.isfinite(raw)
            frac = np.isfinite(raw) & (raw != np.round(raw))
            big = np.isfinite(raw) & ((raw < info.min) | (raw > info.max))
            parts = [f"{_stored_as(raw, fits_format)}, expected {target}"]
            if nonfinite.any():
                parts.append(f"NaN/inf at {_rows(nonfinite)}")
            if frac.any():
                parts.append(f"non-integer {_values(raw, frac)} at {_rows(frac)}")
            if big.any():
                parts.append(f"{_values(raw, big)} at {_rows(big)} outside the {target} range")
            out.append("; ".join(parts))
            return out
        out.append(f"{_stored_as(raw, fits_format)}, expected {target}")
        return out
    if pa.types.is_floating(target):
        if kind not in "fiu":
            out.append(f"{_stored_as(raw, fits_format)}, expected {target}")
            return out
        if kind == "f" and target == pa.float32() and raw.dtype.itemsize > 4:
            over = np.isfinite(raw) & (np.abs(raw) > np.finfo(np.float32).max)
            if over.any():
                out.append(f"{_rows(over)} hold {_values(raw, over)} beyond the float32 range (they would become inf)")
        return out
    out.append(f"unsupported schema type {target}")  # a schema change the reader does not know
    return out


def release_removal_reasons(release: np.ndarray, photsys: np.ndarray | None = None,
                            releases: Collection[int] = DR10_DECAM_RELEASES) -> np.ndarray:
    """Per-row reason for dropping a row that is not DR10 DECam ("" = keep).

    release: RELEASE codes (https://www.legacysurvey.org/release/);
    photsys: optional PHOTSYS letters ('S' south/DECam, 'N' north/BASS+MzLS), as in
        desitarget-style files; real Legacy Surveys sweeps carry no PHOTSYS column.
    """
    release = np.asarray(release).astype(np.int64)
    reasons = np.full(release.shape, "", dtype=object)
    north = np.isin(release, list(NORTH_RELEASES))
    if photsys is not None:
        ps = np.char.upper(np.char.strip(np.asarray(photsys).astype(str)))
        north |= ps == "N"
    else:
        ps = None
    reasons[north] = REASON_NORTH
    old = ~north & np.isin(release, list(OLD_DECAM_RELEASES))
    reasons[old] = REASON_OLD_DECAM
    unknown = ~north & ~old & ~np.isin(release, list(releases))
    reasons[unknown] = REASON_UNKNOWN
    if ps is not None:
        reasons[(reasons == "") & (ps != "S")] = REASON_PHOTSYS
    return reasons


def read_catalog(path: str | os.PathLike, hdu: int = 1, columns: tuple[str, ...] = REQUIRED_COLUMNS,
                 releases: Collection[int] | None = DR10_DECAM_RELEASES) -> CatalogRead:
    """Strictly read ``columns`` (lower-case names) of a Tractor/sweep FITS file.

    ``releases``: RELEASE codes to keep (default: DR10 DECam); ``None`` keeps every row
    (no RELEASE/PHOTSYS check).  Adds ``brick_primary`` (bool, True when absent from the
    file, as in sweeps).  Raises ``SchemaError`` on an unreadable file, missing columns or
    any value that the schema type would change (see the module docstring).
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
        fits_cols = {c.name.lower(): c for c in table_hdu.columns}
        wanted = tuple(columns) + (("release",) if releases is not None and "release" not in columns else ())
        missing = [c for c in wanted if c not in fits_cols]
        if missing:
            raise SchemaError(f"{path}: missing required columns {missing}")
        data = table_hdu.data
        n = 0 if data is None else len(data)

        def raw_of(name: str) -> np.ndarray:
            return np.asarray(data[fits_cols[name].name]) if n else np.array([])

        problems: list[str] = []
        raws: dict[str, np.ndarray] = {}
        for name in wanted:
            raw = raw_of(name)
            if raw.ndim > 1:
                problems.append(f"column {name} is not scalar (shape {raw.shape[1:]})")
                continue
            col = fits_cols[name]
            if n:
                for p in column_problems(name, raw, SWEEP_SCHEMA.field(name).type, str(col.format), col.null):
                    problems.append(f"column {name}: {p}")
            raws[name] = raw
        primary_name = OPTIONAL_COLUMNS[0]
        primary = None
        if primary_name in fits_cols and n:
            primary = raw_of(primary_name)
            for p in column_problems(primary_name, primary, pa.bool_(), str(fits_cols[primary_name].format)):
                problems.append(f"column {primary_name}: {p}")
        photsys = None
        if releases is not None and "photsys" in fits_cols and n:
            photsys = raw_of("photsys")
            for p in column_problems("photsys", photsys, pa.string(), str(fits_cols["photsys"].format)):
                problems.append(f"column photsys: {p}")
        if problems:
            raise SchemaError(f"{path}: {len(problems)} column problem(s): " + " | ".join(problems))

        keep = np.ones(n, dtype=bool)
        removed: dict[str, int] = {}
        if releases is not None and n:
            reasons = release_removal_reasons(raws["release"], photsys, releases)
            keep = reasons == ""
            labels, counts = np.unique(reasons[~keep].astype(str), return_counts=True)
            removed = {str(k): int(v) for k, v in zip(labels, counts)}

        arrays, fields = [], []
        for name in columns:
            fld = SWEEP_SCHEMA.field(name)
            raw = raws[name][keep] if n else raws[name]
            if pa.types.is_string(fld.type):
                arr = pa.array(np.char.strip(raw.astype(str)) if n else [], type=pa.string())
            else:
                arr = pa.array(raw.astype(fld.type.to_pandas_dtype()) if n else [], type=fld.type)
            arrays.append(arr)
            fields.append(fld)
        arrays.append(pa.array(primary[keep].astype(bool) if primary is not None else np.ones(int(keep.sum()), bool)))
        fields.append(_BRICK_PRIMARY)
    return CatalogRead(pa.Table.from_arrays(arrays, schema=pa.schema(fields)), n, removed)


def read_catalog_fits(path: str | os.PathLike, hdu: int = 1, columns: tuple[str, ...] = REQUIRED_COLUMNS,
                      releases: Collection[int] | None = DR10_DECAM_RELEASES) -> pa.Table:
    """``read_catalog(...).table``, with the row counts in the schema metadata
    (``lensaudit.rows_read``: int, ``lensaudit.rows_removed``: JSON {reason: rows})."""
    res = read_catalog(path, hdu, columns, releases)
    meta = {META_ROWS_READ: str(res.n_read).encode(), META_ROWS_REMOVED: json.dumps(res.removed, sort_keys=True).encode()}
    return res.table.replace_schema_metadata(meta)


def removed_counts(table: pa.Table) -> dict[str, int]:
    """The ``rows_removed`` counts a ``read_catalog_fits`` table carries ({} if none)."""
    meta = table.schema.metadata or {}
    return json.loads(meta.get(META_ROWS_REMOVED, b"{}"))
