"""numpy's huge-page advice off in lensaudit's processes (lensaudit/numpy_pages.py)."""

import os
import subprocess
import sys
from pathlib import Path

from lensaudit import numpy_pages

ROOT = Path(__file__).resolve().parents[1]


def _set(enabled: bool) -> bool:
    return numpy_pages.set_hugepage_advice(enabled)


def test_the_advice_is_turned_off_and_a_users_setting_stands(monkeypatch):
    before = _set(True)
    try:
        monkeypatch.delenv(numpy_pages.ENV, raising=False)
        assert numpy_pages.no_hugepage_advice() is True
        assert os.environ[numpy_pages.ENV] == "0" and _set(True) is False  # numpy's state was off
        monkeypatch.setenv(numpy_pages.ENV, "1")  # the user's own choice: left alone
        assert numpy_pages.no_hugepage_advice() is False
        assert os.environ[numpy_pages.ENV] == "1" and _set(True) is True
    finally:
        _set(before)


def test_the_cli_and_its_children_run_without_the_advice():
    """``lensaudit``'s main turns the advice off for itself and for what it starts (the local Spark
    session's JVM and Python workers inherit the environment; ``python_worker_env`` sets it too)."""
    code = ("import os, subprocess, sys\n"
            "from lensaudit_cli.main import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "from numpy._core.multiarray import _set_madvise_hugepage as s\n"
            "child = subprocess.run([sys.executable, '-c', 'import numpy; from numpy._core.multiarray import "
            "_set_madvise_hugepage as s; print(s(True))'], capture_output=True, text=True).stdout.strip()\n"
            "print(os.environ.get('NUMPY_MADVISE_HUGEPAGE'), s(True), child)\n")
    env = {k: v for k, v in os.environ.items() if k != numpy_pages.ENV}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "0 False False"
    from resources.spark import LOCAL_PYTHON_WORKER_ENV

    assert LOCAL_PYTHON_WORKER_ENV[numpy_pages.ENV] == "0"
