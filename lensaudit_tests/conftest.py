"""Shared fixtures: the real survey files vendored in ``lensaudit_tests/data/real`` and one
local SparkSession.

The real fixtures live inside the repository (see ``data/real/README.txt`` for their
provenance and licences), so a bare clone runs every real-data test; nothing is read from
outside the checkout and nothing is skipped for want of data.
"""

from __future__ import annotations

from pathlib import Path

import pytest

REAL_DATA = Path(__file__).resolve().parent / "data" / "real"


def _interruptible() -> None:
    """A test run started in the background inherits SIGINT ignored; the in-process Dagster runs
    of the tests would then leave SIGTERM ignored too (``lensaudit_cli.main.terminable_by_sigterm``
    says why), for this process and every subprocess it starts.  Python's own SIGINT handler, as
    in a foreground run."""
    import signal

    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


_interruptible()

#: test modules that take longest (seconds of one xdist worker on 2 cores, 01e4c8b), started first: pytest-xdist
#: (``-n 2 --dist loadfile``, pyproject.toml) hands each module to one worker, in collection order, so the
#: longest ones no longer start last and leave the other worker idle.  Only the order changes; a stale list
#: costs time, never a test.
LONGEST_FIRST = ("test_pipeline_tiny.py",  # ~480 s: the tiny home's module fixtures
                 "test_ui_browser.py",  # ~240-290 s: "Materialize all" in headless Chromium
                 "test_s3_home_tiny.py",  # ~280 s: the tiny home on moto's S3
                 "test_render_fused.py", "test_external_detector.py", "test_dagster_webserver.py")


def pytest_collection_modifyitems(items):
    rank = {name: k for k, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: each module's tests keep their order


@pytest.fixture(scope="session")
def real_data() -> Path:
    if not REAL_DATA.is_dir():  # a broken checkout, never a reason to skip
        pytest.fail(f"vendored real survey fixtures missing at {REAL_DATA}")
    return REAL_DATA


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


@pytest.fixture(scope="module")
def moto_url():
    """moto's S3/EMR server on 127.0.0.1 (one per test module; reset it per test with
    ``POST {url}/moto-api/reset``)."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()
