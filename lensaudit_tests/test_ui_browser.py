"""The Dagster UI driven by a real browser: Debian's headless ``chromium`` through Playwright,
against ``dagster dev -w workspace.yaml`` on 127.0.0.1 with a fresh tiny-profile home.

One session, in order (each step needs the one before):

1. the global asset graph renders with every asset's name;
2. ``lens_catalog`` materialised by clicking its "Materialize" button: the run succeeds;
3. a backfill of two ``sweep_catalog`` partitions (added by the daemon's ``sweep_discovery_sensor``)
   chosen in the launch dialog: it completes
   with both partitions succeeded;
4. the planted fault: rows of the first partition stored again in the second's file (a
   galaxy in two sweeps, what bricks straddling a sweep boundary would give).  Re-materialising
   the first partition with its downstream ``negative_pool`` (selected in the graph, launched
   from the dialog) fails the blocking gate ``sweep_catalog_unique_galaxy_id``: the checks tab
   shows it failed and ``negative_pool`` is not executed.

Screenshots of the graph, a run, the backfill and the failed check go to the test's tmp dir,
and also to ``$LENSAUDIT_UI_SCREENSHOTS`` when set (``docs/screenshots`` is refreshed that way).
Playwright's own browser download is not used: the browser is Debian's ``chromium``
(``apt-get install chromium``); without it the test fails and says so.
"""

from __future__ import annotations

import os
import re
import shutil
import urllib.parse
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lensaudit_tests import _dagster_dev

pytestmark = [pytest.mark.browser, pytest.mark.dagster]

CHROMIUM = os.environ.get("LENSAUDIT_CHROMIUM", "/usr/bin/chromium")
# the flags this machine's closed network needs (no background connections, no sandbox as root)
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1600, "height": 1000}
UI_TIMEOUT_MS = 90_000      # a page or a button on two busy cores
RUN_TIMEOUT_MS = 420_000    # a run: its process, Spark's JVM, one subprocess per step
N_DUPLICATED_ROWS = 3


def _chromium() -> str:
    path = shutil.which(CHROMIUM) or (CHROMIUM if Path(CHROMIUM).is_file() else None)
    if path is None:
        pytest.fail(f"Chromium not found at {CHROMIUM!r}: the browser test drives Debian's chromium "
                    "(apt-get install -y chromium), or set LENSAUDIT_CHROMIUM to a Chromium executable")
    return path


def _shot(page, tmp_path: Path, name: str) -> None:
    out = tmp_path / "screenshots" / f"{name}.png"
    out.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(out))
    extra = os.environ.get("LENSAUDIT_UI_SCREENSHOTS")
    if extra:
        Path(extra).mkdir(parents=True, exist_ok=True)
        shutil.copy(out, Path(extra) / out.name)


def _names_shown(page) -> set[str]:
    """Texts of the graph's nodes: lower-case names, long ones middle-truncated ("detect…_evaluation")."""
    return set(page.get_by_text(re.compile(r"^[a-z0-9_…]+$")).all_inner_texts())


def _shown(name: str, texts: set[str]) -> bool:
    if name in texts:
        return True
    for t in texts:
        if "…" in t:
            head, tail = t.split("…", 1)
            if head and name.startswith(head) and name.endswith(tail) and len(head) + len(tail) < len(name):
                return True
    return False


def _expand_all_groups(page, attempts: int = 4) -> None:
    """The graph's context menu item; retried because the greeting dialog may close the menu."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for i in range(attempts):
        page.locator("body").click(button="right", position={"x": 1100, "y": 300})
        try:
            page.get_by_role("menuitem", name="Expand all groups").click(timeout=15_000)
            return
        except PlaywrightTimeout:
            if i == attempts - 1:
                raise


def _launch_from_dialog(page, partitions: list[str]) -> None:
    """In the open launch dialog: pick these partitions, launch, and follow the toast's "View"."""
    dialog = page.get_by_role("dialog")
    dialog.get_by_text("Select a partition or create one").click()
    for key in partitions:
        page.get_by_text(key, exact=True).first.click()
    page.keyboard.press("Escape")  # closes the partition list, not the dialog
    dialog.get_by_text(f"{len(partitions)} partition").first.wait_for()
    dialog.get_by_role("button", name=re.compile(r"^Launch (backfill|\d+ runs?)$")).click()
    page.get_by_role("link", name="View", exact=True).or_(page.get_by_role("button", name="View", exact=True)).click()


def _plant_galaxy_in_two_sweeps(home: Path, first: str, second: str) -> None:
    """The stored fault: the first partition's first rows stored again in the second's file."""
    from lensaudit.store import partition_file, write_parquet_atomic

    a = pq.read_table(partition_file(home, "sweep_catalog", first))
    b_path = partition_file(home, "sweep_catalog", second)
    b = pq.read_table(b_path)
    planted = pa.concat_tables([b, a.slice(0, N_DUPLICATED_ROWS).cast(b.schema)])
    write_parquet_atomic(planted.to_pandas(), b_path, schema=b.schema)


def test_dagster_ui_in_a_real_browser(tmp_path):
    chromium = _chromium()
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        pytest.fail("Python playwright missing: pip install -e '.[test]' installs it")
    from definitions import defs

    home = tmp_path / "lensaudit_home"
    home.mkdir()
    (home / "run_profile.json").write_text('{"profile": "tiny"}')
    dev = _dagster_dev.start(tmp_path, {"LENSAUDIT_HOME": str(home), "LENSAUDIT_PROFILE": "tiny"})
    try:
        _dagster_dev.wait_until_loaded(dev)
        with sync_playwright() as pw:
            ctx = pw.chromium.launch_persistent_context(str(tmp_path / "chromium_profile"), executable_path=chromium,
                                                        args=CHROMIUM_ARGS, headless=True, viewport=VIEWPORT)
            try:
                ctx.set_default_timeout(UI_TIMEOUT_MS)
                page = ctx.new_page()
                # a fresh instance greets with a newsletter dialog: skip it whenever it shows
                page.add_locator_handler(page.get_by_text("Join the Dagster community"),
                                         lambda: page.get_by_role("button", name="Skip").click())
                _session(page, dev.base_url, tmp_path, home, defs)
            finally:
                ctx.close()
    except BaseException:
        print(f"dagster dev log (tail):\n{dev.log_tail()}")
        raise
    finally:
        _dagster_dev.stop(dev)


def _wait_for_discovered_sweeps(dagster_home: Path, timeout_s: float = 180.0) -> list[str]:
    """The sweep partitions of the server's instance once the discovery sensor has ticked."""
    import time

    import dagster as dg

    from assets.sweeps import SWEEP_PARTITIONS_NAME

    deadline = time.monotonic() + timeout_s
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        while True:
            keys = instance.get_dynamic_partitions(SWEEP_PARTITIONS_NAME)
            if len(keys) >= 2:
                return keys
            if time.monotonic() > deadline:
                pytest.fail(f"sweep_discovery_sensor added {keys} within {timeout_s:.0f} s")
            time.sleep(2)


def _assert_architecture_partitions(dagster_home: Path, timeout_s: float = 120.0) -> None:
    """The daemon's architecture_partitions_sensor (on by default) has added the profile's
    architectures, and only them: "Materialize all" would train what the CLI trains."""
    import time

    import dagster as dg

    from assets.detector import ARCH_PARTITIONS_NAME
    from lensaudit.config import get_profile

    want = list(get_profile("tiny").detector.archs)
    deadline = time.monotonic() + timeout_s
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        while (keys := instance.get_dynamic_partitions(ARCH_PARTITIONS_NAME)) != want:
            if time.monotonic() > deadline:
                pytest.fail(f"architecture_partitions_sensor added {keys}, not {want}, within {timeout_s:.0f} s")
            time.sleep(2)


def _session(page, base: str, tmp_path: Path, home: Path, defs) -> None:
    from playwright.sync_api import expect

    from lensaudit.store import partition_file

    # 1. the graph: every asset of the code location by name
    page.goto(f"{base}/asset-groups")
    page.get_by_role("button", name=re.compile("Materialize all")).wait_for()
    page.get_by_role("button", name=re.compile("Hide navigation")).click()
    page.locator("button:has([aria-label=panel_show_right])").click()  # the group tree: more room for the graph
    _expand_all_groups(page)
    expected = sorted(k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys())
    page.get_by_text("training_manifest", exact=True).first.wait_for()
    missing = [n for n in expected if not _shown(n, _names_shown(page))]
    assert not missing, f"asset graph lacks {missing}; shows {sorted(_names_shown(page))}"
    _shot(page, tmp_path, "asset_graph")

    # 2. one asset materialised by clicking
    page.goto(f"{base}/assets/lens_catalog")
    page.get_by_role("button", name=re.compile(r"^\W*\w*\s*Materialize$")).click()
    page.get_by_role("link", name="View", exact=True).click()
    page.get_by_text("Success", exact=True).first.wait_for(timeout=RUN_TIMEOUT_MS)
    assert partition_file(home, "lens_catalog", "data").is_file()
    page.get_by_text(re.compile(r"Finished execution of step \"lens_catalog\"")).first.wait_for()
    _shot(page, tmp_path, "run_lens_catalog")

    # 3. a backfill of two sweep partitions, chosen in the dialog: the partitions are the ones
    # that the daemon's sweep_discovery_sensor (on by default) added to the fresh instance
    _wait_for_discovered_sweeps(tmp_path / "dagster_home")
    _assert_architecture_partitions(tmp_path / "dagster_home")
    page.goto(f"{base}/assets/sweep_catalog")
    page.get_by_role("button", name=re.compile(r"Materialize")).first.click()
    page.get_by_role("dialog").get_by_text("Select a partition or create one").click()
    page.get_by_text(re.compile(r"^Select all \(\d+\)$")).wait_for()
    keys = []
    for t in page.get_by_text(re.compile(r"^sweep-\S+\.fits$")).all_inner_texts():
        if t not in keys:
            keys.append(t)
    assert len(keys) >= 2, f"the partition list offers {keys}"
    first, second = keys[:2]
    page.keyboard.press("Escape")
    _launch_from_dialog(page, [first, second])
    page.get_by_text("Partition selection").wait_for()
    expect(page.locator("body")).to_contain_text(re.compile(r"Status\s*Succeeded"), timeout=RUN_TIMEOUT_MS)
    # the asset's row: partitions targeted 2, in progress 0, succeeded 2, failed 0
    expect(page.locator("body")).to_contain_text(re.compile(r"sweep_catalog\s*100% completed\s*2\s*0\s*2\s*0"))
    _shot(page, tmp_path, "backfill_two_sweeps")
    assert partition_file(home, "sweep_catalog", first).is_file() and partition_file(home, "sweep_catalog", second).is_file()

    # 4. the planted fault: the blocking gate is red and negative_pool does not run
    _plant_galaxy_in_two_sweeps(home, first, second)
    selection = urllib.parse.quote('key:"sweep_catalog" or key:"negative_pool"')
    page.goto(f"{base}/asset-groups~{selection}/")
    page.get_by_role("button", name=re.compile("Materialize all")).click()
    _launch_from_dialog(page, [first])
    page.get_by_text("Failure", exact=True).first.wait_for(timeout=RUN_TIMEOUT_MS)
    page.get_by_text(re.compile(r"Dependencies for step negative_pool failed")).first.wait_for()
    page.get_by_text(re.compile(r"blocking asset check failed.*sweep_catalog_unique_galaxy_id", re.S)).first.wait_for()
    _shot(page, tmp_path, "run_blocked_by_gate")
    assert not partition_file(home, "negative_pool", first).exists(), "negative_pool ran past a failed blocking gate"

    page.goto(f"{base}/assets/sweep_catalog?view=checks")
    gate = page.locator('[title="sweep_catalog_unique_galaxy_id"]').first  # the checks list's entry
    gate.click()
    entry = gate.locator("xpath=../..")
    entry.get_by_text("Failed", exact=True).wait_for()
    mark = entry.locator("[aria-label=cancel]")
    assert "red" in (mark.get_attribute("style") or ""), "the failed gate is not marked red"
    page.get_by_text("Evaluation result").wait_for()
    page.get_by_text("no galaxy_id in two rows or two sweeps").first.wait_for()  # the gate's own page
    _shot(page, tmp_path, "checks_failed_gate")
