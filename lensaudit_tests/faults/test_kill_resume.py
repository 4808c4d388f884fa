"""Kill and resume (issue 15): a cutouts job SIGKILLed inside a shard write and inside the
Parquet write of its index, then run again, ends byte-identical to a run never killed:
nothing lost, nothing duplicated, no partial file visible (the half-written temporary is a
dotfile no reader opens, removed by the resumed write).  The child stops inside the write
deterministically (``faults/kill_child.py``), the parent kills it there."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pandas as pd
import pytest

from lensaudit.config import get_profile
from lensaudit.gates.gate_spec import StoreView
from lensaudit.gates.registry import GATES
from lensaudit.store import read_asset

CHILD = Path(__file__).with_name("kill_child.py")
ROOT = Path(__file__).resolve().parents[2]
CUTOUT_GATES = ("cutout_index_links_valid", "cutout_shards_match_content_hash", "cutout_qc_recomputed")


def _child(home: Path, kill_in: str = "") -> Path | None:
    """Run the child; with ``kill_in`` SIGKILL it once it reports being inside that write and
    return the temporary file it was writing."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="1")
    p = subprocess.Popen([sys.executable, str(CHILD), str(home), kill_in], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    watchdog = threading.Timer(120, p.kill)  # a child that never reaches the write fails the test, never hangs it
    watchdog.start()
    try:
        if not kill_in:
            out, err = p.communicate()
            assert p.returncode == 0 and "DONE" in out, err[-2000:]
            return None
        line = p.stdout.readline()
        assert line.startswith("IN_WRITE "), (line, p.stderr.read()[-2000:])
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        assert p.returncode == -signal.SIGKILL
        return Path(line.split(" ", 1)[1].strip())
    finally:
        watchdog.cancel()
        p.stdout.close()
        p.stderr.close()


def _files(home: Path) -> dict[str, bytes]:
    return {str(p.relative_to(home)): p.read_bytes() for p in sorted(home.rglob("*")) if p.is_file()}


def _visible(home: Path) -> dict[str, bytes]:
    return {k: v for k, v in _files(home).items() if not Path(k).name.startswith(".")}


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory):
    ref = tmp_path_factory.mktemp("kill_ref") / "home"
    _child(ref)
    files = _files(ref)
    assert not [k for k in files if k.endswith(".tmp")]
    return files


def _assert_resumed_like_clean(home: Path, clean: dict[str, bytes]) -> None:
    got = _files(home)
    assert got.keys() == clean.keys(), (sorted(set(got) ^ set(clean)))  # no temporary left, no shard extra
    assert all(got[k] == clean[k] for k in clean), [k for k in clean if got[k] != clean[k]]
    index = read_asset(home, "cutouts")
    assert index["galaxy_id"].is_unique and len(index) == 40  # nothing lost, nothing duplicated
    refs = set(index.loc[index["cutout_ok"], "cutout_path"])
    assert refs == {k.removeprefix("cutout_store/") for k in got if k.startswith("cutout_store/")}
    view = StoreView(home, get_profile("tiny"))
    res = {g.name: g.evaluate(view) for g in GATES if g.name in CUTOUT_GATES}
    assert all(r.passed for r in res.values()), {n: r.details for n, r in res.items() if not r.passed}


def test_kill_inside_a_shard_write_then_resume(tmp_path, clean_run):
    home = tmp_path / "home"
    tmp = _child(home, "shard:2")
    # killed with one shard published and the second half-written under a hidden temporary name
    assert tmp.is_file() and tmp.name.startswith(".") and tmp.name.endswith(".tmp") and tmp.stat().st_size > 0
    visible = _visible(home)
    assert len([k for k in visible if k.startswith("cutout_store/shards/")]) == 1
    assert all(clean_run.get(k) == v for k, v in visible.items())  # what is visible is complete and final
    with pytest.raises(FileNotFoundError):
        read_asset(home, "cutouts")  # no index published
    _child(home)
    assert not tmp.exists()
    _assert_resumed_like_clean(home, clean_run)


def test_kill_inside_the_index_parquet_write_then_resume(tmp_path, clean_run):
    home = tmp_path / "home"
    tmp = _child(home, "parquet:1")
    assert tmp.is_file() and tmp.name.startswith(".") and tmp.stat().st_size > 0
    visible = _visible(home)
    assert not [k for k in visible if k.startswith("assets/")]  # the index is not visible half-written
    assert all(clean_run.get(k) == v for k, v in visible.items())  # the shards are, complete
    _child(home)
    _assert_resumed_like_clean(home, clean_run)
    # a re-run killed while replacing a published index leaves the old index whole
    tmp = _child(home, "parquet:1")
    assert tmp.is_file()
    assert _visible(home) == _visible_of(clean_run)
    assert len(pd.read_parquet(next((home / "assets" / "cutouts").glob("*.parquet")))) == 40
    _child(home)
    _assert_resumed_like_clean(home, clean_run)


def _visible_of(files: dict[str, bytes]) -> dict[str, bytes]:
    return {k: v for k, v in files.items() if not Path(k).name.startswith(".")}


def test_only_temporaries_of_dead_writers_of_this_host_are_reaped(tmp_path):
    from lensaudit.store import _writer_tag, reap_stale_temps, write_parquet_atomic

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = _writer_tag().split("-", 1)[1]
    names = {"dead": f".t.parquet.{dead.pid}-{host}.abc.tmp", "self": f".t.parquet.{_writer_tag()}.def.tmp",
             "parent": f".t.parquet.{os.getppid()}-{host}.ghi.tmp", "other_host": f".t.parquet.{dead.pid}-elsewhere.jkl.tmp",
             "untagged": ".t.parquet.mno.tmp", "other_target": f".u.parquet.{dead.pid}-{host}.pqr.tmp"}
    for n in names.values():
        (tmp_path / n).write_bytes(b"half")
    assert reap_stale_temps(tmp_path, "t.parquet.") == [tmp_path / names["dead"]]
    write_parquet_atomic(pd.DataFrame({"a": [1]}), tmp_path / "u.parquet")  # a write reaps its own target's
    left = {p.name for p in tmp_path.iterdir()}
    assert left == {names[k] for k in ("self", "parent", "other_host", "untagged")} | {"u.parquet"}
