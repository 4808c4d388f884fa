"""``injection_hosts``: the real cutouts that arcs are injected into.

Hosts are test-split negatives whose cutout passed QC (``cutout_ok``), never a train/val
row, a row in a train/val HEALPix pixel, or a positive.  Each host is binned by its own
PSF FWHM (psfsize_r, arcsec) and depth (psfdepth_r as 5-sigma AB mag) on the
completeness grid; hosts outside the grid are kept with bin -1 and counted, and
(PSF, depth) bins with fewer than ``min_hosts`` distinct hosts are reported.
"""

from __future__ import annotations

import pandas as pd

from lensaudit.selection.grid import DEPTH, PSF, host_bins

HOST_COLUMNS = ["galaxy_id", "split", "label", "pool", "confuser_category", "healpix_128", "psfsize_g", "psfsize_r",
                "psfsize_z", "psfdepth_g", "psfdepth_r", "psfdepth_z", "ebv", "cutout_path", "cutout_offset"]


def select_hosts(manifest: pd.DataFrame, index: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """(hosts sorted by galaxy_id with psf_bin / depth_bin, counts of what was left out and why)."""
    m = manifest.merge(index[["galaxy_id", "cutout_path", "cutout_offset", "cutout_ok", "fail_reason"]],
                       on="galaxy_id", how="left")
    test_neg = m[(m["split"] == "test") & (m["label"] == 0)]
    held = set(m.loc[m["split"].isin(["train", "val"]), "healpix_128"])
    bad_cut = ~test_neg["cutout_ok"].fillna(False).astype(bool)
    in_held_pixel = test_neg["healpix_128"].isin(held)
    hosts = test_neg[~bad_cut & ~in_held_pixel].sort_values("galaxy_id", kind="stable")
    hosts = hosts[HOST_COLUMNS].reset_index(drop=True)
    hosts = pd.concat([hosts, host_bins(hosts).reset_index(drop=True)], axis=1)
    left_out = {"test_negatives": int(len(test_neg)), "cutout_not_ok": int(bad_cut.sum()),
                "in_train_or_val_pixel": int((~bad_cut & in_held_pixel).sum()),
                "outside_grid": int(((hosts["psf_bin"] < 0) | (hosts["depth_bin"] < 0)).sum())}
    return hosts, left_out


def bin_counts(hosts: pd.DataFrame, min_hosts: int) -> pd.DataFrame:
    """Distinct hosts per (psf_bin, depth_bin) of the grid, with ``too_few`` flags."""
    grid = pd.MultiIndex.from_product([range(PSF.n), range(DEPTH.n)], names=["psf_bin", "depth_bin"])
    n = hosts[(hosts["psf_bin"] >= 0) & (hosts["depth_bin"] >= 0)].groupby(["psf_bin", "depth_bin"])["galaxy_id"].nunique()
    out = n.reindex(grid, fill_value=0).rename("n_hosts").reset_index()
    out["psf_lo"], out["psf_hi"] = PSF.lo[out["psf_bin"]], PSF.hi[out["psf_bin"]]
    out["depth_lo"], out["depth_hi"] = DEPTH.lo[out["depth_bin"]], DEPTH.hi[out["depth_bin"]]
    out["too_few"] = out["n_hosts"] < min_hosts
    return out


def host_leaks(hosts: pd.DataFrame, manifest: pd.DataFrame) -> dict:
    """Hosts that are not test-split negatives of the manifest, or share a HEALPix pixel
    with a train/val row (the blocking host-split check)."""
    m = manifest.set_index("galaxy_id")
    known = hosts["galaxy_id"].isin(m.index)
    rows = m.reindex(hosts["galaxy_id"])
    not_test = (rows["split"] != "test").to_numpy() | ~known.to_numpy()
    positive = (rows["label"] != 0).to_numpy() & known.to_numpy()
    held = set(manifest.loc[manifest["split"].isin(["train", "val"]), "healpix_128"])
    pixel = hosts["galaxy_id"].map(m["healpix_128"]).isin(held).to_numpy()
    return {"not_in_test_split": hosts.loc[not_test, "galaxy_id"].tolist(),
            "positives": hosts.loc[positive, "galaxy_id"].tolist(),
            "in_train_or_val_pixel": hosts.loc[pixel, "galaxy_id"].tolist(),
            "n_hosts": int(len(hosts)), "n_distinct": int(hosts["galaxy_id"].nunique())}
