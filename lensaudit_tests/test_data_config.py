"""The real-data configuration (``configs/dr10_south.yaml``, ``lensaudit.data_config``): the
shipped file loads; bad files are one clear line naming the file and the key; a run picks
it from the launchpad (``settings.data_config``), ``$LENSAUDIT_DATA_CONFIG`` or ``lensaudit
materialize --data-config``, at execution; and the sweep and cutout resources then read the
configured locations: here a local folder in the Legacy Surveys layout holding the vendored
real sweep files and the real DR6 coadd brick, plus a real survey-bricks table."""

import os
import shutil
from pathlib import Path

import dagster as dg
import numpy as np
import pytest

from lensaudit.data_config import DATA_CONFIG_ENV, DataConfigError, load_data_config, parse_data_config
from resources.cutout_source import CutoutSourceResource
from resources.settings import LensauditSettings
from resources.sweeps import SweepSource

ROOT = Path(__file__).resolve().parents[1]
BRICK = "0959p805"
SWEEPS = ("sweep-310m005-320p000.fits", "sweep-320m005-330p000.fits", "sweep-330m005-340p000.fits")


@pytest.fixture(autouse=True)
def _no_env_config(monkeypatch):
    monkeypatch.setenv(DATA_CONFIG_ENV, "")  # recorded, so that what the CLI sets is undone after the test
    monkeypatch.delenv(DATA_CONFIG_ENV)


@pytest.fixture
def survey(tmp_path, real_data) -> Path:
    """A data configuration over a local mirror in the DR10 layout: sweep/10.1/sweep-*.fits,
    coadd/<aaa>/<brick>/legacysurvey-<brick>-{image,invvar}-g.fits.fz, a survey-bricks table;
    paths relative to the file."""
    root = tmp_path / "mirror" / "dr10" / "south"
    (root / "sweep" / "10.1").mkdir(parents=True)
    for name in SWEEPS:
        shutil.copy(real_data / "dr8_desitarget_fixtures" / name, root / "sweep" / "10.1" / name)
    (root / "sweep" / "10.1" / "README.txt").write_text("not a sweep")
    brick = root / "coadd" / BRICK[:3] / BRICK
    brick.mkdir(parents=True)
    for kind in ("image", "invvar"):
        name = f"legacysurvey-{BRICK}-{kind}-g.fits.fz"
        shutil.copy(real_data / "dr6_coadd_brick_0959p805" / name, brick / name)
    shutil.copy(real_data / "dr10_derived_tables" / "dr10_bricks_primary_phase1p6.csv", root / "survey-bricks.csv")
    cfg = tmp_path / "configs" / "local.yaml"
    cfg.parent.mkdir()
    cfg.write_text("name: local-mirror\n"
                   "sweeps: {location: ../mirror/dr10/south/sweep/10.1}\n"
                   "cutouts: {kind: coadd, location: ../mirror/dr10/south}\n"
                   "survey_bricks: ../mirror/dr10/south/survey-bricks.csv\n")
    return cfg


def test_the_shipped_dr10_south_file_loads():
    cfg = load_data_config(ROOT / "configs" / "dr10_south.yaml")
    assert cfg.sweeps.location.startswith("https://") and cfg.sweeps.location.rstrip("/").endswith("south/sweep/10.1")
    assert (cfg.cutouts.kind, cfg.cutouts.layer) == ("coadd", "ls-dr10") and cfg.cutouts.location.endswith("dr10/south")
    assert cfg.survey_bricks.endswith("survey-bricks-dr10-south.fits.gz")
    r = cfg.rate_limit
    assert r.global_requests_per_s > 0 and r.nodes is None and r.retry_budget_per_run >= 0


@pytest.mark.parametrize("text,expect", [
    ("sweeps: {location: /s}\ncutouts: {kind: coadd, location: /c}\nsurvey_brick: x\n", "unknown key 'survey_brick'"),
    ("sweeps: {location: /s, recursive: true}\ncutouts: {kind: coadd, location: /c}\n",
     "unknown key 'sweeps.recursive'"),
    ("sweeps: {location: /s}\ncutouts: {kind: coadd, location: /c}\nrate_limit: {global_requests_per_s: 1, burst: 3}\n",
     "unknown key 'rate_limit.burst'"),
    ("cutouts: {kind: coadd, location: /c}\n", "missing key 'sweeps'"),
    ("sweeps: {location: /s}\ncutouts: {kind: ftp, location: /c}\n", "cutouts.kind"),
    ("sweeps: {location: /s}\ncutouts: {kind: http, location: https://h/fits-cutout}\n", "needs a rate_limit"),
    ("sweeps: {location: /s}\ncutouts: {kind: http, location: /not/a/url}\nrate_limit: {global_requests_per_s: 1}\n",
     "http(s):// URL"),
    ("sweeps: {location: /s}\ncutouts: {kind: coadd, location: /c}\nrate_limit: {global_requests_per_s: 0}\n",
     "rate_limit.global_requests_per_s"),
    ("sweeps: {location: /s}\ncutouts: {kind: coadd, location: /c}\nrate_limit: {global_requests_per_s: 1, nodes: 0}\n",
     "rate_limit.nodes"),
    ("sweeps: {location: 'ftp://x/y'}\ncutouts: {kind: coadd, location: /c}\n", "sweeps.location"),
    ("sweeps: [a, b]\n", "sweeps"),
    ("- just\n- a list\n", "a mapping of keys"),
    ("sweeps: {location: /s\n", "not valid YAML"),
])
def test_bad_files_are_one_clear_line(tmp_path, text, expect):
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    with pytest.raises(DataConfigError) as e:
        load_data_config(p)
    msg = str(e.value)
    assert expect in msg and str(p) in msg and "\n" not in msg


def test_a_missing_file_and_the_loader_keys(tmp_path):
    with pytest.raises(DataConfigError, match="is not a file"):
        load_data_config(tmp_path / "none.yaml")
    with pytest.raises(DataConfigError, match="unknown key 'source_file'"):
        parse_data_config({"sweeps": {"location": "/s"}, "cutouts": {"kind": "coadd", "location": "/c"},
                           "source_file": "x"})


def test_relative_local_paths_are_read_from_the_file_s_folder(survey):
    cfg = load_data_config(survey)
    south = (survey.parent.parent / "mirror" / "dr10" / "south").resolve()
    assert Path(cfg.sweeps.location) == south / "sweep" / "10.1" and Path(cfg.cutouts.location) == south
    assert Path(cfg.survey_bricks) == south / "survey-bricks.csv"
    remote = parse_data_config({"sweeps": {"location": "s3://bucket/dr10/south/sweep/10.1/"},
                                "cutouts": {"kind": "coadd", "location": "https://mirror/dr10/south"}}, "x", survey.parent)
    assert remote.sweeps.location == "s3://bucket/dr10/south/sweep/10.1/"  # URLs are left alone


def test_settings_resolve_it_at_run_time(survey, monkeypatch, tmp_path):
    assert LensauditSettings().data() is None  # nothing configured: the resources keep their own
    monkeypatch.setenv(DATA_CONFIG_ENV, str(survey))
    assert LensauditSettings().data().name == "local-mirror"  # read when asked, not when built
    other = tmp_path / "other.yaml"
    other.write_text("name: other\nsweeps: {location: /s}\ncutouts: {kind: coadd, location: /c}\n")
    assert LensauditSettings(data_config=str(other)).data().name == "other"  # the launchpad's field wins
    monkeypatch.setenv(DATA_CONFIG_ENV, str(tmp_path / "gone.yaml"))
    settings = LensauditSettings()  # building it reads nothing ...
    with pytest.raises(dg.Failure, match="gone.yaml"):  # ... the run fails clearly when it executes
        settings.data()


def test_the_resources_read_the_configured_locations(survey, tmp_path, real_data):
    from lensaudit.cutouts.coadd import CoaddSource
    from lensaudit.spark_jobs.cutouts import _source

    data = LensauditSettings(data_config=str(survey)).data()
    south = Path(data.cutouts.location)
    env_sweeps, env_cutouts = SweepSource(location="mock"), CutoutSourceResource(kind="mock")
    assert env_sweeps.with_data(None) is env_sweeps and env_cutouts.with_data(None) is env_cutouts

    sweeps = env_sweeps.with_data(data)
    assert not sweeps.is_mock and sweeps.sweep_files() == list(SWEEPS)
    path = sweeps.path_for(SWEEPS[0], tmp_path / "home", None)
    assert Path(path) == south / "sweep" / "10.1" / SWEEPS[0] and Path(path).is_file()

    cutouts = env_cutouts.with_data(data)
    spec = cutouts.spec(tmp_path / "home", None)
    assert spec == {"kind": "coadd", "location": str(south), "survey_bricks": data.survey_bricks}
    # the Spark task's source cuts from the configured mirror: the same bytes as the fixture itself
    src = _source(spec, SWEEPS[0]).inner.src
    from astropy.io import fits
    from astropy.wcs import WCS

    hdr = fits.getheader(real_data / "dr6_coadd_brick_0959p805" / f"legacysurvey-{BRICK}-image-g.fits.fz", 1)
    ra, dec = WCS(hdr).pixel_to_world_values(400.0, 900.0)
    got = src.cutout(float(ra), float(dec), bands="g")
    want = CoaddSource(str(real_data / "dr6_coadd_brick_0959p805")).cutout(float(ra), float(dec), bands="g")
    assert got.ok and want.ok and got.data.tobytes() == want.data.tobytes()

    # the survey-bricks table it names: coverage, depth and PSF per brick
    from lensaudit.survey.bricks import brick_conditions, read_survey_bricks

    table = read_survey_bricks(data.survey_bricks)
    first = table.iloc[0]
    cond = brick_conditions(table, [first.ra, 10.0], [first.dec, 10.0])
    assert cond.covered.tolist() == [True, False]
    assert cond.psfsize_r_arcsec[0] == pytest.approx(first.psfsize_r) and np.isnan(cond.psfsize_r_arcsec[1])
    assert cond.psfdepth_r_mag[0] == pytest.approx(first.psfdepth_r)
    assert 22.5 - 2.5 * np.log10(5 / np.sqrt(cond.psfdepth_r_ivar[0])) == pytest.approx(first.psfdepth_r)


def test_the_http_kind_carries_the_rate_limit(tmp_path):
    data = parse_data_config({"sweeps": {"location": "/s"},
                              "cutouts": {"kind": "http", "location": "http://127.0.0.1:9/fits-cutout", "layer": "ls-dr9"},
                              "rate_limit": {"global_requests_per_s": 4.0, "nodes": 2, "retry_budget_per_run": 7,
                                             "retries_per_cutout": 2, "timeout_s": 5}})
    spec = CutoutSourceResource(kind="mock").with_data(data).spec(tmp_path, None, run_key="run-1")
    assert spec["location"] == "http://127.0.0.1:9/fits-cutout" and spec["layer"] == "ls-dr9"
    assert (spec["global_rate_per_s"], spec["nodes"], spec["retry_budget_per_run"], spec["retries"],
            spec["timeout_s"], spec["run_key"]) == (4.0, 2, 7, 2, 5.0, "run-1")


def test_the_launchpad_config_reaches_the_resources(survey):
    """An asset reading the sweeps as the real ones do, run with the launchpad's YAML."""
    seen = {}

    @dg.asset
    def probe(settings: LensauditSettings, sweeps: SweepSource) -> None:
        seen["location"] = sweeps.with_data(settings.data()).location

    defs_resources = {"settings": LensauditSettings(), "sweeps": SweepSource(location="mock")}
    assert dg.materialize([probe], resources=defs_resources).success and seen["location"] == "mock"
    run_config = {"resources": {"settings": {"config": {"data_config": str(survey)}}}}
    assert dg.materialize([probe], resources=defs_resources, run_config=run_config).success
    assert seen["location"] == load_data_config(survey).sweeps.location


def test_the_discovery_sensor_lists_the_configured_sweeps(survey, monkeypatch):
    from assets.automation import sweep_discovery_sensor

    monkeypatch.setenv(DATA_CONFIG_ENV, str(survey))
    with dg.instance_for_test() as instance, dg.build_sensor_context(
            instance=instance, resources={"sweeps": SweepSource(location="mock")}) as ctx:
        data = sweep_discovery_sensor.evaluate_tick(ctx)
    assert [k for r in data.dynamic_partitions_requests for k in r.partition_keys] == list(SWEEPS)


def test_materialize_takes_data_config(tmp_path, monkeypatch, capsys):
    from lensaudit_cli.main import main

    for k in ("LENSAUDIT_HOME", "LENSAUDIT_PROFILE", "DAGSTER_HOME"):  # the CLI sets them; restored after
        monkeypatch.setenv(k, "")
    bad = tmp_path / "bad.yaml"
    bad.write_text("sweeps: {location: /s}\ncutouts: {kind: coadd, location: /c}\nsweep: x\n")
    assert main(["materialize", "--data-config", str(bad), "--home", str(tmp_path / "h")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("lensaudit: ") and "unknown key 'sweep'" in err and "Traceback" not in err
    # a valid file whose sweep folder is missing: the run plans from the configured location (and stops there)
    missing = tmp_path / "no_such_dir"
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"sweeps: {{location: {missing}}}\ncutouts: {{kind: coadd, location: /c}}\n")
    assert main(["materialize", "--data-config", str(cfg), "--profile", "tiny", "--select", "sweep_catalog",
                 "--home", str(tmp_path / "h")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("lensaudit: sweep location") and str(missing) in err
    assert os.environ[DATA_CONFIG_ENV] == str(cfg.resolve())


def test_the_shipped_file_and_the_readme_show_every_key():
    import yaml

    from lensaudit.data_config import CutoutsConfig, DataConfig, RateLimitConfig, SweepsConfig

    raw = yaml.safe_load((ROOT / "configs" / "dr10_south.yaml").read_text())
    text = (ROOT / "configs" / "dr10_south.yaml").read_text()
    assert set(raw) == set(DataConfig.model_fields) - {"source_file"}
    assert set(raw["rate_limit"]) == set(RateLimitConfig.model_fields)
    assert set(raw["sweeps"]) == set(SweepsConfig.model_fields)
    assert all(f"{k}:" in text for k in CutoutsConfig.model_fields)  # layer is shown commented out
    readme = (ROOT / "README.md").read_text()
    for model in (DataConfig, RateLimitConfig, CutoutsConfig):
        missing = [k for k in model.model_fields if k not in ("source_file", "layer") and f"{k}:" not in readme]
        assert not missing, missing


def test_targets_in_bricks_without_data_fail_before_any_read(survey, tmp_path, real_data):
    """With a survey-bricks table, a target whose brick has no g, r and z data there fails with
    brick_not_covered and the source is never asked; covered bricks go to the source; without
    the table every target does.  The DR6 brick 0959p805 (Dec +80.5, BASS/MzLS) is not in the
    DR10 south table."""
    import pandas as pd

    from lensaudit.spark_jobs.cutouts import REASON_NOT_COVERED, _SourceFailure, _source
    from lensaudit.survey.bricks import covered_bricks, read_survey_bricks

    data = LensauditSettings(data_config=str(survey)).data()
    table = read_survey_bricks(data.survey_bricks)
    covered = covered_bricks(table)
    assert BRICK not in covered and len(covered) == int((table[["psfdepth_g", "psfdepth_r", "psfdepth_z"]] > 0)
                                                        .all(axis=1).sum())
    spec = CutoutSourceResource(kind="mock").with_data(data).spec(tmp_path, None)
    asked = []
    src = _source(spec, SWEEPS[0])
    src.inner.batch = lambda rows: asked.extend(rows["galaxy_id"]) or {}
    inside = table.index[0]
    rows = pd.DataFrame({"galaxy_id": ["a", "b"], "brickname": [BRICK, inside], "ra": [95.9, table.ra.iloc[0]],
                         "dec": [80.5, table.dec.iloc[0]]})
    out = src.batch(rows)
    assert isinstance(out["a"], _SourceFailure) and str(out["a"]).startswith(REASON_NOT_COVERED) and asked == ["b"]
    with pytest.raises(_SourceFailure, match=REASON_NOT_COVERED):
        src(next(rows.itertuples(index=False)))
    assert src.whole_bricks  # the coadd source's chunking by brick is kept
    spec.pop("survey_bricks")
    plain = _source(spec, SWEEPS[0])
    assert not hasattr(plain, "inner")  # no table: no filter
    with pytest.raises(_SourceFailure) as e:  # the source reads the brick (the mirror holds only g)
        plain(next(rows.assign(ra=95.95, dec=80.5).itertuples(index=False)))
    assert str(e.value) == "missing_band_r"
