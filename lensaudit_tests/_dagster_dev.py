"""Start and stop ``dagster dev -w workspace.yaml`` on 127.0.0.1 for the UI tests.

The server runs in its own process group with a fresh DAGSTER_HOME (this repository's
``dagster.yaml``: the run queue) and the lensaudit home given by the test; waits are
bounded and ``stop`` always ends the whole group.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 240  # two shared cores: the code server imports torch, pyspark and dagster
LOCATION_QUERY = """
{
  workspaceOrError {
    __typename
    ... on Workspace { locationEntries { name loadStatus
        locationOrLoadError { __typename ... on PythonError { message } } } }
  }
  assetNodes { assetKey { path } }
}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class DagsterDev:
    proc: subprocess.Popen
    base_url: str
    log_path: Path

    def log_tail(self, n_chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-n_chars:]


def _default_sigint() -> None:
    """A shell's background job inherits SIGINT ignored: give dagster dev its own shutdown back."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start(tmp_path: Path, env_extra: dict[str, str] | None = None) -> DagsterDev:
    """Start ``dagster dev`` (not yet waited for: see ``wait_until_loaded``)."""
    dagster = Path(sys.executable).parent / "dagster"
    if not dagster.exists():
        pytest.fail(f"no dagster CLI beside {sys.executable}: install the project with pip install -e '.[test]'")
    port = free_port()
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    shutil.copy(REPO / "dagster.yaml", dagster_home / "dagster.yaml")
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home), "PYTHONPATH": str(REPO), **(env_extra or {})}
    log_path = tmp_path / "dagster_dev.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen([str(dagster), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
                                cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=_default_sigint)
    return DagsterDev(proc, f"http://127.0.0.1:{port}", log_path)


def wait_until_loaded(dev: DagsterDev, timeout_s: float = START_TIMEOUT_S) -> tuple[dict, dict]:
    """(server_info, GraphQL body) once the webserver answers and every code location is LOADED."""
    deadline = time.monotonic() + timeout_s
    info = None
    while time.monotonic() < deadline:
        if dev.proc.poll() is not None:
            pytest.fail(f"dagster dev exited with {dev.proc.returncode}:\n{dev.log_tail()}")
        try:
            r = requests.get(f"{dev.base_url}/server_info", timeout=5)
            if r.ok:
                info = r.json()
                break
        except requests.RequestException:
            pass
        time.sleep(2)
    assert info is not None, f"no /server_info within {timeout_s} s:\n{dev.log_tail()}"
    # the webserver answers before the code location has finished loading: poll its status
    body: dict = {}
    while time.monotonic() < deadline:
        body = requests.post(f"{dev.base_url}/graphql", json={"query": LOCATION_QUERY}, timeout=60).json()
        entries = ((body.get("data") or {}).get("workspaceOrError") or {}).get("locationEntries") or []
        if entries and all(e["loadStatus"] == "LOADED" for e in entries):
            break
        time.sleep(2)
    return info, body


def stop(dev: DagsterDev) -> None:
    """SIGINT (dagster dev's own shutdown of webserver, daemon and code server), then kill the group."""
    proc = dev.proc
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    except ProcessLookupError:
        pass
