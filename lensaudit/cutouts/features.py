"""Shortcut features of a cutout (DESIGN s3 "Shortcut features and gates").

Per stamp, r band unless stated (nmgy per pixel; radii in pixels from the centre):
core mean and max within r < 4, 8, 12; arc annulus mean (4 <= r < 16); outer mean
(16 <= r < 28); radial gradient (core r < 4 mean minus the 12 <= r < 16 ring mean, per
10 px); azimuthal asymmetry (std of the annulus residual after subtracting the
azimuthal median profile, over the outer-ring MAD); Laplacian energy (mean squared
5-point Laplacian) in the core (r < 8) and the annulus; annulus-minus-core colours
g-r and r-z (AB, NaN when a mean flux is not positive); saturation fraction (pixels above
a global threshold, the sample's r-band p99.9); edge artefact score (largest |border
median - outer median| over the 3-px borders, in units of the outer MAD).
These features are what a classifier could learn *instead of* arcs (reference/002 s21).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from lensaudit.order_stats import median_rows
from lensaudit.stamps import azimuthal_median, radius_map
from lensaudit.survey.photometry import nmgy_to_mag

FEATURES = ("core_mean_4", "core_max_4", "core_mean_8", "core_max_8", "core_mean_12", "core_max_12",
            "annulus_mean", "outer_mean", "radial_gradient", "azimuthal_asymmetry", "laplacian_core",
            "laplacian_annulus", "colour_g_r_annulus_minus_core", "colour_r_z_annulus_minus_core",
            "saturation_frac", "edge_artefact")


#: stamps per vectorised block of ``features_table`` (float64 copies of ~60 MB)
FEATURE_BLOCK = 256


def _median_rows(a: np.ndarray, axis: int = 1) -> np.ndarray:
    """np.median of each row of a finite 2-D array, to the bit (``order_stats.median_rows``: the long
    outer-ring rows ~1.5x faster)."""
    if axis != 1 or np.ndim(a) != 2:
        raise ValueError("_median_rows takes the rows (axis 1) of a 2-D array")
    return median_rows(a)


def _features_block(stamps: np.ndarray, sat_threshold: float) -> dict[str, np.ndarray]:
    """The features of a block of (N, 3, H, W) stamps, one value per stamp per feature.

    Non-finite pixels are ignored (a selection without a finite pixel gives NaN); a block
    whose pixels are all finite takes numpy's plain reductions, any other the nan-aware ones
    (same definitions; the plain ones are several times faster)."""
    n = len(stamps)
    clean = bool(np.isfinite(stamps).all())
    mean, vmax, median, std = ((np.mean, np.max, _median_rows, np.std) if clean else
                               (np.nanmean, np.nanmax, np.nanmedian, np.nanstd))

    def f64(a):
        a = np.asarray(a, dtype=np.float64)
        return a if clean else np.where(np.isfinite(a), a, np.nan)
    r_band = f64(stamps[:, 1])  # g and z enter only through two means
    rad = radius_map(stamps.shape[-1])
    def m(a, sel):
        return mean(f64(a[:, sel]), axis=1)
    out = {}
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN selections give NaN, as documented
        for rr in (4, 8, 12):
            out[f"core_mean_{rr}"] = m(r_band, rad < rr)
            out[f"core_max_{rr}"] = vmax(r_band[:, rad < rr], axis=1)
        ann = (rad >= 4) & (rad < 16)
        out["annulus_mean"] = m(r_band, ann)
        out["outer_mean"] = m(r_band, (rad >= 16) & (rad < 28))
        out["radial_gradient"] = (out["core_mean_4"] - m(r_band, (rad >= 12) & (rad < 16))) / 10.0
        resid = r_band - azimuthal_median(r_band, rad)
        ring_outer = r_band[:, rad >= 35]
        med_outer = median(ring_outer, axis=1)
        mad = 1.4826 * median(np.abs(ring_outer - med_outer[:, None]), axis=1)
        good_mad = mad > 0
        out["azimuthal_asymmetry"] = np.where(good_mad, std(resid[:, ann], axis=1) / mad, np.nan)
        lap = (r_band[:, :-2, 1:-1] + r_band[:, 2:, 1:-1] + r_band[:, 1:-1, :-2] + r_band[:, 1:-1, 2:]
               - 4 * r_band[:, 1:-1, 1:-1]) ** 2
        inner = rad[1:-1, 1:-1]  # the Laplacian is defined on the interior, where the core and annulus lie
        out["laplacian_core"] = m(lap, inner < 8)
        out["laplacian_annulus"] = m(lap, (inner >= 4) & (inner < 16))
        core = rad < 4
        g, z = stamps[:, 0], stamps[:, 2]
        cg, cr, cz = (nmgy_to_mag(m(b, core)) for b in (g, r_band, z))
        ag, ar, az = (nmgy_to_mag(m(b, ann)) for b in (g, r_band, z))
        out["colour_g_r_annulus_minus_core"] = (ag - ar) - (cg - cr)
        out["colour_r_z_annulus_minus_core"] = (ar - az) - (cr - cz)
        flat = r_band.reshape(n, -1)
        out["saturation_frac"] = (flat > sat_threshold).sum(axis=1) / np.isfinite(flat).sum(axis=1)
        borders = [r_band[:, :3].reshape(n, -1), r_band[:, -3:].reshape(n, -1),
                   r_band[:, :, :3].reshape(n, -1), r_band[:, :, -3:].reshape(n, -1)]
        scores = np.stack([np.abs(median(b, axis=1) - med_outer) / mad for b in borders])
        out["edge_artefact"] = np.where(good_mad, np.nanmax(scores, axis=0), np.nan)
    return out


def features_of(stamp: np.ndarray, sat_threshold: float) -> dict[str, float]:
    """Features of one (3, H, W) g,r,z stamp (non-finite pixels ignored)."""
    return {f: float(v[0]) for f, v in _features_block(stamp[None], sat_threshold).items()}


def features_table(stamps: np.ndarray, sat_threshold: float) -> pd.DataFrame:
    """The features of every (3, H, W) stamp of ``stamps``, one row per stamp in order
    (columns ``FEATURES``), in blocks of ``FEATURE_BLOCK``: the all-finite stamps together
    (fast reductions), the stamps with a NaN or infinite pixel apart (nan-aware ones)."""
    n = len(stamps)
    cols = {f: np.full(n, np.nan) for f in FEATURES}
    finite = np.isfinite(stamps).all(axis=(1, 2, 3)) if n else np.zeros(0, bool)
    for idx in (np.flatnonzero(finite), np.flatnonzero(~finite)):
        for a in range(0, len(idx), FEATURE_BLOCK):
            rows = idx[a:a + FEATURE_BLOCK]
            for f, v in _features_block(stamps[rows], sat_threshold).items():
                cols[f][rows] = v
    return pd.DataFrame(cols, columns=list(FEATURES))


def store_features_table(reader, rows: pd.DataFrame, sat_threshold: float, chunk: int = FEATURE_BLOCK) -> pd.DataFrame:
    """``features_table(reader.read(rows), sat_threshold)`` to the bit, without the whole
    (N, 3, H, W) array in memory: the stamps of ``rows`` (``cutout_ok`` rows of a cutout
    index, in order) are read from ``reader`` (a ``CutoutReader``) ``chunk`` rows at a time
    into one reused buffer and gathered into the same blocks ``features_table`` forms (its
    all-finite stamps ``FEATURE_BLOCK`` at a time in row order, the others apart; numpy's
    row reductions round differently in blocks of another size, by a few ulp).  On a VM
    where every new page cost ~50 us (numpy's huge-page advice, ``lensaudit/numpy_pages.py``),
    2,048 stamps read whole and their features took 4.0-6.1 s in a fresh interpreter against
    1.4-1.5 s in chunks (``bench_cutouts.py --parts features``; bench/RESULTS.md, session 20)."""
    n = len(rows)
    cols = {f: np.full(n, np.nan) for f in FEATURES}
    shape = (reader.bands, reader.size, reader.size)
    buf = np.empty((min(chunk, n), *shape), np.float32)
    blocks = {True: [None, []], False: [None, []]}  # finite or not: [block buffer, its rows' positions]

    def flush(kind: bool) -> None:
        block, at = blocks[kind]
        for f, v in _features_block(block[:len(at)], sat_threshold).items():
            cols[f][at] = v
        at.clear()

    for a in range(0, n, chunk):
        got = reader.read(rows.iloc[a:a + chunk], out=buf[:min(chunk, n - a)])
        for i, kind in enumerate(np.isfinite(got).all(axis=(1, 2, 3)).tolist()):
            slot = blocks[kind]
            if slot[0] is None:
                slot[0] = np.empty((FEATURE_BLOCK, *shape), np.float32)
            slot[0][len(slot[1])] = got[i]
            slot[1].append(a + i)
            if len(slot[1]) == FEATURE_BLOCK:
                flush(kind)
    for kind in (True, False):
        if blocks[kind][1]:
            flush(kind)
    return pd.DataFrame(cols, columns=list(FEATURES))


def saturation_threshold(stamps: np.ndarray) -> float:
    """The global r-band p99.9 over a sample of stamps (N, 3, H, W)."""
    v = stamps[:, 1].ravel()
    v = v[np.isfinite(v)]
    return float(np.percentile(v, 99.9)) if len(v) else np.inf


SATURATION_SAMPLE_ROWS = 2000  # stamps the saturation threshold is measured on


def store_saturation_threshold(index: pd.DataFrame, reader, sample_rows: int = SATURATION_SAMPLE_ROWS,
                               chunk: int = FEATURE_BLOCK) -> float:
    """``saturation_threshold`` of the store's ``cutout_ok`` stamps, on every k-th row in
    galaxy_id order (k = rows // ``sample_rows``): the threshold the features are computed
    with, and recomputed by the gate that re-derives them.

    ``saturation_threshold(reader.read(sample))`` to the bit without the sample's whole
    (N, 3, H, W) array and its copies: the stamps are read ``chunk`` rows at a time into one
    reused buffer, their finite r-band pixels gathered in the same order into one array, whose
    p99.9 numpy then selects in place (``overwrite_input``: the same partition and interpolation
    on the same values).  The whole array, its r-band copy, the finite mask and percentile's copy
    (~0.5 GB of new pages for 2,000 stamps) cost 5 s per call in a fresh process on the project's VM
    with numpy's huge-page advice on, 0.3 s this way (bench/RESULTS.md, session 22)."""
    ok = index[index["cutout_ok"]].sort_values("galaxy_id")
    sample = ok.iloc[:: max(1, len(ok) // sample_rows)] if len(ok) else ok
    n = len(sample)
    if not n:
        return float("inf")
    buf = np.empty((min(chunk, n), reader.bands, reader.size, reader.size), np.float32)
    values = np.empty(n * reader.size * reader.size, np.float32)
    filled = 0
    for a in range(0, n, chunk):
        r = reader.read(sample.iloc[a:a + chunk], out=buf[:min(chunk, n - a)])[:, 1]
        finite = r[np.isfinite(r)]
        values[filled:filled + len(finite)] = finite
        filled += len(finite)
    return float(np.percentile(values[:filled], 99.9, overwrite_input=True)) if filled else np.inf


def core_window(size: int, radius_px: float = 10.0) -> tuple[int, int]:
    """The centred square window ``[start, stop)`` of a ``size``-px stamp that holds every pixel
    with r < ``radius_px``: ``core_pixels`` of the window equals ``core_pixels`` of the stamp (the
    same pixels in the same order), so the core-only classifier reads 19^2 of 101^2 px."""
    rows = np.flatnonzero((radius_map(size) < radius_px).any(axis=1))
    return int(rows[0]), int(rows[-1]) + 1


def core_pixels(stamps: np.ndarray, radius_px: float = 10.0) -> np.ndarray:
    """(N, 3 x n_core) central r < radius pixels of every band (NaN -> 0), for the
    core-only classifier; ``stamps`` may be the ``core_window`` of the stamps."""
    rad = radius_map(stamps.shape[-1])
    sel = rad < radius_px
    x = stamps[:, :, sel].reshape(len(stamps), -1)
    return np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
