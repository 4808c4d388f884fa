"""A home's run record (run_profile.json): the profile and the detector overrides (training seed,
CPU threads) that the robustness check uses, read alike by the CLI and the Dagster resource."""

import json

import pytest

from lensaudit.config import get_profile, profile_from_record
from lensaudit_cli.main import _run_record, home_profile, main
from resources.settings import RUN_PROFILE_FILE, LensauditSettings


def test_overrides_change_only_the_detector_seed_and_threads():
    base = get_profile("demo")
    p = profile_from_record({"profile": "demo", "train_seed": 7, "cpu_threads": 1})
    assert p.detector.train.seed == 7 and p.detector.cpu_threads == 1
    assert p.detector.train.epochs == base.detector.train.epochs and p.mock == base.mock
    assert profile_from_record({"profile": "demo", "data_source": "mock"}) is base


@pytest.mark.parametrize("record", [
    {"profile": "demo", "train_sed": 7},  # a typo is not silently ignored
    {"profile": "demo", "train_seed": -1},
    {"profile": "demo", "cpu_threads": 0},
    {"profile": "demo", "cpu_threads": True},
    {"profile": "demo", "train_seed": "7"},
    {"profile": "nope"},
    {"train_seed": 7},
    ["demo"],
])
def test_bad_records_are_clear_errors(record):
    with pytest.raises(ValueError):
        profile_from_record(record)


def test_materialize_keeps_a_homes_overrides_until_told_otherwise(tmp_path):
    (tmp_path / RUN_PROFILE_FILE).write_text(json.dumps({"profile": "demo", "train_seed": 7}))
    assert _run_record(tmp_path, "demo", {"train_seed": None, "cpu_threads": 1}) == \
        {"profile": "demo", "train_seed": 7, "cpu_threads": 1}
    assert _run_record(tmp_path, "demo", {"train_seed": 3, "cpu_threads": None})["train_seed"] == 3
    assert _run_record(tmp_path, "tiny", {"train_seed": None, "cpu_threads": None}) == {"profile": "tiny"}
    with pytest.raises(ValueError, match="cpu_threads"):
        _run_record(tmp_path, "demo", {"train_seed": None, "cpu_threads": 0})


def test_cli_and_dagster_resource_read_the_same_profile(tmp_path):
    (tmp_path / RUN_PROFILE_FILE).write_text(json.dumps({"profile": "tiny", "train_seed": 99, "cpu_threads": 1}))
    cli = home_profile(tmp_path, "tiny")
    res = LensauditSettings(home=str(tmp_path)).profile_obj()
    assert cli == res and res.detector.train.seed == 99 and res.detector.cpu_threads == 1
    # a run that names another profile explicitly does not inherit the record's overrides
    assert LensauditSettings(home=str(tmp_path), profile="demo").profile_obj() == get_profile("demo")


def test_materialize_rejects_a_bad_override_with_one_line(tmp_path, capsys, monkeypatch):
    for var in ("LENSAUDIT_HOME", "LENSAUDIT_PROFILE", "DAGSTER_HOME"):  # the CLI sets them; restored after
        monkeypatch.setenv(var, str(tmp_path))
    rc = main(["materialize", "--profile", "tiny", "--home", str(tmp_path), "--select", "spatial_splits",
               "--cpu-threads", "0"])
    err = capsys.readouterr().err
    assert rc == 2 and "cpu_threads" in err and "Traceback" not in err
    assert not (tmp_path / "assets").exists()


def test_demo_pins_its_cpu_threads():
    """The README's demo figures reproduce only with a fixed thread count (torch's default
    follows the machine's cores)."""
    assert get_profile("demo").detector.cpu_threads == 2


def _cli_env(monkeypatch, tmp_path, profile=None):
    for var in ("LENSAUDIT_HOME", "DAGSTER_HOME"):  # the CLI sets them; restored after
        monkeypatch.setenv(var, str(tmp_path))
    if profile is None:
        monkeypatch.delenv("LENSAUDIT_PROFILE", raising=False)
    else:
        monkeypatch.setenv("LENSAUDIT_PROFILE", profile)


def test_materialize_reads_the_profile_variable_and_rejects_a_typo(tmp_path, capsys, monkeypatch):
    """Without ``--profile`` the home's run record, then ``$LENSAUDIT_PROFILE``, then demo (as a UI
    run); a misspelt variable is one line, exit 2, and nothing is stored or reported done."""
    _cli_env(monkeypatch, tmp_path, "dmeo")
    home = tmp_path / "h"
    rc = main(["materialize", "--home", str(home), "--select", "spatial_splits"])
    out, err = capsys.readouterr()
    assert rc == 2 and "unknown profile 'dmeo'" in err and "Traceback" not in err
    assert "done" not in out + err and "succeeded" not in out + err
    assert not (home / RUN_PROFILE_FILE).exists() and not (home / "assets").exists()
    from lensaudit_cli.main import _prepare_home

    _cli_env(monkeypatch, tmp_path, "tiny")
    assert _prepare_home(str(home), None)[1] == "tiny"
    (home / RUN_PROFILE_FILE).write_text(json.dumps({"profile": "full"}))
    assert _prepare_home(str(home), None)[1] == "full"  # an existing home keeps its profile
    assert _prepare_home(str(home), "demo")[1] == "demo"


def test_commands_that_read_a_home_create_no_home(tmp_path, capsys, monkeypatch):
    """A mistyped ``--home``: one line, no gate table, and no folder made."""
    _cli_env(monkeypatch, tmp_path)
    missing = tmp_path / "no_such_home"
    assert main(["gates", "--home", str(missing)]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.strip().splitlines() == [f"lensaudit: nothing stored under {missing / 'assets'}; "
                                                       "no gate evaluated"]
    assert main(["summary", "--home", str(missing)]) != 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not missing.exists()
