"""Mock known lenses: the lens catalogue of the embedded mock sky.

The real lenscat holds only ~81 galaxy-scale lenses inside the mock sweeps, too few for a
detector to learn from.  The mock sky therefore carries, per sweep box,
``MockSkyConfig.lens_supplement_per_sweep`` extra lenses at deterministic positions (uniform
on the sphere inside the box), graded ``confident`` or ``probable`` like lenscat entries.  The
mock sky places a lens galaxy with a lensed arc at each of them (``lensaudit.mock.sky``), and the
run's lens catalogue is lenscat plus these entries (``known_lenses``), so that positives, the
11" exclusion of the negative pools and its gates all see the same known lenses.  They are
labelled ``ref = MOCK_LENS_REF`` and ``lens_id = mock_<sweep box>_<i>``: never real lenses.
"""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd

from lensaudit.mock.config import MockSkyConfig

MOCK_LENS_REF = "lensaudit mock sky (not a real lens)"
MOCK_LENS_ID_PREFIX = "mock_"
_COLUMNS = ("lens_id", "lens_name", "ra", "dec", "zlens", "lens_type", "grading", "ref")
#: grading of the supplement, as lenscat's: tier A (confident) and tier B (probable)
CONFIDENT_FRACTION = 0.7


def mock_lens_entries(config: MockSkyConfig) -> pd.DataFrame:
    """The supplement lenses of every sweep box of ``config``, in ``load_lenscat``'s columns."""
    k = int(config.lens_supplement_per_sweep)
    if k <= 0:
        return pd.DataFrame(columns=list(_COLUMNS))
    frames = []
    for box in config.sweep_boxes:
        rng = np.random.default_rng(np.random.SeedSequence([config.seed, zlib.crc32(box.name.encode()), 101]))
        # keep 12" from the box edges so that a stamp's lens is not cut by the sweep boundary
        margin = 12.0 / 3600.0
        ra = rng.uniform(box.ra1 + margin, box.ra2 - margin, k)
        s1, s2 = np.sin(np.deg2rad(box.dec1 + margin)), np.sin(np.deg2rad(box.dec2 - margin))
        dec = np.rad2deg(np.arcsin(rng.uniform(s1, s2, k)))
        grading = np.where(rng.random(k) < CONFIDENT_FRACTION, "confident", "probable")
        stem = box.name.removeprefix("sweep-").removesuffix(".fits")
        frames.append(pd.DataFrame({
            "lens_id": [f"{MOCK_LENS_ID_PREFIX}{stem}_{i:04d}" for i in range(k)],
            "lens_name": [f"MOCK-{stem}-{i:04d}" for i in range(k)],
            "ra": ra, "dec": dec, "zlens": "", "lens_type": "galaxy", "grading": grading, "ref": MOCK_LENS_REF,
        }))
    return pd.concat(frames, ignore_index=True)


def is_mock_lens(lens_ids: pd.Series) -> pd.Series:
    """True for the ids of the mock sky's own known lenses."""
    return lens_ids.astype(str).str.startswith(MOCK_LENS_ID_PREFIX)


def known_lenses(lenscat: pd.DataFrame, mock: MockSkyConfig | None) -> pd.DataFrame:
    """Every known lens of a run: ``lenscat`` (all entries) plus, on the mock sky, its supplement."""
    if mock is None or mock.lens_supplement_per_sweep <= 0:
        return lenscat
    extra = mock_lens_entries(mock)
    return pd.concat([lenscat, extra[~extra["lens_id"].isin(lenscat["lens_id"])]], ignore_index=True)
