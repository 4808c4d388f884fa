"""The run's lens catalogue: the table the ``lens_catalog`` asset writes.

The galaxy-scale known lenses (``lensaudit.catalogs.lenscat_catalog.galaxy_lenses``) of lenscat
plus, on the mock sky, its lens supplement (``lensaudit.mock.lens_supplement.known_lenses``), in
the columns of ``LENS_CATALOG_SCHEMA``.  One function, so that the asset and the lens catalogue
sensor (which fingerprints it: ``lensaudit.catalogs.version``) build the same table.  It lives
outside ``lensaudit.catalogs`` because it joins ``mock`` and ``tables``, which import ``catalogs``.
"""

from __future__ import annotations

import pandas as pd

from lensaudit.catalogs import lenscat_catalog
from lensaudit.mock.config import MockSkyConfig
from lensaudit.mock.lens_supplement import known_lenses
from lensaudit.tables import LENS_CATALOG_SCHEMA


def lens_catalog_table(mock: MockSkyConfig | None) -> tuple[pd.DataFrame, dict[str, int]]:
    """(table, counters): the galaxy-scale known lenses in ``LENS_CATALOG_SCHEMA`` column order,
    rows by ``lens_id``; ``mock`` is the mock sky's config (None for real sweeps).  The counters
    say how many lenscat entries each cut removed.  lenscat is read through
    ``lenscat_catalog.load_lenscat``, looked up at call time."""
    cat, counts = lenscat_catalog.galaxy_lenses(known_lenses(lenscat_catalog.load_lenscat(), mock))
    return cat[LENS_CATALOG_SCHEMA.names].reset_index(drop=True), counts
