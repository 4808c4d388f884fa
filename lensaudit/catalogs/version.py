"""The lens catalogue's version: a fingerprint of the known-lens table ``lens_catalog`` writes.

The table is the galaxy-scale known lenses of a run (``galaxy_lenses`` of lenscat plus, on the
mock sky, the mock supplement: ``lensaudit.mock.lens_supplement.known_lenses``) in the columns
of ``LENS_CATALOG_SCHEMA``.  Its fingerprint is ``lenscat==<package version>;sha256=<hex>``: the
installed lenscat release plus a sha256 of the table's values, so that a new lenscat release, a
regraded or added lens, or a changed mock supplement all give a new fingerprint.

The sha256 is taken over the table as CSV text (``LENS_CATALOG_SCHEMA`` column order, the rows
in their canonical ``lens_id`` order, floats written with the shortest repr that round-trips),
so it depends on the values only, not on a Parquet or Arrow writer version.
"""

from __future__ import annotations

import hashlib
from importlib.metadata import version

import pandas as pd

from lensaudit.catalogs import lenscat_catalog
from lensaudit.mock.config import MockSkyConfig
from lensaudit.mock.lens_supplement import known_lenses
from lensaudit.tables import LENS_CATALOG_SCHEMA

#: how a missing value is written in the hashed text (distinct from an empty string)
_NA_TEXT = "<NA>"


def lens_catalog_table(mock: MockSkyConfig | None) -> tuple[pd.DataFrame, dict[str, int]]:
    """(table, counters): the galaxy-scale known lenses ``lens_catalog`` writes, in
    ``LENS_CATALOG_SCHEMA`` column order; ``mock`` is the mock sky's config (None for real sweeps).

    lenscat is read through ``lenscat_catalog.load_lenscat`` (looked up at call time)."""
    cat, counts = lenscat_catalog.galaxy_lenses(known_lenses(lenscat_catalog.load_lenscat(), mock))
    return cat[LENS_CATALOG_SCHEMA.names].reset_index(drop=True), counts


def table_sha256(table: pd.DataFrame) -> str:
    """sha256 (hex) of a lens-catalogue table's values, in ``LENS_CATALOG_SCHEMA`` column order."""
    missing = [c for c in LENS_CATALOG_SCHEMA.names if c not in table.columns]
    if missing:
        raise ValueError(f"lens catalogue table lacks column(s) {missing}")
    text = table[LENS_CATALOG_SCHEMA.names].to_csv(index=False, lineterminator="\n", na_rep=_NA_TEXT)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def lenscat_version() -> str:
    """The installed lenscat package's version."""
    return version("lenscat")


def catalogue_fingerprint(table: pd.DataFrame) -> str:
    """``lenscat==<version>;sha256=<hex of the table>``: the lens catalogue's version."""
    return f"lenscat=={lenscat_version()};sha256={table_sha256(table)}"
