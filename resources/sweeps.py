"""Where sweep files come from: the embedded mock sky (default), a directory, an HTTP(S)
mirror or S3.

``SweepSource.location`` (``LENSAUDIT_SWEEPS`` in ``definitions.py``): unset or ``mock`` for the
mock sky, a local directory, an ``http(s)://`` index page of a mirror, or an
``s3://bucket/prefix`` of real DR10 sweep files.  Nothing is listed when the code location
loads: the sweep partitions are dynamic, added by ``sweep_discovery_sensor``
(``assets/automation.py``) and by ``lensaudit materialize`` from ``sweep_files()``.
"""


from pathlib import Path

import dagster as dg

from lensaudit.mock.config import MOCK_SWEEP_BOXES, mock_sky_dirs
from lensaudit.survey.sweep_files import SweepLocationError, list_sweep_files
from lensaudit.survey.sweeps import parse_sweep_name

__all__ = ["SweepLocationError", "SweepSource", "discover_sweep_partitions"]


def discover_sweep_partitions(location: str) -> list[str]:
    """Sweep file names of ``location``, in partition order: the mock sky's sweeps in its own
    order, else the sorted ``sweep-*.fits`` names (``SweepLocationError`` when it cannot be
    listed; an empty list when it holds none)."""
    if location in ("", "mock"):
        return [b.name for b in MOCK_SWEEP_BOXES]
    return list_sweep_files(location)


class SweepSource(dg.ConfigurableResource):
    """location: 'mock' (default), a directory, an http(s):// mirror or an s3:// prefix of sweep files."""

    location: str = "mock"

    @property
    def is_mock(self) -> bool:
        return self.location in ("", "mock")

    def with_data(self, data) -> "SweepSource":
        """This source, or the one a data configuration (``lensaudit.data_config.DataConfig``)
        names instead when ``data`` is given."""
        return self if data is None else SweepSource(location=data.sweeps.location)

    def sweep_files(self) -> list[str]:
        """The sweep file names under the location now (see ``discover_sweep_partitions``)."""
        return discover_sweep_partitions(self.location)

    def mock_writer(self, home: Path, profile) -> dict | None:
        """For the mock sky, what a Spark task needs to write a mock sweep file itself (the local
        session's workers then write the sweeps in parallel: ``lensaudit.spark_jobs.sweeps``):
        ``{"config": asdict(profile.mock), "sweep_dir", "truth_dir"}``; None for real sweeps."""
        if not self.is_mock:
            return None
        from dataclasses import asdict

        sweep_dir, truth_dir = mock_sky_dirs(home)
        return {"config": asdict(profile.mock), "sweep_dir": str(sweep_dir), "truth_dir": str(truth_dir)}

    def path_for(self, sweep_file: str, home: Path, profile, fetch: bool = True, write_mock: bool = True) -> str:
        """A path the reader can open: the mock's file (written first when ``write_mock``, else
        where a task given ``mock_writer`` writes it); a remote file (http(s):// mirror, s3://
        prefix) is fetched into ``home/sweep_cache`` when ``fetch`` (local Spark;
        ``lensaudit.survey.sweep_files.fetch_sweep_file``: atomic, re-used while the source is
        unchanged), else its URI is returned (EMR reads S3 itself)."""
        parse_sweep_name(sweep_file)
        if self.is_mock:
            from lensaudit.catalogs.lenscat_catalog import load_lenscat
            from lensaudit.mock.writer import sweep_path, write_mock_sweep

            if not write_mock:
                return str(sweep_path(mock_sky_dirs(home)[0], sweep_file))
            return str(write_mock_sweep(profile.mock, sweep_file, *mock_sky_dirs(home), load_lenscat()))
        if fetch and "://" in self.location:
            from lensaudit.store import safe_join
            from lensaudit.survey.sweep_files import fetch_sweep_file

            try:
                return str(fetch_sweep_file(self.location, sweep_file, safe_join(home, "sweep_cache")))
            except SweepLocationError as exc:
                raise dg.Failure(str(exc)) from None
        return f"{self.location.rstrip('/')}/{sweep_file}"
