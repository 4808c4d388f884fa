"""Generate one sweep of the embedded mock DR10 sky (DESIGN section 6).

``generate_sweep`` returns the catalogue the pipeline reads (the columns of
``lensaudit.survey.schema``) and, separately, the ground truth: which rows are true
lenses (with theta_E), label-noise lenses, confuser morphologies, companions and
corrupt rows, plus every parameter an image renderer needs.  Nothing of the truth is
written into the catalogue.
"""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd

from lensaudit.mock.conditions import observing_conditions
from lensaudit.mock.config import MockSkyConfig
from lensaudit.survey.bricks import bricks_of
from lensaudit.survey.photometry import mag5sigma_to_depth_ivar, mag_to_nmgy, mw_transmission
from lensaudit.survey.schema import galaxy_id
from lensaudit.survey.sweeps import SweepBox

TYPE_FRACTIONS = {"PSF": 0.22, "REX": 0.24, "EXP": 0.16, "DEV": 0.20, "SER": 0.18}
CONFUSER_MORPHOLOGIES = ("ring", "spiral", "edge_on", "merger", "blue_clumpy")
DR10_SOUTH_RELEASE = 10000
#: objid offset between sweeps (a sweep holds < 10^6 rows of one brick)
OBJID_STRIDE = 1_000_000


def _rng(config: MockSkyConfig, box: SweepBox, stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([config.seed, zlib.crc32(box.name.encode()), stream]))


def _uniform_in_box(rng, box: SweepBox, n: int):
    ra = rng.uniform(box.ra1, box.ra2, n)
    s1, s2 = np.sin(np.deg2rad(box.dec1)), np.sin(np.deg2rad(box.dec2))
    dec = np.rad2deg(np.arcsin(rng.uniform(s1, s2, n)))
    return ra, dec


def _lens_hash_fraction(names: pd.Series, seed: int) -> np.ndarray:
    return np.array([zlib.crc32(f"{n}:{seed}".encode()) / 2**32 for n in names])


#: field galaxies' r magnitudes: FIELD_MAG_R_PEAK - |N(0, FIELD_MAG_R_WIDTH)| [AB]
FIELD_MAG_R_PEAK, FIELD_MAG_R_WIDTH = 23.2, 2.2
#: lens galaxies are drawn like the field galaxies the negative pools keep (z < 20 is about
#: r < 20.6 for their colours), so that a lens's core brightness is no shortcut
LENS_MAG_R_FAINTEST = 20.6


def _field_galaxy_mag_r(rng, n: int) -> np.ndarray:
    return FIELD_MAG_R_PEAK - np.abs(rng.normal(0, FIELD_MAG_R_WIDTH, n))


def _pool_like_mag_r(rng, k: int) -> np.ndarray:
    """``k`` lens-galaxy r magnitudes [AB]: the field law truncated at ``LENS_MAG_R_FAINTEST``."""
    out = np.empty(0)
    while len(out) < k:
        m = _field_galaxy_mag_r(rng, 8 * k + 16)
        out = np.concatenate([out, m[m < LENS_MAG_R_FAINTEST]])
    return out[:k]


def _galaxy_shapes(rng, types: np.ndarray):
    n = len(types)
    shape_r = np.where(types == "PSF", 0.0, np.exp(rng.normal(np.log(0.9), 0.5, n)))
    shape_r = np.where(types == "REX", rng.uniform(0.25, 1.0, n), shape_r)
    ell = np.clip(rng.beta(1.6, 4.0, n), 0, 0.85)
    ell = np.where(np.isin(types, ["PSF", "REX"]), 0.0, ell)
    phi = rng.uniform(0, np.pi, n)
    e1, e2 = ell * np.cos(2 * phi), ell * np.sin(2 * phi)
    sersic = np.select([types == "DEV", types == "SER", types == "PSF"], [4.0, rng.uniform(0.6, 6.0, n), 0.0], 1.0)
    return shape_r, e1, e2, sersic


def _apply_confuser(rng, cat: dict, idx: np.ndarray, morph: np.ndarray) -> None:
    """Give confuser rows Tractor parameters typical of their morphology (mostly, not
    always, satisfying the catalogue proxies: the proxies are imperfect on purpose)."""
    for m in CONFUSER_MORPHOLOGIES:
        sel = idx[morph == m]
        k = len(sel)
        if not k:
            continue
        if m == "ring":
            cat["type"][sel] = np.where(rng.random(k) < 0.6, "DEV", "SER")
            cat["sersic"][sel] = np.where(cat["type"][sel] == "DEV", 4.0, rng.uniform(3.5, 6.0, k))
            cat["mag_r"][sel] = rng.uniform(16.5, 20.5, k)
        elif m == "edge_on":
            cat["type"][sel] = np.where(rng.random(k) < 0.5, "SER", "DEV")
            ell = rng.uniform(0.45, 0.8, k)
            phi = rng.uniform(0, np.pi, k)
            cat["shape_e1"][sel], cat["shape_e2"][sel] = ell * np.cos(2 * phi), ell * np.sin(2 * phi)
            cat["shape_r"][sel] = rng.uniform(0.5, 3.0, k)
            cat["sersic"][sel] = np.where(cat["type"][sel] == "DEV", 4.0, rng.uniform(0.8, 2.0, k))
        elif m == "blue_clumpy":
            cat["type"][sel] = rng.choice(["SER", "REX", "DEV"], size=k, p=[0.5, 0.4, 0.1])
            cat["sersic"][sel] = np.where(cat["type"][sel] == "DEV", 4.0, np.where(cat["type"][sel] == "REX", 1.0, rng.uniform(0.6, 1.5, k)))
            cat["g_r"][sel] = rng.uniform(0.05, 0.5, k)
            cat["mag_r"][sel] = rng.uniform(17.5, 20.8, k)
        elif m == "spiral":
            cat["type"][sel] = rng.choice(["SER", "DEV"], size=k, p=[0.8, 0.2])
            cat["shape_r"][sel] = rng.uniform(1.5, 5.0, k)
            cat["mag_r"][sel] = rng.uniform(16.0, 19.5, k)
            cat["sersic"][sel] = np.where(cat["type"][sel] == "DEV", 4.0, rng.uniform(0.7, 2.5, k))
        elif m == "merger":
            cat["type"][sel] = rng.choice(["SER", "DEV"], size=k)
            cat["sersic"][sel] = np.where(cat["type"][sel] == "DEV", 4.0, rng.uniform(1.0, 4.0, k))
            cat["mag_r"][sel] = rng.uniform(17.0, 20.0, k)


def generate_sweep(config: MockSkyConfig, box: SweepBox, lenses: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(catalogue, truth) for one sweep box.

    ``lenses`` is the full lenscat table (lens_id, ra, dec, lens_type, grading); it and the
    mock sky's own known lenses (``lensaudit.mock.lens_supplement``) make the sky's lens
    catalogue: the galaxy-scale entries inside the box, thinned by ``config.lens_fraction``, are
    placed as bright early-type Tractor rows within 0.3" of their catalogue position.
    """
    from lensaudit.mock.lens_supplement import known_lenses

    lenses = known_lenses(lenses, config)
    rng = _rng(config, box, 1)
    n = config.n_objects_per_sweep
    ra, dec = _uniform_in_box(rng, box, n)
    types = rng.choice(list(TYPE_FRACTIONS), size=n, p=list(TYPE_FRACTIONS.values()))
    shape_r, e1, e2, sersic = _galaxy_shapes(rng, types)
    is_gal = types != "PSF"
    cat = {
        "ra": ra, "dec": dec, "type": types.astype(object),
        "shape_r": shape_r, "shape_e1": e1, "shape_e2": e2, "sersic": sersic,
        "mag_r": np.where(is_gal, _field_galaxy_mag_r(rng, n), rng.uniform(15.0, 22.5, n)),
        "g_r": np.where(np.isin(types, ["DEV", "SER"]), rng.normal(1.0, 0.35, n), rng.normal(0.55, 0.3, n)),
        "r_z": np.where(np.isin(types, ["DEV", "SER"]), rng.normal(0.8, 0.25, n), rng.normal(0.45, 0.25, n)),
    }
    role = np.full(n, "field", dtype=object)
    morph = np.full(n, "", dtype=object)

    # confusers among galaxies
    gal_idx = np.flatnonzero(is_gal)
    n_conf = int(round(config.confuser_fraction * len(gal_idx)))
    conf_idx = np.sort(rng.choice(gal_idx, size=n_conf, replace=False)) if n_conf else np.array([], int)
    conf_morph = rng.choice(CONFUSER_MORPHOLOGIES, size=n_conf)
    _apply_confuser(rng, cat, conf_idx, conf_morph)
    role[conf_idx] = "confuser"
    morph[conf_idx] = conf_morph

    _resonance_rings(config, box, morph, is_gal)

    # merger companions: a second source 3-6" away with 30-100 % of the flux
    merger_idx = conf_idx[conf_morph == "merger"]
    comp = _companions(rng, cat, merger_idx)

    # lenses at lenscat positions
    lens_rows, lens_truth = _lenses(config, box, lenses, rng)

    rows = pd.DataFrame(cat)
    rows["role"], rows["morphology"] = role, morph
    rows = pd.concat([rows, comp, lens_rows], ignore_index=True)
    rows = _photometry_and_conditions(config, box, rows)
    lens_truth = _discovered(config, box, rows[rows["role"] == "lens"], lens_truth)
    rows = _maskbits(config, box, rows)
    rows = _corrupt_rows(config, box, rows)
    rows, truth = _finalise(rows, lens_truth, OBJID_STRIDE * config.sweep_boxes.index(box))
    return rows, truth


def _resonance_rings(config: MockSkyConfig, box: SweepBox, morph: np.ndarray, is_gal: np.ndarray) -> None:
    """Give ``config.ring_fraction`` of the other galaxies (not confusers) a ring in the image
    only: resonance rings are common (inner and outer rings together in ~20-30 % of disc
    galaxies, Buta & Combes 1996; Comeron et al. 2014) and Tractor fits such a galaxy as its
    ordinary profile, so the catalogue row is untouched and no catalogue proxy can find them.  Their own random stream
    (5): the catalogue, the pools and the lenses are the same draws with or without them."""
    if config.ring_fraction <= 0:
        return
    rng = _rng(config, box, 5)
    free = np.flatnonzero(is_gal & (morph == ""))
    pick = rng.choice(free, size=int(round(config.ring_fraction * len(free))), replace=False)
    morph[pick] = "ring"


def _companions(rng, cat: dict, idx: np.ndarray) -> pd.DataFrame:
    k = len(idx)
    sep_deg = rng.uniform(3.2, 5.8, k) / 3600.0
    pa = rng.uniform(0, 2 * np.pi, k)
    dec0 = cat["dec"][idx]
    comp = pd.DataFrame({
        "ra": cat["ra"][idx] + sep_deg * np.sin(pa) / np.cos(np.deg2rad(dec0)),
        "dec": dec0 + sep_deg * np.cos(pa),
        "type": rng.choice(["EXP", "DEV", "REX"], size=k).astype(object),
        "shape_r": rng.uniform(0.4, 1.5, k), "shape_e1": rng.uniform(-0.2, 0.2, k),
        "shape_e2": rng.uniform(-0.2, 0.2, k), "sersic": np.ones(k),
        "mag_r": cat["mag_r"][idx] + rng.uniform(0.0, 1.3, k),
        "g_r": rng.normal(0.8, 0.2, k), "r_z": rng.normal(0.6, 0.2, k),
    })
    comp.loc[comp["type"] == "DEV", "sersic"] = 4.0
    comp.loc[comp["type"] == "REX", ["shape_e1", "shape_e2"]] = 0.0
    comp["role"], comp["morphology"] = "companion", ""
    return comp


def _lenses(config: MockSkyConfig, box: SweepBox, lenses: pd.DataFrame, rng) -> tuple[pd.DataFrame, pd.DataFrame]:
    sel = lenses[(lenses["lens_type"] == "galaxy") & box.contains(lenses["ra"], lenses["dec"])]
    sel = sel[np.isfinite(sel["ra"]) & np.isfinite(sel["dec"])]
    sel = sel[_lens_hash_fraction(sel["lens_id"], config.seed) < config.lens_fraction].sort_values("lens_id")
    k = len(sel)
    offset = rng.normal(0, 0.12, (2, k)) / 3600.0
    types = rng.choice(["DEV", "SER", "REX"], size=k, p=[0.5, 0.35, 0.15]).astype(object)
    shape_r, e1, e2, sersic = _galaxy_shapes(rng, types)
    rows = pd.DataFrame({
        "ra": sel["ra"].to_numpy() + offset[0] / np.cos(np.deg2rad(sel["dec"].to_numpy())),
        "dec": sel["dec"].to_numpy() + offset[1],
        "type": types, "shape_r": np.where(types == "REX", shape_r, np.clip(shape_r, 0.6, 3.0)),
        "shape_e1": e1, "shape_e2": e2, "sersic": np.where(types == "SER", np.maximum(sersic, 2.0), sersic),
        "mag_r": _pool_like_mag_r(rng, k), "g_r": rng.normal(1.0, 0.35, k), "r_z": rng.normal(0.8, 0.25, k),
        "role": "lens", "morphology": "",
    })
    tier_b = sel["grading"].to_numpy() == "probable"
    not_lens = tier_b & (rng.random(k) < config.label_noise_tier_b)
    from lensaudit.injection.prior import draw_source_and_lens

    arc = arc_truth(draw_source_and_lens(rng, k, config.lens_theta_e_range, config.lens_src_mag_r_range))
    truth = pd.DataFrame({"lens_id": sel["lens_id"].to_numpy(), "grading": sel["grading"].to_numpy(),
                          "is_true_lens": ~not_lens, **arc})
    truth.loc[not_lens, ["theta_e_arcsec", "src_mag_r"]] = np.nan
    return rows, truth


def arc_truth(src: dict) -> dict[str, np.ndarray]:
    """The truth table's arc columns of prior draws (``injection.prior.draw_source_and_lens``):
    the source's r magnitude and colours, its shape and position, the lens's theta_E and shear
    (the lens galaxy's own ellipticity comes from its catalogue row)."""
    return {"theta_e_arcsec": src["theta_e_arcsec"], "src_mag_r": src["src_mag_r"],
            "src_g_r": src["src_mag_g"] - src["src_mag_r"], "src_r_z": src["src_mag_r"] - src["src_mag_z"],
            "src_r_sersic_arcsec": src["src_r_sersic_arcsec"], "src_n_sersic": src["src_n_sersic"],
            "src_x_arcsec": src["src_x_arcsec"], "src_y_arcsec": src["src_y_arcsec"],
            "src_e1": src["src_e1"], "src_e2": src["src_e2"], "gamma1": src["gamma1"], "gamma2": src["gamma2"]}


def _discovered(config: MockSkyConfig, box: SweepBox, lens_rows: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """The true lenses' arcs redrawn until a survey would have found them at their own PSF
    and depth (``lensaudit.mock.discovery``); their own random stream (9), so the catalogue
    and every other draw are the same with or without the selection."""
    from lensaudit.injection.prior import draw_source_and_lens
    from lensaudit.mock.discovery import select_discovered

    def draw(rng):
        return arc_truth(draw_source_and_lens(rng, 1, config.lens_theta_e_range, config.lens_src_mag_r_range))

    out = select_discovered(truth, lens_rows, _rng(config, box, 9), draw, config.discovery_snr_tier_b)
    return out.drop(columns="grading")  # the catalogue's, not the truth's


def _photometry_and_conditions(config: MockSkyConfig, box: SweepBox, rows: pd.DataFrame) -> pd.DataFrame:
    rng = _rng(config, box, 2)
    n = len(rows)
    cond = observing_conditions(config.seed, rows["ra"].to_numpy(), rows["dec"].to_numpy(), rng)
    ebv = cond.pop("ebv")
    rows["ebv"] = ebv
    mags = {"r": rows["mag_r"].to_numpy()}
    mags["g"] = mags["r"] + rows["g_r"].to_numpy()
    mags["z"] = mags["r"] - rows["r_z"].to_numpy()
    gal = rows["type"].to_numpy() != "PSF"
    for b in ("g", "r", "z"):
        trans = mw_transmission(ebv, b)
        true_flux = mag_to_nmgy(mags[b]) * trans
        psfdepth = mag5sigma_to_depth_ivar(cond[f"depth5_{b}"])
        galdepth = mag5sigma_to_depth_ivar(cond[f"depth5_{b}"] - 0.35)
        ivar = np.where(gal, galdepth, psfdepth) * rng.uniform(0.8, 1.2, n)
        rows[f"flux_{b}"] = true_flux + rng.normal(0, 1, n) / np.sqrt(ivar)
        rows[f"flux_ivar_{b}"] = ivar
        rows[f"mw_transmission_{b}"] = trans
        rows[f"nobs_{b}"] = cond[f"nobs_{b}"]
        rows[f"psfsize_{b}"] = cond[f"psfsize_{b}"]
        rows[f"psfdepth_{b}"] = psfdepth
        rows[f"galdepth_{b}"] = galdepth
        rows[f"fiberflux_{b}"] = rows[f"flux_{b}"] * np.where(gal, 0.35, 0.75)
    return rows


def _mask_circles(rng, box: SweepBox, n: int, radius_deg: float):
    ra, dec = _uniform_in_box(rng, box, n)
    return ra, dec, np.full(n, radius_deg)


def _maskbits(config: MockSkyConfig, box: SweepBox, rows: pd.DataFrame) -> pd.DataFrame:
    """MASKBITS from mock bright stars (BRIGHT, MEDIUM), large galaxies (GALAXY),
    clusters (CLUSTER) and per-band ALLMASK at random 1 % of rows."""
    rng = _rng(config, box, 3)
    n = len(rows)
    ra, dec = rows["ra"].to_numpy(), rows["dec"].to_numpy()
    bits = np.zeros(n, dtype=np.int64)
    area = (box.ra2 - box.ra1) * (box.dec2 - box.dec1)
    for bit, per_deg2, radius in ((1, 0.8, 0.1), (11, 4.0, 0.03), (12, 0.6, 0.05), (13, 0.1, 0.1)):
        cra, cdec, rad = _mask_circles(rng, box, int(round(per_deg2 * area)), radius)
        for a, d, r in zip(cra, cdec, rad):
            near = np.abs(dec - d) < r
            dra = (ra[near] - a) * np.cos(np.deg2rad(d))
            hit = np.flatnonzero(near)[dra**2 + (dec[near] - d) ** 2 < r**2]
            bits[hit] |= 1 << bit
    for i, b in enumerate(("g", "r", "z")):
        allmask = rng.random(n) < 0.01
        bits[allmask] |= 1 << (5 + i)
        rows[f"allmask_{b}"] = np.where(allmask, 1, 0).astype(np.int16)
    rows["maskbits"] = bits
    return rows


def _corrupt_rows(config: MockSkyConfig, box: SweepBox, rows: pd.DataFrame) -> pd.DataFrame:
    rng = _rng(config, box, 4)
    bad = (rng.random(len(rows)) < config.nan_coord_rate) & (rows["role"].to_numpy() == "field")
    rows["corrupt"] = bad
    rows.loc[bad, ["ra", "dec"]] = np.nan
    return rows


def _finalise(rows: pd.DataFrame, lens_truth: pd.DataFrame, objid_offset: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Brick names/ids, objids within bricks, the catalogue/truth split."""
    names, ids = bricks_of(rows["ra"].to_numpy(), rows["dec"].to_numpy())
    rows["brickname"], rows["brickid"] = names, ids
    # corrupt rows keep the brick they were generated in (their coordinates are lost)
    bad = rows["corrupt"].to_numpy()
    if bad.any():
        rows.loc[bad, "brickname"] = rows["brickname"][~bad].iloc[0]
        rows.loc[bad, "brickid"] = rows["brickid"][~bad].iloc[0]
    # bricks straddle sweep boundaries: objids are unique per brick across the whole sky
    rows["objid"] = (rows.groupby("brickname").cumcount() + objid_offset).astype(np.int32)
    rows["release"] = DR10_SOUTH_RELEASE
    rows["fitbits"] = 0
    rows["galaxy_id"] = [galaxy_id(b, o) for b, o in zip(rows["brickname"], rows["objid"])]
    lens_ids = rows.loc[rows["role"] == "lens", "galaxy_id"].to_numpy()
    lens_truth = lens_truth.assign(galaxy_id=lens_ids)
    truth = rows[["galaxy_id", "role", "morphology", "corrupt", "mag_r", "g_r", "r_z"]].merge(
        lens_truth, on="galaxy_id", how="left")
    truth = truth.rename(columns={"mag_r": "true_mag_r", "g_r": "true_g_r", "r_z": "true_r_z"})
    return rows, truth
