"""Shared fixtures: real survey files from ../shared/data/real and one local SparkSession."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_REAL = Path(os.environ.get("LENSAUDIT_SHARED_DATA", REPO.parent / "shared" / "data" / "real"))


@pytest.fixture(scope="session")
def real_data() -> Path:
    if not SHARED_REAL.is_dir():
        msg = f"real survey fixtures not found at {SHARED_REAL} (set LENSAUDIT_SHARED_DATA)"
        if os.environ.get("CI"):
            pytest.fail(msg)  # CI always has shared/ beside the clone: never skip there
        pytest.skip(msg)
    return SHARED_REAL


@pytest.fixture(scope="session")
def spark():
    """One local SparkSession for the whole test session (2 cores here)."""
    from resources.spark import SparkResource

    session = SparkResource(master="local[2]", shuffle_partitions=4, driver_memory="2g").session()
    yield session


@pytest.fixture(scope="session")
def lenscat_all():
    from lensaudit.catalogs.lenscat_catalog import load_lenscat

    return load_lenscat()
