"""A CLI run started with SIGTERM ignored (what a background start plus Dagster's in-process
interrupt handling leaves behind) still stops its compute-log ``tail`` processes: no 2 x 30 s
wait per run (Dagster records "Exception while cleaning up compute log capture"), no orphaned
tail holding the caller's output pipe open (a caller reading through pipes, as the test suite
does, would hang; this test writes to files so that the fault shows as a failure)."""

import glob
import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.dagster, pytest.mark.timeout(600)]


def _ignore_sigterm():
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def test_a_run_started_with_sigterm_ignored_stops_its_tails(tmp_path):
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "LENSAUDIT_"))}
    with open(tmp_path / "out", "w") as out, open(tmp_path / "err", "w") as err:
        r = subprocess.run([sys.executable, "-m", "lensaudit_cli.main", "materialize", "--profile", "tiny", "--select",
                            "lens_catalog", "--home", str(home)], cwd=REPO, env=env, stdout=out, stderr=err,
                           timeout=300, preexec_fn=_ignore_sigterm)
    assert r.returncode == 0, (tmp_path / "err").read_text()[-3000:]
    problems = []
    for db in glob.glob(str(home / "dagster" / "history" / "runs" / "*.db")):
        if not db.endswith("index.db"):
            problems += [json.loads(ev)["user_message"] for (ev,) in sqlite3.connect(db).execute(
                "select event from event_logs where event like '%cleaning up compute log%'")]
    assert problems == []


def test_the_cli_restores_sigterm_only_when_it_was_ignored():
    code = ("import signal\nfrom lensaudit_cli.main import terminable_by_sigterm\n"
            "signal.signal(signal.SIGTERM, signal.SIG_IGN); terminable_by_sigterm()\n"
            "a = signal.getsignal(signal.SIGTERM)\n"
            "h = lambda *x: None; signal.signal(signal.SIGTERM, h); terminable_by_sigterm()\n"
            "print(a == signal.SIG_DFL, signal.getsignal(signal.SIGTERM) is h)\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.stdout.split() == ["True", "True"], r.stderr
