"""Where sweep files come from: the embedded mock sky (default), a directory, or S3.

``LENSAUDIT_SWEEPS`` selects the source when the code location loads (the sweep
partitions are discovered from it): unset or ``mock`` for the mock sky, a local
directory, or an ``s3://bucket/prefix`` of real DR10 sweep files.
"""


import os
import re
from pathlib import Path

import dagster as dg

from lensaudit.mock.config import MOCK_SWEEP_BOXES
from lensaudit.survey.sweeps import parse_sweep_name

_SWEEP_FILE = re.compile(r"sweep-\d{3}[pm]\d{3}-\d{3}[pm]\d{3}\.fits$")


def _list_location(location: str) -> list[str]:
    if location.startswith(("s3://", "s3a://")):
        import fsspec

        fs, _, paths = fsspec.get_fs_token_paths(location.replace("s3a://", "s3://"))
        names = [p.rsplit("/", 1)[-1] for p in fs.ls(paths[0], detail=False)]
    else:
        d = Path(location)
        if not d.is_dir():
            raise FileNotFoundError(f"sweep directory {location!r} does not exist")
        names = [p.name for p in d.iterdir()]
    return sorted(n for n in names if _SWEEP_FILE.match(n))


def discover_sweep_partitions(location: str | None = None) -> list[str]:
    """Sweep file names of the configured source, in partition order."""
    location = location if location is not None else os.environ.get("LENSAUDIT_SWEEPS", "mock")
    if location in ("", "mock"):
        return [b.name for b in MOCK_SWEEP_BOXES]
    names = _list_location(location)
    if not names:
        raise FileNotFoundError(f"no sweep-*.fits files under {location!r}")
    for n in names:
        parse_sweep_name(n)
    return names


class SweepSource(dg.ConfigurableResource):
    """location: 'mock' (default), a directory, or an s3:// prefix of sweep files."""

    location: str = "mock"

    @property
    def is_mock(self) -> bool:
        return self.location in ("", "mock")

    def path_for(self, sweep_file: str, home: Path, profile) -> str:
        """A path the reader can open; the mock writes the file first if needed."""
        parse_sweep_name(sweep_file)
        if self.is_mock:
            from lensaudit.catalogs.lenscat_catalog import load_lenscat
            from lensaudit.mock.writer import write_mock_sweep

            return str(write_mock_sweep(profile.mock, sweep_file, home / "mock_sky" / "sweeps",
                                        home / "mock_sky" / "truth", load_lenscat()))
        return f"{self.location.rstrip('/')}/{sweep_file}"
