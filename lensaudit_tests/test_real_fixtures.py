"""The vendored real fixtures are complete, unmodified and read from inside the repository."""

import hashlib
import re
from pathlib import Path

from conftest import REAL_DATA

TESTS = Path(__file__).resolve().parent


def _listed() -> dict[str, str]:
    text = (REAL_DATA / "README.txt").read_text()
    block = text.split("\nSHA256SUMS\n", 1)[1]
    return {path.removeprefix("./"): digest for digest, path in (ln.split() for ln in block.splitlines() if ln.strip())}


def test_every_vendored_file_is_listed_and_unmodified():
    listed = _listed()
    present = {p.relative_to(REAL_DATA).as_posix() for p in REAL_DATA.rglob("*") if p.is_file() and p.name != "README.txt"}
    assert present == set(listed)
    for rel, digest in listed.items():
        assert hashlib.sha256((REAL_DATA / rel).read_bytes()).hexdigest() == digest, rel
    assert sum((REAL_DATA / rel).stat().st_size for rel in listed) < 6_000_000  # a few MB at most


def test_fixtures_live_in_the_repository_and_nothing_points_outside():
    assert REAL_DATA.is_relative_to(TESTS)
    outside = re.compile(r"shared[/\"', ]+data|LENSAUDIT_" + r"SHARED|pytest\.skip\(")
    for f in TESTS.glob("*.py"):
        assert not outside.search(f.read_text()), f.name
