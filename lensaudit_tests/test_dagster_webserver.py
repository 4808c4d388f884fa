"""The README's UI command: ``dagster dev -w workspace.yaml`` starts, loads the lensaudit
code location and answers GraphQL; it is then stopped (bounded waits, killed in ``finally``)."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 240  # two shared cores: the code server imports torch, pyspark and dagster
QUERY = """
{
  workspaceOrError {
    __typename
    ... on Workspace { locationEntries { name loadStatus
        locationOrLoadError { __typename ... on PythonError { message } } } }
  }
  assetNodes { assetKey { path } }
}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    """SIGINT (dagster dev's own shutdown of webserver, daemon and code server), then kill the group."""
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


@pytest.mark.dagster
def test_dagster_dev_serves_the_code_location(tmp_path):
    from definitions import defs

    dagster = Path(sys.executable).parent / "dagster"
    assert dagster.exists(), f"no dagster CLI beside {sys.executable}"
    port = _free_port()
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    shutil.copy(REPO / "dagster.yaml", dagster_home / "dagster.yaml")
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home), "LENSAUDIT_HOME": str(tmp_path / "lensaudit_home"),
           "PYTHONPATH": str(REPO)}
    log = (tmp_path / "dagster_dev.log").open("w+")
    proc = subprocess.Popen([str(dagster), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
                            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        info = None
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                log.seek(0)
                pytest.fail(f"dagster dev exited with {proc.returncode}:\n{log.read()[-4000:]}")
            try:
                r = requests.get(f"{base}/server_info", timeout=5)
                if r.ok:
                    info = r.json()
                    break
            except requests.RequestException:
                pass
            time.sleep(2)
        assert info is not None, f"no /server_info within {START_TIMEOUT_S} s"
        assert "dagster_webserver_version" in info
        # the webserver answers before the code location has finished loading: poll its status
        body: dict = {}
        while time.monotonic() < deadline:
            body = requests.post(f"{base}/graphql", json={"query": QUERY}, timeout=60).json()
            entries = ((body.get("data") or {}).get("workspaceOrError") or {}).get("locationEntries") or []
            if entries and all(e["loadStatus"] == "LOADED" for e in entries):
                break
            time.sleep(2)
        assert body.get("data"), body
        entries = body["data"]["workspaceOrError"]["locationEntries"]
        assert [e["name"] for e in entries] == ["lensaudit"]
        assert entries[0]["locationOrLoadError"]["__typename"] == "RepositoryLocation", entries  # not PythonError
        served = {"/".join(n["assetKey"]["path"]) for n in body["data"]["assetNodes"]}
        expected = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
        assert served == expected and len(served) == 15
    finally:
        _stop(proc)
        log.close()
    assert proc.returncode is not None
