"""Audit a detector other than the trained checkpoint: an external model in process, or a
closed model's scores imported from a file (the offline mode).

Both run the selection function's own code (``run.run_completeness``,
``failure_run.run_failure_modes``, the registry's selection gates) with a ``RawScorer`` in
place of the checkpoint; nothing of the math is repeated here.  The results go to an
*audit folder* ``out`` (default ``$LENSAUDIT_HOME/external/<name>``) laid out like a home:
``assets/detector_evaluation/<name>/val_scores.parquet`` (the validation split's scores,
where the operating thresholds are chosen), ``assets/detector_evaluation/<name>.parquet``
(the test split's, for the false-positive failure modes), ``assets/completeness_table*``,
``completeness_injections``, ``completeness_brackets`` (with ``completeness_bracket_records``), ``adversarial_scores``,
``failure_modes``, ``failure_missed_injections``, ``plots/`` and ``external_audit.json``;
the home's own assets (the trained detector's) are never touched.  The selection gates
judge an audit folder through ``lensaudit.external_gates``.

Offline mode (``export_injections`` / ``import_scores``): the export runs the same scoring
calls with a recorder that writes every stamp it is asked to score, raw, to one NPZ in
the research group's format stacked along a leading axis (``cutout`` (N, 101, 101, 3)
float32 nmgy per pixel, g, r, z; ``id`` (N,) strings ``<kind>:<row>``; ``kind``;
``sha256`` of each stamp's (3, 101, 101) float32 bytes; ``meta_*`` scalars), and keeps the
ids and hashes beside the home (``$LENSAUDIT_HOME/external/export/``).  The import reads
the group's scores (``id`` and one of ``logit`` / ``probability``), replays the same calls
on the same device (the stamps are regenerated from the seeds and re-hashed: a stamp that
differs from the exported one is an error) and answers each call with the group's scores.
Kinds: ``val`` / ``test`` (the manifest's validation / test rows, by galaxy_id), ``host``
(each injection host without an arc), ``injection`` (by injection_id), ``bracket-<variant>``
(the systematics brackets' re-injections, by injection_id), ``null`` (null controls, by
host), ``ring`` (host + synthetic ring), ``lens`` / ``suppressed`` (real test lenses and
their arc-suppressed copies).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from lensaudit.config import Profile
from lensaudit.cutouts.store import CutoutReader
from lensaudit.detector.data import META_COLUMNS, join_manifest_index
from lensaudit.detector.scorer import RawScorer, probability_to_logit, scoring_stage
from lensaudit.evaluation.metrics import sigmoid
from lensaudit.evaluation.run import val_scores_path
from lensaudit.selection.adversarial import score_batches
from lensaudit.selection.failure_run import run_failure_modes
from lensaudit.selection.run import run_completeness, score_selection
from lensaudit.store import atomic_path, file_sha256, partition_file, safe_join, write_parquet_atomic
from lensaudit.tables import read_table
from lensaudit.survey.instrument import BANDS, PIXSCALE_ARCSEC, STAMP_PIX

EXPORT_FORMAT = "lensaudit-injections-1"
SPLITS = ("val", "test")


class OfflineError(ValueError):
    """A bad export or scores file (missing ids, NaN scores, a stamp that changed)."""


def audit_dir(home: Path, name: str) -> Path:
    return safe_join(home, "external", name)


def split_rows(home: Path, split: str) -> pd.DataFrame:
    """The ``cutout_ok`` manifest rows of ``split`` with their index columns, sorted by
    galaxy_id (the rows and order ``detector.data.load_split`` scores)."""
    rows = join_manifest_index(read_table(home, "training_manifest"), read_table(home, "cutouts"))
    part = rows[rows["split"] == split].sort_values("galaxy_id", kind="stable")
    return part[part["cutout_ok"]].reset_index(drop=True)


def score_splits(home: Path, model, crop: int, device: str, chunk: int = 2048) -> dict[str, pd.DataFrame]:
    """{split: its rows (META_COLUMNS) with ``logit`` and ``probability``} for the validation
    and test splits, raw stamps read in chunks and scored through ``score_batches``."""
    reader = CutoutReader(safe_join(home, "cutout_store"))
    out = {}
    for split in SPLITS:
        ok = split_rows(home, split)
        with scoring_stage(model, split, ok["galaxy_id"]):
            parts = [score_batches(model, reader.read(ok.iloc[s:s + chunk]), crop, device, chunk=chunk)
                     for s in range(0, len(ok), chunk)]
        logit = np.concatenate(parts) if parts else np.zeros(0)
        out[split] = ok[[c for c in META_COLUMNS if c in ok.columns]].assign(logit=logit, probability=sigmoid(logit))
    return out


def audit_detector(home: Path, profile: Profile, scorer: RawScorer, device: str, out: Path | None = None,
                   provenance: dict | None = None) -> dict:
    """Score the validation and test splits with ``scorer``, run the selection function and
    the failure modes with it, write everything under ``out``; the summary (also written to
    ``out/external_audit.json``)."""
    out = audit_dir(home, scorer.name) if out is None else Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    scored = score_splits(home, scorer, scorer.crop, device)
    write_parquet_atomic(scored["val"], val_scores_path(out, scorer.name))
    write_parquet_atomic(scored["test"], partition_file(out, "detector_evaluation", scorer.name))
    summary, _ = run_completeness(home, profile, device, detector=scorer, out=out)
    fm = run_failure_modes(home, profile, arch=scorer.name, out=out)
    plots = safe_join(out, "plots")
    plots.mkdir(exist_ok=True)
    for gname, png in fm["galleries"].items():
        with atomic_path(safe_join(plots, f"gallery_{gname}.png")) as tmp:
            tmp.write_bytes(png)
    summary.update({"detector": scorer.name, "home": str(home), "out": str(out), "profile": profile.name,
                    "val_rows": len(scored["val"]), "test_rows": len(scored["test"]), "missed": fm["missed"],
                    "seconds": time.perf_counter() - t0, **(provenance or {})})
    with atomic_path(safe_join(out, "external_audit.json")) as tmp:
        tmp.write_text(json.dumps(summary, indent=2, sort_keys=True, default=str))
    return summary


# ----------------------------------------------------------------------------- offline mode

def stamp_sha256(stamps: np.ndarray) -> list[str]:
    """sha256 (hex) of each (C, H, W) float32 stamp's C-order bytes."""
    a = np.ascontiguousarray(stamps, dtype=np.float32)
    return [hashlib.sha256(s.tobytes()).hexdigest() for s in a]


class _Staged(RawScorer):
    """A scorer that knows the ids of the rows each call holds (``scoring_stage``)."""

    def __init__(self, name: str):
        self.name, self.crop = name, 0
        self._ids: list[str] | None = None
        self._pos = 0

    @contextlib.contextmanager
    def stage(self, kind: str, ids):
        if self._ids is not None:
            raise RuntimeError(f"scoring stage {kind!r} opened inside another")
        self._ids, self._pos, self._kind = [f"{kind}:{i}" for i in ids], 0, kind
        try:
            yield
            if self._pos != len(self._ids):
                raise RuntimeError(f"stage {kind!r} scored {self._pos} of its {len(self._ids)} rows")
        finally:
            self._ids = None

    def _take(self, n: int) -> list[str]:
        if self._ids is None:
            raise RuntimeError("a scoring call outside any scoring_stage: its stamps have no ids")
        if self._pos + n > len(self._ids):
            raise RuntimeError(f"stage {self._kind!r} scored more stamps than its {len(self._ids)} rows")
        ids = self._ids[self._pos:self._pos + n]
        self._pos += n
        return ids


class StampRecorder(_Staged):
    """Records every stamp it is asked to score (raw, (H, W, C) float32 appended to a raw
    file) with its id, kind and sha256; answers 0 (the export needs no score)."""

    def __init__(self, raw_file):
        super().__init__("export")
        self.f, self.ids, self.kinds, self.sha = raw_file, [], [], []

    def score_raw(self, stamps: torch.Tensor) -> torch.Tensor:
        a = stamps.detach().float().cpu().numpy()
        if a.shape[1:] != (len(BANDS), STAMP_PIX, STAMP_PIX):
            raise RuntimeError(f"unexpected stamp shape {a.shape}")
        ids = self._take(len(a))
        self.f.write(np.ascontiguousarray(np.transpose(a, (0, 2, 3, 1)), dtype="<f4").tobytes())
        self.ids += ids
        self.kinds += [self._kind] * len(a)
        self.sha += stamp_sha256(a)
        return torch.zeros(len(a), dtype=torch.float64)


def _write_npy_member(zf: zipfile.ZipFile, name: str, arr: np.ndarray) -> None:
    with zf.open(f"{name}.npy", "w", force_zip64=True) as f:
        np.lib.format.write_array(f, np.asarray(arr), allow_pickle=False)


def write_export_npz(path: Path, raw_path: Path, n: int, ids, kinds, sha, meta: dict) -> None:
    """The NPZ, atomically, streaming the stamps from the raw file (memory stays bounded)."""
    from numpy.lib import format as npf

    shape = (n, STAMP_PIX, STAMP_PIX, len(BANDS))
    with atomic_path(path) as tmp:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
            with zf.open("cutout.npy", "w", force_zip64=True) as f, open(raw_path, "rb") as raw:
                npf.write_array_header_2_0(f, {"descr": npf.dtype_to_descr(np.dtype("<f4")), "fortran_order": False,
                                               "shape": shape})
                while block := raw.read(64 << 20):
                    f.write(block)
            _write_npy_member(zf, "id", np.array(ids, dtype=str))
            _write_npy_member(zf, "kind", np.array(kinds, dtype=str))
            _write_npy_member(zf, "sha256", np.array(sha, dtype=str))
            for k, v in meta.items():
                _write_npy_member(zf, f"meta_{k}", np.asarray(v))


def export_dir(home: Path) -> Path:
    return safe_join(home, "external", "export")


def _run_key(profile: Profile) -> dict:
    """What the replay must share with the export for the stamps to be the same."""
    return {"profile": profile.name, "selection": repr(profile.selection), "torch": torch.__version__}


def export_injections(home: Path, profile: Profile, out_npz: str | Path, device: str = "cpu") -> dict:
    """Write every stamp the selection function scores (and the validation / test rows) to
    ``out_npz``; the ids and hashes to ``$LENSAUDIT_HOME/external/export/``."""
    out_npz = Path(out_npz)
    if out_npz.suffix != ".npz":
        raise OfflineError(f"--out {out_npz}: the export is one .npz file")
    if not out_npz.parent.is_dir():
        raise OfflineError(f"--out {out_npz}: folder {out_npz.parent} does not exist")
    edir = export_dir(home)
    edir.mkdir(parents=True, exist_ok=True)
    fd, raw_name = tempfile.mkstemp(suffix=".raw", dir=out_npz.parent)
    raw_path = Path(raw_name)
    try:
        with os.fdopen(fd, "wb") as raw:
            rec = StampRecorder(raw)
            score_splits(home, rec, 0, device)
            score_selection(home, profile, rec, 0, device)
        n = len(rec.ids)
        if len(set(rec.ids)) != n:
            raise RuntimeError("duplicate export ids")
        meta = {"format": EXPORT_FORMAT, "bands_requested": BANDS, "size": STAMP_PIX, "pixel_scale": PIXSCALE_ARCSEC,
                "units": "nanomaggies per pixel", "layout": "N,H,W,C", "n": n, "device": device,
                **_run_key(profile)}
        write_export_npz(out_npz, raw_path, n, rec.ids, rec.kinds, rec.sha, meta)
    finally:
        raw_path.unlink(missing_ok=True)
    table = pd.DataFrame({"id": rec.ids, "kind": rec.kinds, "sha256": rec.sha})
    write_parquet_atomic(table, safe_join(edir, "ids.parquet"))
    info = {**meta, "npz": str(out_npz.resolve()), "npz_sha256": file_sha256(out_npz),
            "counts": table["kind"].value_counts().sort_index().to_dict()}
    with atomic_path(safe_join(edir, "export.json")) as tmp:
        tmp.write_text(json.dumps(info, indent=2, sort_keys=True))
    return info


def read_export(home: Path) -> tuple[dict, pd.DataFrame]:
    edir = export_dir(home)
    try:
        info = json.loads((edir / "export.json").read_text())
        ids = pd.read_parquet(edir / "ids.parquet")
    except (OSError, ValueError) as exc:
        raise OfflineError(f"no export under {edir} (run lensaudit export-injections first): "
                           f"{type(exc).__name__}: {exc}") from exc
    return info, ids


def _examples(values) -> str:
    v = list(values)
    return ", ".join(map(str, v[:5])) + (f" (and {len(v) - 5} more)" if len(v) > 5 else "")


def read_scores(path: str | Path, expected_ids) -> tuple[pd.Series, str]:
    """(logit per id as float64, the column given: ``logit`` or ``probability``) from a
    Parquet or CSV file with the columns ``id`` and exactly one of ``logit`` (natural
    log-odds) / ``probability`` (in [0, 1]).  Every exported id must be there exactly once,
    no other id, every score finite: else an ``OfflineError`` naming the problem."""
    p = Path(path)
    try:
        if p.suffix == ".parquet":
            df = pd.read_parquet(p)
        elif p.suffix == ".csv":
            df = pd.read_csv(p, dtype={"id": str}, keep_default_na=False, na_values=["", "nan", "NaN", "NA"])
        else:
            raise OfflineError(f"{p}: scores must be a .parquet or .csv file")
    except OfflineError:
        raise
    except Exception as exc:  # noqa: BLE001 - any reader failure means "not a scores table"
        raise OfflineError(f"{p}: unreadable ({type(exc).__name__}: {str(exc)[:200]})") from exc
    if "id" not in df.columns:
        raise OfflineError(f"{p}: no 'id' column (columns: {list(df.columns)})")
    given = [c for c in ("logit", "probability") if c in df.columns]
    if len(given) != 1:
        raise OfflineError(f"{p}: give exactly one score column, 'logit' (log-odds) or 'probability' "
                           f"(found {given or 'neither'})")
    col = given[0]
    ids = df["id"].astype(str)
    try:
        v = pd.to_numeric(df[col], errors="raise").to_numpy(np.float64)
    except (ValueError, TypeError) as exc:
        raise OfflineError(f"{p}: column {col!r} is not numeric ({exc})") from exc
    bad = ~np.isfinite(v)
    if bad.any():
        raise OfflineError(f"{p}: {int(bad.sum())} {col} values are NaN or infinite, e.g. ids {_examples(ids[bad])}")
    if col == "probability" and ((v < 0) | (v > 1)).any():
        out = (v < 0) | (v > 1)
        raise OfflineError(f"{p}: {int(out.sum())} probabilities outside [0, 1], e.g. ids {_examples(ids[out])}; "
                           "are these logits? name the column 'logit'")
    dup = ids[ids.duplicated()]
    if len(dup):
        raise OfflineError(f"{p}: {len(dup)} ids appear more than once, e.g. {_examples(dup.unique())}")
    expected = pd.Index(expected_ids)
    missing = expected.difference(pd.Index(ids))
    if len(missing):
        raise OfflineError(f"{p}: {len(missing)} of the {len(expected)} exported ids have no score, e.g. "
                           f"{_examples(missing)}")
    unknown = pd.Index(ids).difference(expected)
    if len(unknown):
        raise OfflineError(f"{p}: {len(unknown)} ids were not exported, e.g. {_examples(unknown)}")
    logit = probability_to_logit(v) if col == "probability" else v
    return pd.Series(logit, index=ids.to_numpy()), col


class ScoreLookup(_Staged):
    """Answers each scoring call with the imported scores of its ids, after checking that
    the stamps it is given are the exported ones (sha256)."""

    def __init__(self, name: str, logits: pd.Series, sha: pd.Series):
        super().__init__(name)
        self.logits, self.sha = logits, sha

    def score_raw(self, stamps: torch.Tensor) -> torch.Tensor:
        ids = self._take(len(stamps))
        got = stamp_sha256(stamps.detach().float().cpu().numpy())
        want = self.sha.loc[ids].to_numpy()
        diff = [i for i, g, w in zip(ids, got, want) if g != w]
        if diff:
            raise OfflineError(f"{len(diff)} regenerated stamps differ from the exported ones, e.g. {_examples(diff)}: "
                               "the home, the profile or the code changed since the export; export again")
        return torch.from_numpy(self.logits.loc[ids].to_numpy(np.float64))


def import_scores(home: Path, profile: Profile, scores_path: str | Path, name: str = "imported",
                  out: Path | None = None, device: str | None = None) -> dict:
    """Rebuild the completeness tables, the failure modes and the selection gates' inputs from
    a group's scores of the exported stamps (``audit_detector`` with a ``ScoreLookup``)."""
    info, ids = read_export(home)
    key = _run_key(profile)
    for k, v in key.items():
        if info.get(k) != v:
            raise OfflineError(f"the export was made with {k} {info.get(k)!r}, this import runs {v!r}: the stamps "
                               "would not be the same; export again")
    device = device or info["device"]
    if device.split(":")[0] != str(info["device"]).split(":")[0]:
        raise OfflineError(f"the export ran on {info['device']}; the import must replay it there (its random "
                           f"draws are the device's), not on {device}")
    logits, col = read_scores(scores_path, ids["id"])
    lookup = ScoreLookup(name, logits, ids.set_index("id")["sha256"])
    prov = {"mode": "imported scores", "scores_file": str(Path(scores_path).resolve()),
            "scores_sha256": file_sha256(scores_path), "scores_column": col, "export_npz_sha256": info["npz_sha256"]}
    return audit_detector(home, profile, lookup, device, out, provenance=prov)
