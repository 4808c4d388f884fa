"""Run a test module's ``_interpreted_checks()`` in a subprocess that interprets Triton kernels on the
CPU (TRITON_INTERPRET=1 must be set before triton is first imported, so not in the pytest process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def interpreted_checks(module: str, timeout_s: int = 600) -> dict:
    """The JSON dict that ``<module>._interpreted_checks()`` returns, computed in a fresh interpreter
    with Triton's interpreter on and no CUDA device visible."""
    env = dict(os.environ, TRITON_INTERPRET="1", CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1",
               PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    code = f"import json; from {module} import _interpreted_checks as c; print(json.dumps(c()))"
    r = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True,
                       timeout=timeout_s)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])
