"""The README's UI command: ``dagster dev -w workspace.yaml`` starts, loads the lensaudit
code location and answers GraphQL; it is then stopped (bounded waits, killed in ``finally``)."""

import pytest

from lensaudit_tests import _dagster_dev


@pytest.mark.dagster
def test_dagster_dev_serves_the_code_location(tmp_path):
    from definitions import defs

    dev = _dagster_dev.start(tmp_path, {"LENSAUDIT_HOME": str(tmp_path / "lensaudit_home")})
    try:
        info, body = _dagster_dev.wait_until_loaded(dev)
        assert "dagster_webserver_version" in info
        assert body.get("data"), body
        entries = body["data"]["workspaceOrError"]["locationEntries"]
        assert [e["name"] for e in entries] == ["lensaudit"]
        assert entries[0]["locationOrLoadError"]["__typename"] == "RepositoryLocation", entries  # not PythonError
        served = {"/".join(n["assetKey"]["path"]) for n in body["data"]["assetNodes"]}
        expected = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
        assert served == expected and len(served) == 15
    finally:
        _dagster_dev.stop(dev)
    assert dev.proc.returncode is not None
