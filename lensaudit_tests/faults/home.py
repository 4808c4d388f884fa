"""The smallest home the fault suite plants into: 36 galaxies, one sweep partition.

Six positives sit on real lenscat lenses (two per split); ten negatives per split sit in
one HEALPix pixel per split, far from every known lens.  Stored as the producers store
them: ``sweep_catalog`` (the cut columns), ``training_manifest`` (``MANIFEST_SCHEMA``),
the cutout store (float32 shards named by content hash, the index with QC columns from
``cutouts.qc.quality``), ``injection_hosts`` (the real ``build_hosts``), and the
per-injection tables of the selection function with their provenance columns
(``completeness_injections`` from the real ``plan_injections``, ``adversarial_scores``,
``failure_missed_injections``, ``injection_realism``); scores and S/N columns are not
needed by the gates planted here and are left out.  Building it takes about a second;
``copy_home`` gives each fault its own copy.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from lensaudit.config import get_profile
from lensaudit.cutouts.qc import quality
from lensaudit.cutouts.store import write_shard
from lensaudit.sampling.exclusion import LensNeighbourIndex
from lensaudit.spark_jobs.cutouts import INDEX_SCHEMA
from lensaudit.spark_jobs.manifest import MANIFEST_SCHEMA
from lensaudit.splits import healpix_index
from lensaudit.store import partition_file, read_asset, write_parquet_atomic
from lensaudit.survey.photometry import mag5sigma_to_depth_ivar

SWEEP = "sweep-000p000-010p005.fits"
STEM = SWEEP.replace(".fits", "")
SPLITS = ("train", "val", "test")
N_NEG = 10
SHARD_ROWS = 16
PROFILE = "tiny"
#: negative anchors per split (deg): one HEALPix pixel each, checked far from every lens
ANCHORS = {"train": (20.0, 12.0), "val": (40.0, 12.0), "test": (60.0, 12.0)}


def _pick_lenses(lenscat: pd.DataFrame, n: int = 6) -> pd.DataFrame:
    """n lenscat entries inside the parity domain, more than 5 deg apart (deterministic)."""
    ok = lenscat[np.isfinite(lenscat["ra"]) & lenscat["dec"].between(-15, 30)].sort_values("lens_id")
    picked: list[int] = []
    for i, r in ok.iterrows():
        if len(picked) == n:
            break
        if all(abs(r.dec - ok.loc[j, "dec"]) > 5 or abs(r.ra - ok.loc[j, "ra"]) > 5 for j in picked):
            picked.append(i)
    return ok.loc[picked].reset_index(drop=True)


def _stamp(seed_text: str, size: int = 101) -> np.ndarray:
    """A deterministic galaxy-like stamp (nmgy/pixel): sky noise plus a round core."""
    rng = np.random.default_rng(int(hashlib.sha256(seed_text.encode()).hexdigest()[:8], 16))
    x = rng.normal(0, 0.01, (3, size, size)).astype(np.float32)
    c = size // 2
    x[:, c - 5:c + 6, c - 5:c + 6] += rng.uniform(0.02, 0.2, (3, 1, 1)).astype(np.float32)
    return x


def _objects(lenscat: pd.DataFrame) -> pd.DataFrame:
    lenses = _pick_lenses(lenscat)
    rows = []
    for k, lens in lenses.iterrows():
        rows.append({"galaxy_id": f"pos{k}_0", "ra": float(lens.ra), "dec": float(lens.dec), "label": 1,
                     "split": SPLITS[k // 2], "lens_id": lens.lens_id, "tier": "A", "pool": "positive"})
    for split, (ra0, dec0) in ANCHORS.items():
        for i in range(N_NEG):
            pool = "N2" if i < 2 else "N1"
            rows.append({"galaxy_id": f"{split}neg{i}_0", "ra": ra0 + i * 20 / 3600, "dec": dec0, "label": 0,
                         "split": split, "lens_id": "", "tier": pool, "pool": pool})
    df = pd.DataFrame(rows)
    far = LensNeighbourIndex(lenscat["ra"].to_numpy(float), lenscat["dec"].to_numpy(float)).nearest_arcsec(
        df["ra"].to_numpy(), df["dec"].to_numpy(), max_arcsec=600)
    assert (far[df["label"].to_numpy() == 0] > 120).all(), "a negative anchor lies near a known lens"
    df["healpix_128"] = healpix_index(df["ra"].to_numpy(), df["dec"].to_numpy())
    by_split = df.groupby("healpix_128")["split"].nunique()
    assert (by_split == 1).all(), "a HEALPix pixel holds two splits"
    return df


def sweep_rows(obj: pd.DataFrame) -> pd.DataFrame:
    n = len(obj)
    return pd.DataFrame({"galaxy_id": obj["galaxy_id"], "ra": obj["ra"], "dec": obj["dec"],
                         "nobs_g": np.full(n, 4, np.int16), "nobs_r": np.full(n, 4, np.int16),
                         "nobs_z": np.full(n, 4, np.int16), "type": "DEV", "flux_z": np.full(n, 20.0, np.float32),
                         "maskbits": np.zeros(n, np.int32), "brick_primary": True,
                         "brickname": obj["galaxy_id"].str.split("_").str[0], "sweep": SWEEP})


def manifest_rows(obj: pd.DataFrame) -> pd.DataFrame:
    n = len(obj)
    depth = np.float32(mag5sigma_to_depth_ivar(23.5))
    m = obj.assign(confuser_category=np.where(obj["pool"] == "N2", "ring", ""),
                   sample_weight=1.0, nobs_z=np.int16(4), nobs_z_bin="3-5", type="DEV", type_bin="DEV",
                   psfsize_r=np.float32(1.2), psfdepth_r=depth, galdepth_r=depth, ebv=np.float32(0.02),
                   brickname=obj["galaxy_id"].str.split("_").str[0], selected_for_nobs_z_bin="3-5", sweep=SWEEP,
                   confuser_flags=np.where(obj["pool"] == "N2", "ring", ""), flux_g=np.float32(8.0),
                   flux_r=np.float32(12.0), flux_z=np.float32(20.0), psfsize_g=np.float32(1.3),
                   psfsize_z=np.float32(1.1), psfdepth_g=depth, psfdepth_z=depth)
    m["label"] = m["label"].astype(np.int8)
    assert len(m) == n
    return m[MANIFEST_SCHEMA.names]


def write_store(home: Path, manifest: pd.DataFrame, stamps: dict[str, np.ndarray] | None = None,
                qc_from: dict[str, np.ndarray] | None = None) -> pd.DataFrame:
    """Shards named by content hash (as ``spark_jobs.cutouts``) and the index; ``stamps``
    overrides the stamps of some galaxies, ``qc_from`` the stamps the index QC is computed
    from (a planted lie).  Old shards of the partition are removed, as the job does."""
    store = home / "cutout_store"
    rows = manifest.sort_values(["brickname", "galaxy_id"], kind="stable")
    data = {g: (stamps or {}).get(g, _stamp(g)) for g in rows["galaxy_id"]}
    recs, good = [], []
    for r in rows.itertuples(index=False):
        qc = quality((qc_from or {}).get(r.galaxy_id, data[r.galaxy_id]), "grz")
        rec = {"galaxy_id": r.galaxy_id, "sweep": SWEEP, "brickname": r.brickname, "ra": r.ra, "dec": r.dec,
               "label": r.label, "split": r.split, "cutout_path": "", "cutout_offset": -1, "cutout_ok": bool(qc["qc_ok"]),
               "fail_reason": "" if qc["qc_ok"] else f"qc: {qc['qc_reason']}", "bands": "grz"}
        rec.update({c: v for c, v in qc.items() if c in INDEX_SCHEMA.names})
        if qc["qc_ok"]:
            good.append(len(recs))
        recs.append(rec)
    written = set()
    for k in range(0, len(good), SHARD_ROWS):
        chunk = good[k:k + SHARD_ROWS]
        stack = np.stack([data[recs[i]["galaxy_id"]] for i in chunk]).astype(np.float32)
        rel = f"shards/{STEM}-{k // SHARD_ROWS:04d}-{hashlib.sha256(stack.tobytes()).hexdigest()[:16]}.npy"
        write_shard(store / rel, stack)
        written.add(rel)
        for off, i in enumerate(chunk):
            recs[i]["cutout_path"], recs[i]["cutout_offset"] = rel, off
    for old in (store / "shards").glob(f"{STEM}-*.npy"):
        if f"shards/{old.name}" not in written:
            old.unlink()
    index = pd.DataFrame(recs, columns=INDEX_SCHEMA.names)
    write_table(home, "cutouts", index, schema=INDEX_SCHEMA, partition=STEM)
    return index


def write_table(home: Path, asset: str, df: pd.DataFrame, schema=None, partition: str = "data") -> None:
    write_parquet_atomic(df, partition_file(home, asset, partition), schema=schema)


def table(home: Path, asset: str) -> pd.DataFrame:
    return read_asset(home, asset)


def build_home(root: Path, lenscat: pd.DataFrame) -> Path:
    from lensaudit.selection.inject import draw_parameters, plan_injections
    from lensaudit.selection.run import build_hosts

    home = Path(root)
    obj = _objects(lenscat)
    write_table(home, "sweep_catalog", sweep_rows(obj), partition=STEM)
    manifest = manifest_rows(obj)
    write_table(home, "training_manifest", manifest, schema=MANIFEST_SCHEMA)
    write_store(home, manifest)
    build_hosts(home, get_profile(PROFILE))
    hosts = table(home, "injection_hosts")
    plan = plan_injections(hosts, n_per_cell=1, seed=0)
    inj = pd.concat([plan, draw_parameters(plan, hosts, 0)], axis=1)  # the parameters with the host's PSF
    write_table(home, "completeness_injections", inj)
    first = hosts.iloc[:5]
    test_pos = manifest[(manifest["label"] == 1) & (manifest["split"] == "test")]
    adv = pd.concat([pd.DataFrame({"test": t, "galaxy_id": first["galaxy_id"], "logit_before": -3.0,
                                   "logit_after": -2.9, "added_rms_nmgy": 0.001}) for t in ("null_control", "synthetic_ring")]
                    + [pd.DataFrame({"test": "arc_suppression", "galaxy_id": test_pos["galaxy_id"], "logit_before": 2.0,
                                     "logit_after": 0.5, "added_rms_nmgy": np.nan})], ignore_index=True)
    write_table(home, "adversarial_scores", adv)
    write_table(home, "failure_modes", pd.DataFrame({"category": ["N1"], "fpr": [0.0]}))
    write_table(home, "failure_missed_injections", inj.iloc[::7].assign(cause="not_observable"))
    real = manifest[manifest["label"] == 1]
    write_table(home, "injection_realism", pd.DataFrame({
        "kind": ["injected"] * 5 + ["real"] * len(real),
        "galaxy_id": [*hosts["galaxy_id"].iloc[-5:], *real["galaxy_id"]]}))
    return home


def copy_home(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst
