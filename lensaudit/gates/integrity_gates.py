"""Gates that verify stored bytes and cross-table links instead of trusting them.

Cutout store (asset ``cutouts``):

- ``cutout_index_links_valid``: every ``cutout_ok`` row points to an existing shard
  (a plain relative name inside the store) at an offset in ``[0, rows)``, no two rows
  point to the same stamp, failed rows carry ``cutout_path = ''`` and offset -1.
- ``cutout_shards_match_content_hash``: every shard the index references is re-hashed
  (sha256 of its float32 (N, C, H, W) data, as ``spark_jobs.cutouts`` names it:
  ``<sweep>-<k>-<first 16 hex>.npy``) and compared with its name.
- ``cutout_qc_recomputed``: the QC of every ``cutout_ok`` row is checked against the stamp
  the index points to (``lensaudit.cutouts.qc.quality``: all-NaN or zero-filled bands,
  NaN fractions, per-band p1/p50/p99/MAD) within rtol ``QC_RTOL``.  On a finite stamp the
  per-band p1/p50/p99 of a 101^2 stamp and the MAD's median are order statistics, each
  verified by counting (its k-th smallest pixel lies in the index value's tolerance iff
  #(x < lo) <= k and #(x <= hi) >= k + 1: exact, and ~4x cheaper than selecting it); any
  other stamp is recomputed with ``quality``.  The per-band percentiles are per-stamp
  statistics, so an offset shifted by one (or a stamp swapped) shows up as a mismatch.

Detector (asset ``detector_evaluation``, every architecture of the profile that has an
``evaluation.json``):

- ``detector_artefact_hashes_match``: sha256 of ``best.pt`` equals ``run_info.json``'s and
  ``evaluation.json``'s ``checkpoint_sha256``; sha256 of the scored table equals
  ``evaluation.json``'s ``scored_table_sha256``; the stored training manifest and cutout index
  re-hash (``detector.run.training_input_hashes``) to the ``manifest_sha256`` /
  ``cutout_index_sha256`` the detector recorded when it trained (a row or stamp pointer changed,
  or a partition file deleted, after training is red).
- ``detector_auc_recomputed``: the test ROC AUC recomputed from the scored table's
  ``label`` and ``logit`` equals the stored ``metrics.roc_auc.value``; ``probability`` is
  ``sigmoid(logit)``.
- ``detector_logits_rescored``: every positive and ``2 RESCORE_ROWS`` negatives (half evenly
  spaced, half drawn with a fresh, recorded seed, so a forger cannot know which rows are
  checked) of the scored test rows *and* of the validation scores the operating thresholds
  come from are re-read from the cutout store, preprocessed (``raw_robust``, the run's crop)
  and re-scored in float32 on the CPU with the checkpoint loaded by plain
  ``torch.load(weights_only=True)``; every logit must agree with the stored one within
  ``atol + rtol |logit|`` (tighter when the evaluation ran on the CPU, looser for a GPU's TF32
  convolutions).
- ``detector_scored_rows_match_manifest``: the scored test and validation rows are exactly
  the rows ``detector.data.load_split`` reads (the split's manifest rows with a ``cutout_ok``
  index row, galaxy_id order) with the manifest's label, tier, pool, weight and conditions.
  (The metrics in ``evaluation.json`` are recomputed from these tables by
  ``model_gates.detector_evaluation_recomputed``.)

Training manifest (asset ``training_manifest``; the pool gates judge the pool, these the
rows actually trained and evaluated on):

- ``training_manifest_negatives_satisfy_cuts``: every negative (N1 and N2) passes every
  parity cut of ``lensaudit.spec.negative_cuts()`` (brick_primary, dec range, nobs in g, r,
  z, TYPE, z mag, maskbits), recomputed on its ``sweep_catalog`` row *and* on the copies the
  manifest carries (dec, nobs_z, type, flux_z); its manifest coordinates equal the sweep
  row's.  (Positives are held to the parity cuts by ``manifest_positives_in_domain``.)
- ``training_manifest_negatives_far_from_known_lenses``: no negative lies within the
  spec's 11" of any known lens (``StoreView.lenscat_all``, every entry of any kind), on its
  manifest and on its sweep coordinates.

Injection provenance (per-injection tables of the selection function and of the realism
check):

- ``completeness_injections_provenance`` (asset ``completeness_table``): every host of
  ``completeness_injections`` and of the null-control / ring rows of ``adversarial_scores``
  is a test-split negative of the manifest outside every train/val HEALPix pixel and a row
  of ``injection_hosts`` whose stamp pointer (cutout_path, cutout_offset) equals the cutout
  index's ``cutout_ok`` entry for that galaxy_id (every host row is checked, used or not);
  an injection's PSF/depth bins and per-band PSF FWHM are its host's; arc-suppression rows
  are test-split positives with a good cutout.
- ``failure_missed_injections_provenance`` (asset ``failure_modes``): the same for
  ``failure_missed_injections``, whose rows must also be injections of
  ``completeness_injections`` with the same host.
- ``injection_realism_hosts_provenance`` (asset ``injection_realism``): every ``injected``
  row's host is a test-split negative with a good cutout; every ``real`` row a positive.

Every gate here is ERROR and blocking; one that cannot be computed fails.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from lensaudit.gates.result import ERROR, GateResult, cannot_compute
from lensaudit.survey.instrument import BANDS, STAMP_PIX

CUTOUTS = "cutouts"
MANIFEST = "training_manifest"
DETECTOR = "detector_evaluation"
#: manifest coordinates must equal the sweep row's within this [arcsec]
COORD_TOL_ARCSEC = 1e-3
#: columns of ``sweep_catalog`` the manifest cut gate reads
SWEEP_CUT_COLUMNS = ["galaxy_id", "ra", "dec", "nobs_g", "nobs_r", "nobs_z", "type", "flux_z", "maskbits",
                     "brick_primary"]
SHARD_NAME = re.compile(r"-([0-9a-f]{16})\.npy$")
QC_RTOL = 1e-5
#: logit tolerance (atol, rtol) by the device the evaluation scored on.  CUDA: cuDNN
#: convolutions run in TF32 by default; a resnet18 trained to logits in [-13, 19] scored
#: float32 on an H100 (channels_last, TF32 convs) vs float32 on the CPU differed by at most
#: 0.021 (p99 0.010) over 1024 stamps, all inside 0.05 + 0.01 |logit|
RESCORE_TOL = {"cpu": (1e-3, 1e-4), "cuda": (5e-2, 1e-2)}
RESCORE_ROWS = 64
_BLOCK = 256  # stamps hashed / checked per step
_QC_SUBBLOCK = 32  # stamps verified together inside a block (~4 MB of float32 per counting pass)
QC_THREADS = 4  # shards hashed / QC blocks recomputed at once (at most the machine's cores; the verdict does not depend on it)


def _threads() -> int:
    return max(1, min(QC_THREADS, os.cpu_count() or 1))


# ---- cutout store --------------------------------------------------------------------

def _open_shard(store: Path, rel: str):
    """(memory-mapped float32 (N, C, H, W) array, "") or (None, why)."""
    from lensaudit.store import check_relpath

    try:
        check_relpath(rel)
    except ValueError:
        return None, "unsafe shard path"
    p = store / rel
    if not p.is_file():
        return None, "missing"
    try:
        arr = np.load(p, mmap_mode="r", allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - any unreadable header
        return None, f"unreadable ({type(exc).__name__})"
    if arr.dtype != np.float32 or arr.ndim != 4:
        return None, f"shape {arr.shape} dtype {arr.dtype}"
    return arr, ""


def _ok_rows(index: pd.DataFrame) -> pd.DataFrame:
    return index[index["cutout_ok"].astype(bool)]


def index_links_valid(index: pd.DataFrame, store: Path) -> GateResult:
    name = "cutout_index_links_valid"
    threshold = "0 broken links"
    if index.empty:
        return cannot_compute(name, CUTOUTS, ERROR, "empty cutout index", threshold)
    ok = _ok_rows(index)
    problems: dict[str, int] = {}
    examples: list[str] = []

    def flag(kind: str, rows: pd.DataFrame):
        if len(rows):
            problems[kind] = problems.get(kind, 0) + int(len(rows))
            examples.extend(f"{kind}: {g}" for g in rows["galaxy_id"].astype(str).head(3))

    offs = pd.to_numeric(ok["cutout_offset"], errors="coerce")
    flag("negative_or_missing_offset", ok[~(offs >= 0)])
    paths = ok["cutout_path"].fillna("").astype(str)
    flag("empty_path", ok[paths == ""])
    for rel, rows in ok[(paths != "") & (offs >= 0)].groupby(paths[(paths != "") & (offs >= 0)]):
        arr, why = _open_shard(store, rel)
        if arr is None:
            flag(f"shard_{why.split(' ')[0]}", rows)
            continue
        flag("offset_past_end", rows[pd.to_numeric(rows["cutout_offset"]) >= len(arr)])
    dup = ok[ok.duplicated(["cutout_path", "cutout_offset"], keep=False)]
    flag("two_rows_one_stamp", dup)
    failed = index[~index["cutout_ok"].astype(bool)]
    flag("failed_row_with_link", failed[(failed["cutout_path"].fillna("") != "") | (failed["cutout_offset"] != -1)])
    n_bad = sum(problems.values())
    return GateResult(name, CUTOUTS, n_bad == 0, ERROR, float(n_bad), threshold, bound=(None, 0.0),
                      details={"ok_rows": int(len(ok)), "problems": problems, "examples": examples[:10]})


def shard_sha256(arr: np.ndarray) -> str:
    """sha256 (hex) of a shard's C-order float32 data, read in blocks."""
    h = hashlib.sha256()
    for s in range(0, len(arr), _BLOCK):
        h.update(np.ascontiguousarray(arr[s:s + _BLOCK]))  # the block's buffer, no bytes copy
    return h.hexdigest()


def shards_match_content_hash(index: pd.DataFrame, store: Path) -> GateResult:
    name = "cutout_shards_match_content_hash"
    threshold = "every referenced shard's sha256 matches its name"
    ok = _ok_rows(index)
    rels = sorted(set(ok["cutout_path"].fillna("").astype(str)) - {""})
    if not rels:
        return cannot_compute(name, CUTOUTS, ERROR, "no cutout_ok row references a shard", threshold)

    def why_bad(rel: str) -> str:
        """'' when the shard's sha256 matches its name, else why not."""
        m = SHARD_NAME.search(rel)
        if not m:
            return "name carries no content hash"
        arr, why = _open_shard(store, rel)
        if arr is None:
            return why
        digest = shard_sha256(arr)
        return f"sha256 {digest[:16]} != name {m.group(1)}" if digest[:16] != m.group(1) else ""

    # shards hashed on the machine's cores (hashlib releases the GIL), verdicts in sorted order
    with ThreadPoolExecutor(_threads()) as pool:
        bad = {rel: why for rel, why in zip(rels, pool.map(why_bad, rels)) if why}
    return GateResult(name, CUTOUTS, not bad, ERROR, float(len(bad)), threshold, bound=(None, 0.0),
                      details={"shards": len(rels), "mismatched": len(bad), "examples": dict(list(bad.items())[:5])})


def _tolerance(want: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Allowed |recomputed - index| of a QC statistic (``np.isclose`` with rtol QC_RTOL; values
    near 0 nmgy compared on the band's pixel scale max(|p1|, |p99|), float32 rounding)."""
    return 1e-12 + 0.1 * QC_RTOL * scale + QC_RTOL * np.abs(want)


def _order_stat_ranks(n: int) -> list[int] | None:
    """Ranks of p1, p50, p99 among n values when numpy's linear percentiles land exactly on
    order statistics ((n - 1) q integral; n = 101^2: 102, 5100, 10098), else None."""
    virtual = (n - 1) * np.true_divide(np.array([1.0, 50.0, 99.0]), 100)
    return [int(v) for v in virtual] if np.all(virtual == np.floor(virtual)) and n % 2 else None


def _kth_within(values: np.ndarray, k: int, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Per row of ``values``: does its k-th smallest value (0-based) lie in [lo, hi]?  Exact by
    counting: it does iff #(values < lo) <= k and #(values <= hi) >= k + 1 (NaN bounds: no)."""
    return (_count_rows(values, lo, inclusive=False) <= k) & (_count_rows(values, hi, inclusive=True) >= k + 1)


def _count_rows(values: np.ndarray, bound: np.ndarray, inclusive: bool) -> np.ndarray:
    """Per row of ``values``: #(values < bound), or #(values <= bound) when ``inclusive``.  float32
    rows are compared with float32 bounds that select the same values (x < b iff x < the least
    float32 >= b; x <= b iff x <= the greatest float32 <= b): numpy would otherwise widen every
    value to float64 first.  The matches are summed as bytes (a row of < 65,536 values in uint16)."""
    bound = np.asarray(bound)
    if values.dtype == np.float32 and bound.dtype == np.float64:
        with np.errstate(over="ignore", invalid="ignore"):
            b32 = bound.astype(np.float32)
            off = (b32 < bound) if not inclusive else (b32 > bound)
            b32[off] = np.nextafter(b32[off], np.float32(np.inf if not inclusive else -np.inf))
        bound = b32
    with np.errstate(invalid="ignore"):
        match = np.less_equal(values, bound[:, None]) if inclusive else np.less(values, bound[:, None])
    return match.view(np.uint8).sum(axis=1, dtype=np.uint16 if values.shape[1] < 2**16 else np.int64)


def _verify_finite_qc(rows: pd.DataFrame, stamps: np.ndarray, bands: str) -> dict[str, str]:
    """{galaxy_id: reason} of the rows whose index QC the finite stamps (every band present,
    no zero-filled centre) contradict.  A statistic that ``qc.quality`` takes as an order
    statistic (p1, p50, p99 of a band's n = H x W pixels when (n - 1) q is integral; the MAD
    as 1.4826 x the median |pixel - p50|, n odd) is *verified* by counting
    (``_kth_within``: exact, ~4x cheaper than selecting it); otherwise it is recomputed
    (``lensaudit.order_stats``, numpy's values).  The MAD is measured from the stamp's own
    p50: the index's value when it is exactly that order statistic, else the recomputed one."""
    from lensaudit.order_stats import median_rows, percentile_rows

    b, c = stamps.shape[:2]
    x = stamps.reshape(b * c, -1)
    n = x.shape[1]
    col = {s: np.stack([rows[f"{s}_{band}"].to_numpy(float) for band in bands], axis=1).reshape(-1)
           for s in ("p1", "p50", "p99", "mad")}
    scale = np.maximum(np.abs(col["p1"]), np.abs(col["p99"]))
    tol = {s: _tolerance(v, scale) for s, v in col.items()}
    ranks = _order_stat_ranks(n)
    if ranks is None:
        got = dict(zip(("p1", "p50", "p99"), percentile_rows(x, [1, 50, 99])))
        got["mad"] = 1.4826 * median_rows(np.abs(x - got["p50"][:, None]))
        bad = np.zeros(len(x), bool)
        for s, v in got.items():
            bad |= ~(np.abs(v - col[s]) <= tol[s])
    else:
        p50 = col["p50"]
        bad = ~_kth_within(x, ranks[0], col["p1"] - tol["p1"], col["p1"] + tol["p1"])
        bad |= ~_kth_within(x, ranks[2], col["p99"] - tol["p99"], col["p99"] + tol["p99"])
        exact = _kth_within(x, ranks[1], p50, p50)
        if not exact.all():
            far = ~exact
            bad[far] |= ~_kth_within(x[far], ranks[1], (p50 - tol["p50"])[far], (p50 + tol["p50"])[far])
            p50 = p50.copy()
            p50[far] = percentile_rows(x[far], [50])[0]
        dev = np.abs(x - p50[:, None])
        lo, hi = (col["mad"] - tol["mad"]) / 1.4826, (col["mad"] + tol["mad"]) / 1.4826
        bad |= ~_kth_within(dev, n // 2, lo, hi)
    for fr in ("nan_frac", "central_nan_frac"):
        bad |= np.repeat(~(np.abs(rows[fr].to_numpy(float)) <= 1e-12), c)
    bad = bad.reshape(b, c)
    for k, band in enumerate(bands):
        bad[:, k] |= ~rows[f"has_{band}"].to_numpy(bool)
    ids = rows["galaxy_id"].to_numpy()
    why = {str(ids[i]): _qc_mismatch(rows.iloc[i], _quality(stamps[i], bands), bands) for i in np.flatnonzero(bad.any(axis=1))}
    return {g: w for g, w in why.items() if w}  # '' only where a bound's float rounding decided: recomputed, agrees


def _quality(stamp: np.ndarray, bands: str) -> dict:
    """``qc.quality`` of one (C, H, W) stamp."""
    from lensaudit.cutouts.qc import quality

    return quality(stamp, bands, stamp.shape[-1])


def _qc_mismatch(row, qc: dict, bands: str) -> str:
    """Why one index row's QC disagrees with its stamp's recomputed ``qc`` ('' if it agrees)."""
    if not qc["qc_ok"]:
        return f"stamp fails QC: {qc['qc_reason']}"
    scale_of = {b: max(abs(float(row[f"p1_{b}"])), abs(float(row[f"p99_{b}"]))) for b in bands}
    for c, band in [("nan_frac", ""), ("central_nan_frac", "")] + [(f"{s}_{b}", b) for b in bands
                                                                  for s in ("p1", "p50", "p99", "mad")]:
        want, got = float(row[c]), float(qc.get(c, np.nan))
        tol = float(_tolerance(np.float64(want), np.float64(scale_of[band] if band else 0.0)))
        if not (abs(got - want) <= tol or (np.isnan(got) and np.isnan(want))):
            return f"{c}: index {want:.6g}, stamp {got:.6g}"
    for b in bands:
        if bool(row[f"has_{b}"]) != qc[f"has_{b}"]:
            return f"has_{b}"
    return ""


def _check_qc_block(rows: pd.DataFrame, stamps: np.ndarray, bands: str) -> dict[str, str]:
    """{galaxy_id: reason} of a block of index rows and their stamps: finite stamps with every
    band present and no zero-filled centre verified together (``_verify_finite_qc``), any other
    stamp recomputed with ``qc.quality`` and compared."""
    from lensaudit.cutouts.qc import CENTRAL_BOX_PX, MAX_CENTRAL_NAN_FRAC

    if not len(rows):
        return {}
    size = stamps.shape[-1]
    c0 = (size - CENTRAL_BOX_PX) // 2
    zero_frac = (stamps[:, :, c0:c0 + CENTRAL_BOX_PX, c0:c0 + CENTRAL_BOX_PX] == 0).mean(axis=(2, 3))
    fast = np.isfinite(stamps).all(axis=(1, 2, 3)) & (stamps != 0).any(axis=(2, 3)).all(axis=1) \
        & (zero_frac <= MAX_CENTRAL_NAN_FRAC).all(axis=1)
    out: dict[str, str] = {}
    fast_rows, fast_stamps = rows[fast], stamps[fast]
    for s in range(0, len(fast_rows), _QC_SUBBLOCK):  # sub-blocks that stay in the CPU's cache
        out.update(_verify_finite_qc(fast_rows.iloc[s:s + _QC_SUBBLOCK], fast_stamps[s:s + _QC_SUBBLOCK], bands))
    for i in np.flatnonzero(~fast):
        why = _qc_mismatch(rows.iloc[i], _quality(stamps[i], bands), bands)
        if why:
            out[str(rows["galaxy_id"].iloc[i])] = why
    return out


def qc_recomputed(index: pd.DataFrame, store: Path, bands: str = BANDS, size: int = STAMP_PIX) -> GateResult:
    from lensaudit.cutouts.store import CutoutReader, ShardError

    name = "cutout_qc_recomputed"
    threshold = "0 rows whose recomputed QC differs from the index"
    ok = _ok_rows(index).reset_index(drop=True)
    if ok.empty:
        return cannot_compute(name, CUTOUTS, ERROR, "no cutout_ok row", threshold)
    cols = ["nan_frac", "central_nan_frac"] + [f"{s}_{b}" for b in bands for s in ("p1", "p50", "p99", "mad")]
    missing = [c for c in cols + [f"has_{b}" for b in bands] if c not in ok.columns]
    if missing:
        return cannot_compute(name, CUTOUTS, ERROR, f"index lacks QC columns {missing}", threshold)
    reader = CutoutReader(store, bands=len(bands), size=size)

    def block(s: int) -> dict[str, str]:
        """{galaxy_id: reason} of the mismatched or unreadable rows of one block."""
        part, unreadable = ok.iloc[s:s + _BLOCK], {}
        try:
            stamps = reader.read(part)
        except (ShardError, ValueError, OSError):
            keep, kept = [], []
            for i in range(len(part)):
                try:
                    kept.append(reader.read(part.iloc[i:i + 1])[0])
                    keep.append(i)
                except (ShardError, ValueError, OSError) as exc:
                    unreadable[str(part["galaxy_id"].iloc[i])] = f"stamp unreadable: {exc}"[:200]
            part = part.iloc[keep]
            stamps = np.stack(kept) if kept else np.zeros((0, len(bands), size, size), np.float32)
        return {**unreadable, **_check_qc_block(part, stamps, bands)}

    # blocks on the machine's cores (numpy's counting and selection release the GIL), results in block order
    mismatched: dict[str, str] = {}
    with ThreadPoolExecutor(_threads()) as pool:
        for found in pool.map(block, range(0, len(ok), _BLOCK)):
            mismatched.update(found)
    n = len(mismatched)
    return GateResult(name, CUTOUTS, n == 0, ERROR, float(n), threshold, bound=(None, 0.0),
                      details={"rows_checked": int(len(ok)), "mismatched": n, "examples": dict(list(mismatched.items())[:5])})


# ---- detector ------------------------------------------------------------------------

def _evaluated_archs(home: Path, archs) -> dict[str, dict]:
    """arch -> {'eval': evaluation.json dict, 'run_info': run_info.json dict or an 'error'}."""
    from lensaudit.detector.run import detector_dir
    from lensaudit.evaluation.run import evaluation_json_path

    out = {}
    for arch in archs:
        p = evaluation_json_path(home, arch)
        if not p.is_file():
            continue
        rec = {}
        for key, path in (("eval", p), ("run_info", detector_dir(home, arch) / "run_info.json")):
            try:
                rec[key] = json.loads(path.read_text())
            except (OSError, ValueError) as exc:
                rec[key] = {"__error__": f"{path.name}: {type(exc).__name__}"}
        out[arch] = rec
    return out


def artefact_hashes_match(home: Path, archs) -> GateResult:
    from lensaudit.detector.run import detector_dir, training_input_hashes
    from lensaudit.store import file_sha256, partition_file

    name = "detector_artefact_hashes_match"
    threshold = "checkpoint, scored table, training manifest and cutout index sha256 as recorded"
    recs = _evaluated_archs(home, archs)
    if not recs:
        return cannot_compute(name, DETECTOR, ERROR, "no evaluated detector", threshold)
    inputs = training_input_hashes(home)  # what is stored now, against what the detector trained on
    details, n_bad = {}, 0
    for arch, rec in recs.items():
        problems = []
        ckpt = detector_dir(home, arch) / "best.pt"
        table = partition_file(home, DETECTOR, arch)
        ck = file_sha256(ckpt) if ckpt.is_file() else None
        tb = file_sha256(table) if table.is_file() else None
        for label, doc, key, actual in (("run_info", rec["run_info"], "checkpoint_sha256", ck),
                                        ("evaluation", rec["eval"], "checkpoint_sha256", ck),
                                        ("evaluation", rec["eval"], "scored_table_sha256", tb),
                                        *(("run_info", rec["run_info"], k, h) for k, h in inputs.items())):
            want = doc.get(key)
            if actual is None:
                problems.append(f"{key}: file missing")
            elif want is None:
                problems.append(f"{label}.{key} not recorded" + (f" ({doc['__error__']})" if "__error__" in doc else ""))
            elif want != actual:
                problems.append(f"{label}.{key} {str(want)[:12]} != file {actual[:12]}")
        details[arch] = problems or "ok"
        n_bad += bool(problems)
    return GateResult(name, DETECTOR, n_bad == 0, ERROR, float(n_bad), threshold, details, bound=(None, 0.0))


def auc_recomputed(home: Path, archs) -> GateResult:
    from lensaudit.auc import roc_auc
    from lensaudit.evaluation.metrics import sigmoid
    from lensaudit.evaluation.run import scored_rows

    tol = 1e-9
    name, threshold = "detector_auc_recomputed", f"|AUC(scored table) - stored AUC| <= {tol:g}"
    recs = _evaluated_archs(home, archs)
    if not recs:
        return cannot_compute(name, DETECTOR, ERROR, "no evaluated detector", threshold)
    details, worst, failed = {}, 0.0, False
    for arch, rec in recs.items():
        scored = scored_rows(home, arch)
        y, z = scored["label"].to_numpy(int), scored["logit"].to_numpy(float)
        if not np.isfinite(z).all() or not (y == 1).any() or not (y == 0).any():
            details[arch] = "non-finite logits or one class only"
            failed = True
            continue
        auc = roc_auc(z[y == 1], z[y == 0])
        try:
            stored = float(rec["eval"]["metrics"]["roc_auc"]["value"])
        except (KeyError, TypeError, ValueError):
            details[arch] = "evaluation.json has no metrics.roc_auc.value"
            failed = True
            continue
        diff = abs(auc - stored)
        prob_ok = bool(np.allclose(scored["probability"].to_numpy(float), sigmoid(z), rtol=1e-9, atol=1e-12))
        worst = max(worst, diff)
        details[arch] = {"auc_recomputed": auc, "auc_stored": stored, "probability_is_sigmoid_logit": prob_ok}
        failed |= not (diff <= tol) or not prob_ok
    return GateResult(name, DETECTOR, not failed, ERROR, worst, threshold, details, bound=(None, tol))


def _sample(scored: pd.DataFrame, n_neg: int, rng: np.random.Generator) -> pd.DataFrame:
    """Every positive (a forger raising a few positives' logits moves the AUC most), ``n_neg``
    negatives evenly spaced in galaxy_id order and ``n_neg`` more drawn by ``rng`` (unpredictable
    to whoever wrote the table: rows edited outside a fixed sample are caught too)."""
    from lensaudit.gates.gate_spec import audit_sample

    s = scored.sort_values("galaxy_id", kind="stable").reset_index(drop=True)
    pos, neg = s[s["label"] == 1], s[s["label"] != 1]
    return pd.concat([pos, neg.iloc[audit_sample(len(neg), n_neg, rng)]]).drop_duplicates("galaxy_id")


def rescore_device(evaluation: dict, run_info: dict) -> str:
    """The key of ``RESCORE_TOL`` for a stored evaluation: "cuda" (the wider tolerance of TF32
    convolutions) only when the evaluation says it scored on CUDA and the checkpoint's run_info
    names a non-CPU training device (the detector and its evaluation run on one device
    resource); a missing or inconsistent record gets the CPU's tolerance, never the wider one."""
    trained_on = str(run_info.get("device_name", "cpu"))
    on_cuda = evaluation.get("scored_on_device") == "cuda" and not trained_on.startswith("cpu")
    return "cuda" if on_cuda else "cpu"


def rescore_logits(home: Path, archs, index: pd.DataFrame, n_rows: int = RESCORE_ROWS) -> GateResult:
    import torch

    from lensaudit.cutouts.store import CutoutReader
    from lensaudit.detector.models import build_model
    from lensaudit.detector.preprocess import raw_robust
    from lensaudit.detector.run import detector_dir
    from lensaudit.evaluation.run import scored_rows

    from lensaudit.evaluation.run import val_scores

    name = "detector_logits_rescored"
    threshold = (f"every positive and 2 x {n_rows} negatives (fixed + random) of the test and validation scores "
                 "re-scored on the CPU within tolerance")
    recs = _evaluated_archs(home, archs)
    if not recs:
        return cannot_compute(name, DETECTOR, ERROR, "no evaluated detector", threshold)
    reader = CutoutReader(home / "cutout_store")
    links = index[["galaxy_id", "cutout_path", "cutout_offset", "cutout_ok"]]
    from lensaudit.gates.gate_spec import audit_rng

    rng, seed = audit_rng()
    details, worst, failed = {"random_sample_seed": seed}, 0.0, False
    for arch, rec in recs.items():
        try:
            crop = int(rec["run_info"]["config"]["train"]["crop"])
        except (KeyError, TypeError, ValueError):
            details[arch] = "run_info.json has no config.train.crop"
            failed = True
            continue
        device = rescore_device(rec["eval"], rec["run_info"])
        atol, rtol = RESCORE_TOL[device]
        try:
            state = torch.load(detector_dir(home, arch) / "best.pt", map_location="cpu", weights_only=True)
            model = build_model(arch)
            model.load_state_dict(state, strict=True)
        except Exception as exc:  # noqa: BLE001 - any unloadable checkpoint fails the gate
            details[arch] = f"checkpoint does not load: {type(exc).__name__}: {str(exc)[:200]}"
            failed = True
            continue
        model.eval()
        details[arch] = {"atol": atol, "rtol": rtol, "scored_on_device": device}
        for split, table in (("test", lambda: scored_rows(home, arch)), ("val", lambda: val_scores(home, arch))):
            sample = _sample(table(), n_rows, rng).merge(links, on="galaxy_id", how="left")
            unlinked = int((~sample["cutout_ok"].fillna(False).astype(bool)).sum())
            if unlinked or (split == "test" and sample.empty):
                details[arch][split] = f"{unlinked} scored rows have no usable cutout in the index"
                failed = True
                continue
            if sample.empty:  # an empty validation split: its thresholds are insufficient, nothing to re-score
                details[arch][split] = {"rows": 0}
                continue
            x, _ = raw_robust(reader.read(sample.assign(cutout_ok=True)), crop=crop)
            with torch.no_grad():
                got = model(torch.as_tensor(x, dtype=torch.float32)).float().squeeze(1).numpy().astype(np.float64)
            want = sample["logit"].to_numpy(float)
            dev = np.abs(got - want)
            bad = ~(dev <= atol + rtol * np.abs(want))  # NaN counts as bad
            worst = max(worst, float(np.nanmax(dev)) if np.isfinite(dev).any() else np.inf)
            details[arch][split] = {"rows": int(len(sample)), "positives": int((sample["label"] == 1).sum()),
                                    "outside_tolerance": int(bad.sum()),
                                    "examples": sample.loc[bad, "galaxy_id"].astype(str).head(5).tolist(),
                                    "max_abs_dev": float(np.nanmax(dev)) if np.isfinite(dev).any() else None}
            failed |= bool(bad.any())
    return GateResult(name, DETECTOR, not failed, ERROR, worst, threshold, details)


def scored_rows_match_manifest(home: Path, archs, manifest: pd.DataFrame, index: pd.DataFrame) -> GateResult:
    """The scored test rows and the scored validation rows of every evaluated architecture are
    exactly the rows ``load_split`` reads from the manifest and the cutout index (every
    ``cutout_ok`` row of the split, none other, in galaxy_id order), with the manifest's label,
    tier, pool, weight and conditions: no row dropped, added, relabelled or re-tiered."""
    from lensaudit.detector.data import META_COLUMNS, join_manifest_index, split_rows
    from lensaudit.evaluation.run import scored_rows, val_scores

    name, threshold = "detector_scored_rows_match_manifest", "0 scored rows differing from the manifest's split rows"
    recs = _evaluated_archs(home, archs)
    if not recs:
        return cannot_compute(name, DETECTOR, ERROR, "no evaluated detector", threshold)
    rows = join_manifest_index(manifest, index)
    details, n_bad = {}, 0
    for arch in recs:
        details[arch] = {}
        for split, table in (("test", lambda: scored_rows(home, arch)), ("val", lambda: val_scores(home, arch))):
            got = table().reset_index(drop=True)
            want = split_rows(rows, split)[0]
            cols = [c for c in META_COLUMNS if c in want.columns]
            missing_cols = [c for c in cols if c not in got.columns]
            if missing_cols:
                details[arch][split] = f"columns missing: {missing_cols}"
                n_bad += 1
                continue
            w = want.set_index("galaxy_id")[cols[1:]]
            g = got.set_index("galaxy_id")[cols[1:]]
            dropped = w.index.difference(g.index)
            added = g.index.difference(w.index)
            both = w.index.intersection(g.index)
            a, b = w.loc[both].astype(object), g.loc[both].astype(object)
            differ = ~((a == b) | (a.isna() & b.isna())).all(axis=1)
            order_ok = got["galaxy_id"].tolist() == want["galaxy_id"].tolist() if not (len(dropped) or len(added)) else False
            bad = len(dropped) + len(added) + int(differ.sum()) + (0 if order_ok or len(dropped) or len(added) else 1)
            n_bad += bad
            details[arch][split] = {"rows": int(len(got)), "manifest_rows": int(len(want)), "dropped": int(len(dropped)),
                                    "added": int(len(added)), "values_differ": int(differ.sum()),
                                    "examples": [*map(str, dropped[:3]), *map(str, added[:3]),
                                                 *map(str, differ[differ].index[:3])]} if bad else "ok"
    return GateResult(name, DETECTOR, n_bad == 0, ERROR, float(n_bad), threshold, details, bound=(None, 0.0))


# ---- training manifest ------------------------------------------------------------------

def _cut_failures(df: pd.DataFrame, cuts) -> dict[str, np.ndarray]:
    """"fails this cut" per cut name for the columns ``df`` carries (NaN / missing fails)."""
    from lensaudit.survey.maskbits import has_any_bit
    from lensaudit.survey.photometry import nmgy_to_mag

    out: dict[str, np.ndarray] = {}
    if "brick_primary" in df:
        out["not_brick_primary"] = ~df["brick_primary"].fillna(False).astype(bool).to_numpy()
    if "dec" in df:
        dec = pd.to_numeric(df["dec"], errors="coerce").to_numpy(float)
        with np.errstate(invalid="ignore"):
            out["dec_range"] = ~((dec > cuts.dec_min_deg) & (dec < cuts.dec_max_deg))
    for b in ("g", "r", "z"):
        if f"nobs_{b}" in df:
            n = pd.to_numeric(df[f"nobs_{b}"], errors="coerce").to_numpy(float)
            with np.errstate(invalid="ignore"):
                out[f"nobs_{b}"] = ~(n >= cuts.min_nobs)
    if "type" in df:
        out["type"] = ~df["type"].fillna("").astype(str).str.strip().isin(cuts.types).to_numpy()
    if "flux_z" in df:
        with np.errstate(invalid="ignore", divide="ignore"):
            mag = nmgy_to_mag(pd.to_numeric(df["flux_z"], errors="coerce").to_numpy(float))
            out["mag_z"] = ~(mag < cuts.max_mag_z)
    if "maskbits" in df:
        mb = pd.to_numeric(df["maskbits"], errors="coerce")
        out["maskbits"] = mb.isna().to_numpy() | has_any_bit(mb.fillna(0).astype(np.int64).to_numpy(),
                                                               cuts.excluded_maskbits)
    return out


def _negatives_with_sweep_rows(manifest: pd.DataFrame, sweep_rows: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(manifest negatives, their sweep rows aligned to them; NaN rows where none)."""
    neg = manifest[manifest["label"] != 1].reset_index(drop=True)
    rows = sweep_rows.drop_duplicates("galaxy_id").set_index("galaxy_id").reindex(neg["galaxy_id"]).reset_index()
    return neg, rows


def manifest_negatives_satisfy_cuts(manifest: pd.DataFrame, sweep_rows: pd.DataFrame, cuts) -> GateResult:
    """Every manifest negative passes every parity cut on its sweep row and on the manifest's
    own copies of the cut columns; its manifest coordinates are its sweep row's."""
    from lensaudit.sampling.geometry import arcsec_of_chord, unit_vectors

    name, threshold = "training_manifest_negatives_satisfy_cuts", "0 negatives failing a cut"
    neg, rows = _negatives_with_sweep_rows(manifest, sweep_rows)
    if neg.empty:
        return cannot_compute(name, MANIFEST, ERROR, "no negatives in the manifest", threshold)
    bad = np.zeros(len(neg), bool)
    by_cut: dict[str, int] = {}
    examples: dict[str, list[str]] = {}

    def flag(kind: str, mask: np.ndarray):
        nonlocal bad
        mask = np.asarray(mask, bool)
        if mask.any():
            by_cut[kind] = int(mask.sum())
            examples[kind] = neg.loc[mask, "galaxy_id"].astype(str).head(5).tolist()
            bad |= mask

    no_row = rows["ra"].isna().to_numpy() & rows["dec"].isna().to_numpy()
    flag("no_sweep_row", no_row)
    for kind, mask in _cut_failures(rows, cuts).items():
        flag(f"sweep:{kind}", mask & ~no_row)
    for kind, mask in _cut_failures(neg, cuts).items():
        flag(f"manifest:{kind}", mask)
    with np.errstate(invalid="ignore"):
        a = unit_vectors(neg["ra"].to_numpy(float), neg["dec"].to_numpy(float))
        b = unit_vectors(rows["ra"].to_numpy(float), rows["dec"].to_numpy(float))
        sep = arcsec_of_chord(np.linalg.norm(a - b, axis=1))
    flag("coordinates_differ_from_sweep_row", ~(sep <= COORD_TOL_ARCSEC) & ~no_row)
    n_bad = int(bad.sum())
    return GateResult(name, MANIFEST, n_bad == 0, ERROR, float(n_bad), threshold, bound=(None, 0.0),
                      details={"negatives": int(len(neg)), "violations_by_cut": by_cut, "examples": examples})


def manifest_negatives_far_from_lenses(manifest: pd.DataFrame, sweep_rows: pd.DataFrame | None,
                                       lenscat_all: pd.DataFrame, radius_arcsec: float) -> GateResult:
    """No manifest negative within ``radius_arcsec`` (inclusive) of any known lens, on its
    manifest coordinates and on its sweep row's; non-finite coordinates cannot be verified."""
    from lensaudit.sampling.exclusion import LensNeighbourIndex

    name, threshold = "training_manifest_negatives_far_from_known_lenses", f"0 negatives within {radius_arcsec:g}\""
    neg = manifest[manifest["label"] != 1].reset_index(drop=True)
    if neg.empty:
        return cannot_compute(name, MANIFEST, ERROR, "no negatives in the manifest", threshold)
    if lenscat_all is None or lenscat_all.empty:
        return cannot_compute(name, MANIFEST, ERROR, "no known-lens catalogue", threshold)
    index = LensNeighbourIndex(lenscat_all["ra"].to_numpy(float), lenscat_all["dec"].to_numpy(float))
    sep = index.nearest_arcsec(neg["ra"].to_numpy(float), neg["dec"].to_numpy(float), max_arcsec=radius_arcsec * 3)
    bad = np.isnan(sep) | (sep <= radius_arcsec)
    details = {"negatives": int(len(neg)), "within_radius_manifest": int((sep <= radius_arcsec).sum()),
               "non_finite_coordinates": int(np.isnan(sep).sum())}
    if sweep_rows is not None:
        _, rows = _negatives_with_sweep_rows(manifest, sweep_rows)
        known = rows["ra"].notna().to_numpy()
        s2 = index.nearest_arcsec(rows["ra"].to_numpy(float), rows["dec"].to_numpy(float), max_arcsec=radius_arcsec * 3)
        near2 = known & (s2 <= radius_arcsec)
        bad |= near2
        details["within_radius_sweep_row"] = int(near2.sum())
        sep = np.fmin(sep, np.where(known, s2, np.inf))
    finite = sep[np.isfinite(sep)]
    details["min_sep_arcsec_within_3x_radius"] = float(finite.min()) if len(finite) else float("inf")
    details["examples"] = neg.loc[bad, "galaxy_id"].astype(str).head(5).tolist()
    return GateResult(name, MANIFEST, not bad.any(), ERROR, float(bad.sum()), threshold, details, bound=(None, 0.0))


# ---- injection provenance -------------------------------------------------------------

def _pointer_mismatches(rows: pd.DataFrame, index: pd.DataFrame) -> list[str]:
    """galaxy_ids of ``rows`` (galaxy_id, cutout_path, cutout_offset) whose pointer is not
    the cutout index's ``cutout_ok`` entry for that galaxy_id."""
    ok = index[index["cutout_ok"].astype(bool)].drop_duplicates("galaxy_id").set_index("galaxy_id")
    ref = ok.reindex(rows["galaxy_id"])
    path_ok = rows["cutout_path"].fillna("").astype(str).to_numpy() == ref["cutout_path"].fillna("\0").astype(str).to_numpy()
    off = pd.to_numeric(rows["cutout_offset"], errors="coerce").to_numpy(float)
    want = pd.to_numeric(ref["cutout_offset"], errors="coerce").to_numpy(float)
    return rows.loc[~(path_ok & (off == want)), "galaxy_id"].astype(str).tolist()


#: (per-injection column, injection_hosts column) that must agree: the grid bins a host was
#: planned in and the per-band PSF FWHM the arc was rendered with
HOST_CONDITIONS = [("psf_bin", "psf_bin"), ("depth_bin", "depth_bin")] + [
    (f"psf_fwhm_{b}_arcsec", f"psfsize_{b}") for b in BANDS]


def _condition_mismatches(t: pd.DataFrame, host_rows: pd.DataFrame) -> list[str]:
    """Rows of ``t`` (injection_id, else galaxy_id) whose recorded host conditions differ
    from their host's row (only the columns both tables carry)."""
    h = host_rows.reindex(t["galaxy_id"].astype(str))
    bad = np.zeros(len(t), bool)
    for col, hcol in HOST_CONDITIONS:
        if col in t.columns and hcol in h.columns:
            a = pd.to_numeric(t[col], errors="coerce").to_numpy(float)
            b = pd.to_numeric(h[hcol], errors="coerce").to_numpy(float)
            bad |= ~np.isclose(a, b, rtol=1e-6, atol=0.0)  # NaN never agrees
    return t.loc[bad, "injection_id" if "injection_id" in t else "galaxy_id"].astype(str).tolist()


def injection_provenance(name: str, asset: str, tables: dict[str, pd.DataFrame], manifest: pd.DataFrame,
                         index: pd.DataFrame, hosts: pd.DataFrame | None,
                         positives: dict[str, pd.DataFrame] | None = None,
                         positive_split: str | None = "test") -> GateResult:
    """Each table's ``galaxy_id`` is a test-split negative of ``manifest`` outside every
    train/val HEALPix pixel; with ``hosts`` (the ``injection_hosts`` table the injections
    read their stamps through) it is also a host whose grid bins and per-band PSF FWHM, where
    the table records them, are the injection's, and every host's (cutout_path,
    cutout_offset) equals the index's ``cutout_ok`` entry; without, it has a ``cutout_ok``
    index entry.  A table
    that carries its own stamp pointer is compared with the index too.  ``positives``:
    tables whose rows must be positives of the manifest (of ``positive_split`` unless None)
    with a ``cutout_ok`` entry."""
    from lensaudit.selection.hosts import host_leaks

    threshold = "0 injections whose host is not a held-out test negative read through its index entry"
    if not tables or all(t.empty for t in tables.values()):
        return cannot_compute(name, asset, ERROR, "no injection rows", threshold)
    ok_ids = set(index.loc[index["cutout_ok"].astype(bool), "galaxy_id"].astype(str))
    problems: dict[str, dict[str, int]] = {}
    examples: dict[str, list[str]] = {}
    n_bad = 0

    def flag(table: str, kind: str, ids):
        nonlocal n_bad
        ids = sorted(set(map(str, ids)))
        if ids:
            problems.setdefault(table, {})[kind] = len(ids)
            examples.setdefault(f"{table}:{kind}", ids[:5])
            n_bad += len(ids)

    host_rows = hosts.drop_duplicates("galaxy_id").set_index("galaxy_id") if hosts is not None else None
    bad_host_pointer = set(_pointer_mismatches(hosts, index)) if hosts is not None else set()
    flag("injection_hosts", "host_pointer_differs_from_index", bad_host_pointer)  # used or not: the stored input
    for tname, t in tables.items():
        ids = t[["galaxy_id"]].drop_duplicates()
        leaks = host_leaks(ids, manifest)
        flag(tname, "not_a_test_split_manifest_row", leaks["not_in_test_split"])
        flag(tname, "positive_host", leaks["positives"])
        flag(tname, "in_train_or_val_pixel", leaks["in_train_or_val_pixel"])
        gid = ids["galaxy_id"].astype(str)
        if host_rows is not None:
            flag(tname, "not_an_injection_host", gid[~gid.isin(host_rows.index.astype(str))])
            flag(tname, "host_pointer_differs_from_index", gid[gid.isin(bad_host_pointer)])
            flag(tname, "host_conditions_differ", _condition_mismatches(t, host_rows))
        else:
            flag(tname, "no_good_cutout", gid[~gid.isin(ok_ids)])
        if {"cutout_path", "cutout_offset"} <= set(t.columns):
            flag(tname, "row_pointer_differs_from_index", _pointer_mismatches(t, index))
    m = manifest.drop_duplicates("galaxy_id").set_index("galaxy_id")
    for tname, t in (positives or {}).items():
        gid = t["galaxy_id"].drop_duplicates().astype(str)
        rows = m.reindex(gid)
        wrong = (rows["label"] != 1).to_numpy() | ~gid.isin(ok_ids).to_numpy()
        if positive_split is not None:
            wrong |= (rows["split"] != positive_split).to_numpy()
        flag(tname, f"not_a_{positive_split or 'manifest'}_positive_with_a_good_cutout", gid[wrong])
    return GateResult(name, asset, n_bad == 0, ERROR, float(n_bad), threshold, bound=(None, 0.0),
                      details={"rows": {k: int(len(t)) for k, t in tables.items()}, "problems": problems,
                       "examples": examples})


def missed_injections_are_injections(missed: pd.DataFrame, injections: pd.DataFrame) -> list[str]:
    """injection_ids of ``missed`` absent from ``injections`` or with another host."""
    ref = injections.drop_duplicates("injection_id").set_index("injection_id")["galaxy_id"].astype(str)
    got = ref.reindex(missed["injection_id"]).to_numpy()
    return missed.loc[got != missed["galaxy_id"].astype(str).to_numpy(), "injection_id"].astype(str).tolist()


def _completeness_provenance(v) -> GateResult:
    name, asset = "completeness_injections_provenance", "completeness_table"
    adv = v.table("adversarial_scores")
    tables = {"completeness_injections": v.table("completeness_injections"),
              "adversarial_scores(null_control, synthetic_ring)": adv[adv["test"].isin(["null_control", "synthetic_ring"])]}
    return injection_provenance(name, asset, tables, v.table(MANIFEST), v.table(CUTOUTS), v.table("injection_hosts"),
                                positives={"adversarial_scores(arc_suppression)": adv[adv["test"] == "arc_suppression"]})


def _missed_provenance(v) -> GateResult:
    name, asset = "failure_missed_injections_provenance", "failure_modes"
    missed = v.table("failure_missed_injections")
    injections = v.table("completeness_injections")
    if missed.empty and not injections.empty:  # every injection detected: nothing to trace
        return GateResult(name, asset, True, ERROR, 0.0, "0 missed injections of a wrong host", bound=(None, 0.0),
                          details={"rows": {"failure_missed_injections": 0}})
    res = injection_provenance(name, asset, {"failure_missed_injections": missed}, v.table(MANIFEST),
                               v.table(CUTOUTS), v.table("injection_hosts"))
    if res.metric is None:  # cannot compute (no rows): a run without misses is not verifiable here
        return res
    stray = missed_injections_are_injections(missed, injections)
    if stray:
        res.details["problems"].setdefault("failure_missed_injections", {})["not_an_injection_of_its_host"] = len(stray)
        res.details["examples"]["failure_missed_injections:not_an_injection_of_its_host"] = stray[:5]
        res.metric = float(res.metric + len(stray))
        res.passed = False
    return res


def _realism_provenance(v) -> GateResult:
    rec = v.table("injection_realism")
    return injection_provenance("injection_realism_hosts_provenance", "injection_realism",
                                {"injection_realism(injected)": rec[rec["kind"] == "injected"]},
                                v.table(MANIFEST), v.table(CUTOUTS), None,
                                positives={"injection_realism(real)": rec[rec["kind"] == "real"]}, positive_split=None)


def specs() -> list:
    """GateSpecs of this family (concatenated by ``lensaudit.gates.registry``)."""
    from lensaudit.gates.gate_spec import spec as _spec
    from lensaudit.spec import DATA, PARITY, negative_cuts

    def store(v):
        return v.home / "cutout_store"

    def archs(v):
        return v.profile.detector.archs

    def sweep_rows(v):
        from lensaudit.tables import read_table

        return v.memo("integrity_sweep_cut_rows", lambda: read_table(v.home, "sweep_catalog", columns=SWEEP_CUT_COLUMNS))

    return [
        _spec("cutout_index_links_valid", CUTOUTS, ERROR, True,
              "every cutout_ok row points into an existing shard at an offset in range; no stamp shared; failed "
              "rows unlinked", lambda v: index_links_valid(v.table(CUTOUTS), store(v))),
        _spec("cutout_shards_match_content_hash", CUTOUTS, ERROR, True,
              "every shard the index references re-hashes to the content hash in its name",
              lambda v: shards_match_content_hash(v.table(CUTOUTS), store(v))),
        _spec("cutout_qc_recomputed", CUTOUTS, ERROR, True,
              "QC of the stamp each index row points to equals the index's QC columns (order statistics "
              "verified by counting, the rest recomputed)",
              lambda v: qc_recomputed(v.table(CUTOUTS), store(v))),
        _spec("detector_artefact_hashes_match", DETECTOR, ERROR, True,
              "best.pt and the scored table re-hash to the sha256 recorded in run_info.json / evaluation.json; the "
              "stored training manifest and cutout index to the sha256 the detector recorded when it trained",
              lambda v: artefact_hashes_match(v.home, archs(v))),
        _spec("detector_auc_recomputed", DETECTOR, ERROR, True,
              "test ROC AUC recomputed from the scored table equals the stored one",
              lambda v: auc_recomputed(v.home, archs(v))),
        _spec("detector_logits_rescored", DETECTOR, ERROR, True,
              f"every test and validation positive and {2 * RESCORE_ROWS} negatives per split ({RESCORE_ROWS} evenly "
              "spaced, as many drawn at random) re-scored with the checkpoint (weights-only load, CPU float32) "
              "reproduce the stored logits", lambda v: rescore_logits(v.home, archs(v), v.table(CUTOUTS))),
        _spec("detector_scored_rows_match_manifest", DETECTOR, ERROR, True,
              "the scored test and validation rows are exactly the split's manifest rows with a good cutout, with "
              "the manifest's label, tier, pool, weight and conditions",
              lambda v: scored_rows_match_manifest(v.home, archs(v), v.table(MANIFEST), v.table(CUTOUTS))),
        _spec("training_manifest_negatives_satisfy_cuts", MANIFEST, ERROR, True,
              f"every manifest negative passes every parity cut ({DATA.exclusion_radius_arcsec:g}\" exclusion apart: "
              f"{PARITY.dec_min_deg:g} < dec < {PARITY.dec_max_deg:g} deg, nobs >= {PARITY.min_nobs} in g, r, z, TYPE in "
              f"{'/'.join(PARITY.types)}, z < {DATA.max_mag_z:g} mag, no maskbit of {list(DATA.n1_excluded_maskbits)}, "
              "brick_primary) recomputed on its sweep row and on the manifest's copies; coordinates equal the sweep row's",
              lambda v: manifest_negatives_satisfy_cuts(v.table(MANIFEST), sweep_rows(v), negative_cuts())),
        _spec("training_manifest_negatives_far_from_known_lenses", MANIFEST, ERROR, True,
              f"no manifest negative within {DATA.exclusion_radius_arcsec:g}\" of any known lens (every lenscat "
              "entry), on its manifest and its sweep coordinates",
              lambda v: manifest_negatives_far_from_lenses(v.table(MANIFEST), sweep_rows(v), v.lenscat_all,
                                                           DATA.exclusion_radius_arcsec)),
        _spec("completeness_injections_provenance", "completeness_table", ERROR, True,
              "every injection's and null-control/ring host is a held-out test-split negative and an injection_hosts "
              "row whose stamp pointer equals the cutout index's entry; arc-suppression rows are test positives",
              _completeness_provenance),
        _spec("failure_missed_injections_provenance", "failure_modes", ERROR, True,
              "every missed injection is an injection of its host, a held-out test-split negative read through its "
              "index entry", _missed_provenance),
        _spec("injection_realism_hosts_provenance", "injection_realism", ERROR, True,
              "every realism injection's host is a test-split negative with a good cutout; every real row a positive",
              _realism_provenance),
    ]
