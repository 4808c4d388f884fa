"""Scratch folders of the benchmarks: made under the system's temporary directory and removed
when the process exits (a benchmark's synthetic store can be ~1 GB; repeated runs filled /tmp)."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path


def scratch_dir(prefix: str) -> Path:
    """A new empty folder, removed with everything in it at interpreter exit."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, path, True)
    return path
