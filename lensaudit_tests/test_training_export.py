"""``lensaudit export-training``: the detector's inputs as a home of their own (for a GPU
machine without Spark), stamps bit for bit, integrity gates green on the copy, the subset named
in its run record; bad input is a clear error."""

import json
import subprocess
import sys

import numpy as np
import pytest

from lensaudit.config import get_profile
from lensaudit.cutouts.store import CutoutReader
from lensaudit.gates.registry import GATES, StoreView
from lensaudit.tables import read_table
from lensaudit.training_export import export_training_home, pick_rows

CUTOUT_GATES = ("cutout_index_links_valid", "cutout_shards_match_content_hash", "cutout_qc_recomputed")


@pytest.fixture()
def small_home(tmp_path, lenscat_all):
    from lensaudit_tests.faults import home as H

    home = H.build_home(tmp_path / "src", lenscat_all)
    (home / "run_profile.json").write_text(json.dumps({"profile": H.PROFILE}))
    return home


def test_export_copies_the_rows_and_stamps_bit_for_bit(small_home, tmp_path):
    out = tmp_path / "gpu"
    info = export_training_home(small_home, out, {"train": 4, "val": 3}, seed=1)
    src_m, dst_m = read_table(small_home, "training_manifest"), read_table(out, "training_manifest")
    assert set(src_m.loc[src_m.label == 1, "galaxy_id"]) <= set(dst_m["galaxy_id"])  # every positive
    neg = dst_m[dst_m.label == 0].groupby("split").size().to_dict()
    assert neg == {"train": 4, "val": 3, "test": int(((src_m.label == 0) & (src_m.split == "test")).sum())}
    assert info["rows"] == len(dst_m) and "every positive" in info["data_source"] and "seed 1" in info["data_source"]
    src_i = read_table(small_home, "cutouts").set_index("galaxy_id")
    dst_i = read_table(out, "cutouts").set_index("galaxy_id")
    ok = dst_i[dst_i.cutout_ok]
    a = CutoutReader(small_home / "cutout_store").read(src_i.loc[ok.index].reset_index())
    b = CutoutReader(out / "cutout_store").read(ok.reset_index())
    assert a.tobytes() == b.tobytes()
    view = StoreView(out, get_profile("tiny"))
    by = {g.name: g for g in GATES}
    res = {n: by[n].evaluate(view) for n in CUTOUT_GATES}
    assert all(r.passed for r in res.values()), {n: r.details for n, r in res.items()}
    record = json.loads((out / "run_profile.json").read_text())
    assert record["profile"] == "tiny" and "of" in record["data_source"]


def test_the_same_seed_gives_the_same_bytes_and_a_sample_is_seeded(small_home, tmp_path):
    for d in ("a", "b"):
        export_training_home(small_home, tmp_path / d, {"train": 4}, seed=3)
    fa = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    fb = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file())
    assert fa == fb
    for rel in fa:
        if rel.name != "run_profile.json":  # names the output folder
            assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
    m = read_table(small_home, "training_manifest")
    assert not pick_rows(m, {"train": 2}, 0).equals(pick_rows(m, {"train": 2}, 1))


def test_bad_input_is_a_clear_error(small_home, tmp_path):
    export_training_home(small_home, tmp_path / "once")
    with pytest.raises(FileExistsError, match="already holds a store"):
        export_training_home(small_home, tmp_path / "once")
    for args, msg in ((["--negatives", "train=x"], "split=count"), (["--negatives", "dev=3"], "split=count")):
        r = subprocess.run([sys.executable, "-m", "lensaudit_cli.main", "export-training", "--home", str(small_home),
                            "--out", str(tmp_path / "new"), *args], capture_output=True, text=True)
        assert r.returncode == 1 and msg in r.stderr and "Traceback" not in r.stderr, r.stderr
    r = subprocess.run([sys.executable, "-m", "lensaudit_cli.main", "export-training", "--home", str(tmp_path / "none"),
                        "--out", str(tmp_path / "new2")], capture_output=True, text=True)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
