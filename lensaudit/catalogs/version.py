"""The lens catalogue's version: a fingerprint of the known-lens table ``lens_catalog`` writes.

The fingerprint is ``lenscat==<package version>;sha256=<hex>``: the installed lenscat release
plus a sha256 of the table's values, so that a new lenscat release, a regraded, moved or added
lens, or a changed mock-sky supplement all give a new fingerprint.  The table is the one built
by ``lensaudit.lens_catalog_table.lens_catalog_table`` (galaxy-scale known lenses in the columns
of ``LENS_CATALOG_SCHEMA``).

The sha256 is taken over the table as CSV text (header and columns in the table's order, rows
in its order, floats written with the shortest repr that round-trips, missing values as
``<NA>``), so it depends on the values only, not on a Parquet or Arrow writer version.
"""

from __future__ import annotations

import hashlib
from importlib.metadata import version

import pandas as pd

#: how a missing value is written in the hashed text (distinct from an empty string)
_NA_TEXT = "<NA>"


def table_sha256(table: pd.DataFrame) -> str:
    """sha256 (hex) of a table's column names and values, in its column and row order."""
    if not isinstance(table, pd.DataFrame) or table.columns.empty:
        raise ValueError("lens catalogue fingerprint: expected a table with columns")
    text = table.to_csv(index=False, lineterminator="\n", na_rep=_NA_TEXT)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def lenscat_version() -> str:
    """The installed lenscat package's version."""
    return version("lenscat")


def catalogue_fingerprint(table: pd.DataFrame) -> str:
    """``lenscat==<version>;sha256=<hex of the table>``: the lens catalogue's version."""
    return f"lenscat=={lenscat_version()};sha256={table_sha256(table)}"
