"""Run a worker script as two gloo processes under ``torch.distributed.run`` (the data-parallel tests)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_two_gloo_ranks(worker_source: str, work_dir: Path, timeout: int = 600) -> None:
    """Write ``worker_source`` to ``work_dir/worker.py`` and run it on two ranks with ``work_dir`` as its
    argument; fails the test with the processes' stderr if either rank fails."""
    script = work_dir / "worker.py"
    script.write_text(worker_source)
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                           str(script), str(work_dir)], capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
