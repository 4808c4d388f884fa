"""Mock stamps: deterministic, physical units, arcs for true lenses, artefacts, failure rows."""

from dataclasses import asdict, replace

import numpy as np
import pandas as pd
import pytest

from lensaudit.cutouts.qc import quality
from lensaudit.mock.config import MOCK_SWEEP_BOXES, MockSkyConfig
from lensaudit.mock.render import MockSweepImager
from lensaudit.mock.writer import read_truth, write_mock_sweep
from lensaudit.survey.reader import read_catalog_fits

CFG = MockSkyConfig(n_objects_per_sweep=4000)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, lenscat_all):
    d = tmp_path_factory.mktemp("mock")
    name = MOCK_SWEEP_BOXES[1].name
    p = write_mock_sweep(CFG, name, d / "s", d / "t", lenscat_all)
    rows = read_catalog_fits(p).to_pandas()
    rows["galaxy_id"] = rows.brickname + "_" + rows.objid.astype(str)
    return d, name, rows, read_truth(d / "t")


def test_stamps_are_deterministic_and_in_nanomaggies(sweep):
    d, name, rows, truth = sweep
    im = MockSweepImager(rows, truth, CFG)
    gal = rows[(rows.type == "DEV") & (rows.flux_r > 10) & np.isfinite(rows.ra)].iloc[0]
    a, b = im.stamp(gal), MockSweepImager(rows, truth, CFG).stamp(gal)
    assert a.dtype == np.float32 and a.shape == (3, 101, 101) and np.array_equal(a, b, equal_nan=True)
    # the stamp holds the object's catalogue flux (plus neighbours and noise)
    total = np.nansum(a[1][40:61, 40:61])
    assert 0.6 * gal.flux_r < total < 1.6 * gal.flux_r + 1.0


def test_true_lenses_carry_an_arc(sweep):
    d, name, rows, truth = sweep
    lenses = truth[(truth.role == "lens") & (truth.is_true_lens == True)]  # noqa: E712
    assert len(lenses)
    gid = lenses.sort_values("src_mag_r").galaxy_id.iloc[0]
    target = rows[rows.galaxy_id == gid].iloc[0]
    with_arc = MockSweepImager(rows, truth, CFG).stamp(target)
    no_arc_truth = truth.copy()
    no_arc_truth.loc[no_arc_truth.galaxy_id == gid, "is_true_lens"] = False
    without = MockSweepImager(rows, no_arc_truth, CFG).stamp(target)
    diff = np.nansum(with_arc - without, axis=(1, 2))
    row = lenses[lenses.galaxy_id == gid].iloc[0]
    unlensed_r = 10 ** (-0.4 * (row.src_mag_r - 22.5))
    assert diff[1] > unlensed_r  # lensing magnifies: more than the unlensed source flux


def test_artefacts_at_their_rates_become_qc_failures(sweep):
    d, name, rows, truth = sweep
    cfg = replace(CFG, nan_patch_rate=0.0, missing_band_rate=1.0, spike_rate=0.0)
    im = MockSweepImager(rows, truth, cfg)
    s = im.stamp(rows[np.isfinite(rows.ra)].iloc[0])
    assert quality(s, "grz")["qc_reason"].startswith("missing_band_")


def test_partition_job_turns_every_failure_into_a_row(sweep, tmp_path):
    from lensaudit.spark_jobs.cutouts import cutouts_one_partition

    d, name, rows, truth = sweep
    pq = tmp_path / "sweep.parquet"
    rows.to_parquet(pq)
    man = rows[(rows.type == "SER") & np.isfinite(rows.ra)].head(6)[["galaxy_id", "ra", "dec", "brickname"]].copy()
    man["sweep"], man["label"], man["split"] = name, 0, "train"
    man = pd.concat([man, pd.DataFrame([{"galaxy_id": "9999p999_1", "ra": 1.0, "dec": 1.0, "brickname": "9999p999",
                                        "sweep": name, "label": 0, "split": "train"}])])
    spec = {"kind": "mock", "mock_config": asdict(CFG), "sweep_parquet": {name: str(pq)}, "truth_dir": str(d / "t")}
    info = cutouts_one_partition(name, man, spec, str(tmp_path / "store"), str(tmp_path / "idx.parquet"))
    idx = pd.read_parquet(tmp_path / "idx.parquet")
    assert len(idx) == 7 and info["ok"] == int(idx.cutout_ok.sum()) >= 5
    bad = idx[idx.galaxy_id == "9999p999_1"].iloc[0]
    assert not bad.cutout_ok and "not a row of this mock sweep" in bad.fail_reason and bad.cutout_offset == -1
    # re-running gives the same shards (content-hashed names) and bytes
    first = sorted(p.name for p in (tmp_path / "store" / "shards").iterdir())
    b1 = (tmp_path / "idx.parquet").read_bytes()
    cutouts_one_partition(name, man, spec, str(tmp_path / "store"), str(tmp_path / "idx.parquet"))
    assert sorted(p.name for p in (tmp_path / "store" / "shards").iterdir()) == first
    assert (tmp_path / "idx.parquet").read_bytes() == b1


def test_partition_job_qc_the_same_without_the_batched_qc(sweep, tmp_path, monkeypatch):
    """The chunk's QC (qc.quality_batch) and each stamp's own (qc.quality, the fallback when the
    batched QC fails) write the same index bytes."""
    import lensaudit.cutouts.qc as qc
    from lensaudit.spark_jobs.cutouts import cutouts_one_partition

    d, name, rows, truth = sweep
    pq = tmp_path / "sweep.parquet"
    rows.to_parquet(pq)
    man = rows[np.isfinite(rows.ra)].head(40)[["galaxy_id", "ra", "dec", "brickname"]].copy()
    man["sweep"], man["label"], man["split"] = name, 0, "train"
    spec = {"kind": "mock", "mock_config": asdict(CFG), "sweep_parquet": {name: str(pq)}, "truth_dir": str(d / "t")}
    cutouts_one_partition(name, man, spec, str(tmp_path / "a"), str(tmp_path / "a.parquet"))

    def broken(*args, **kwargs):
        raise RuntimeError("planted")

    monkeypatch.setattr(qc, "quality_batch", broken)
    cutouts_one_partition(name, man, spec, str(tmp_path / "b"), str(tmp_path / "b.parquet"))
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()
    assert pd.read_parquet(tmp_path / "a.parquet")["cutout_ok"].sum() >= 35


# ---- the batched renderer (lensaudit.mock.render) against the catalogue, lenstronomy and the reference

def _ids(rows, truth):
    """A mixed batch: galaxies of every type, a point source, confusers and true lenses."""
    ok = rows[np.isfinite(rows.ra)]
    lenses = truth[(truth.role == "lens") & (truth.is_true_lens == True)].galaxy_id.head(2)  # noqa: E712
    conf = truth[truth.morphology.isin(["ring", "spiral", "blue_clumpy"])].galaxy_id.head(3)
    return list(ok.galaxy_id.head(8)) + list(lenses) + list(conf)


def test_a_stamp_does_not_depend_on_its_batch(sweep):
    d, name, rows, truth = sweep
    ids = _ids(rows, truth)
    im = MockSweepImager(rows, truth, CFG)
    batch = im.stamps(ids)
    again = MockSweepImager(rows, truth, CFG).stamps(ids[::-1])[::-1]
    assert batch.dtype == np.float32 and batch.shape == (len(ids), 3, 101, 101)
    assert np.array_equal(batch, again, equal_nan=True)
    for k in (0, 8, len(ids) - 1):  # a galaxy, a lens, a confuser: alone = in the batch, bytes
        assert np.array_equal(im.stamps([ids[k]])[0], batch[k], equal_nan=True)
    with pytest.raises(KeyError, match="not a row of this mock sweep"):
        im.stamps(["9999p999_1"])


def _spec(**kw):
    from lensaudit.mock.render import StampSpec

    z = np.zeros(0)
    base = dict(galaxy_id="t", fwhm_arcsec=np.array([1.3, 1.2, 1.1]), psfdepth=np.full(3, 2000.0), src_x=z, src_y=z,
                src_flux=np.zeros((0, 3)), src_r_half=z, src_n=z, src_e1=z, src_e2=z, point_x=z, point_y=z,
                point_flux=np.zeros((0, 3)))
    base.update(kw)
    return StampSpec(**base)


@pytest.mark.parametrize("n", [0.5, 1.0, 2.5, 4.0, 6.0])
def test_each_source_carries_its_catalogue_flux(n):
    """Noise-free stamps of one Sersic source (R_e 0.05-0.6", |e| up to 0.6, off-centre):
    the flux in the stamp is the catalogue flux within 1 % in every band (the stamp holds
    all but < 0.2 % of these profiles: incomplete gamma function)."""
    from scipy.special import gammainc

    from lensaudit.mock.render import render_stamps

    rng = np.random.default_rng(int(n * 10))
    for r_half in (0.05, 0.15, 0.6):
        e, a = rng.uniform(0, 0.6), rng.uniform(0, np.pi)
        flux = np.array([3.0, 5.0, 8.0])
        spec = _spec(src_x=rng.uniform(-1, 1, 1), src_y=rng.uniform(-1, 1, 1), src_flux=flux[None], src_r_half=np.array([r_half]),
                     src_n=np.array([n]), src_e1=np.array([e * np.cos(2 * a)]), src_e2=np.array([e * np.sin(2 * a)]))
        size = 201
        q = (1 - e) / (1 + e)
        bn = 1.9992 * n - 0.3271
        inside = gammainc(2 * n, bn * ((size // 2 - 8) * 0.262 * np.sqrt(q) / r_half) ** (1 / n))
        img = render_stamps([spec], CFG, size=size, noise=False)[0]
        got = img.astype(np.float64).sum(axis=(1, 2))
        assert np.all(np.abs(got / (flux * inside) - 1) < 0.01), (n, r_half, e, got / flux, inside)


def test_points_and_psf_keep_the_flux_and_the_mock_frame():
    from lensaudit.mock.render import render_stamps

    # a point 2" east (x > 0) lands left of the centre (east left), 1" north above it (rows = north)
    spec = _spec(point_x=np.array([2.0]), point_y=np.array([1.0]), point_flux=np.array([[1.0, 2.0, 4.0]]))
    img = render_stamps([spec], CFG, noise=False)[0]
    assert np.allclose(img.sum(axis=(1, 2)), [1.0, 2.0, 4.0], rtol=1e-4)
    i, j = np.unravel_index(np.argmax(img[1]), img[1].shape)
    assert (i, j) == (50 + round(1 / 0.262), 50 - round(2 / 0.262))


def test_lensed_arcs_match_lenstronomy(sweep):
    """The arcs of true lenses from the injection renderer equal lenstronomy's (the
    reference path, evaluated at 16 x 16 sub-pixels here, as sources of R_e ~0.1" need)
    within 1 % of the flux per band and 2 % of the peak per pixel: same lens, same source,
    same mock frame (east left)."""
    from lensaudit.mock.reference import lens_arc_lenstronomy
    from lensaudit.mock.render import arc_parameters, render_arc

    d, name, rows, truth = sweep
    lenses = truth[(truth.role == "lens") & (truth.is_true_lens == True)]  # noqa: E712
    assert len(lenses) >= 3
    for t in lenses.sort_values("galaxy_id").head(3).itertuples(index=False):
        target = rows[rows.galaxy_id == t.galaxy_id].iloc[0]
        ours = render_arc(arc_parameters(target.shape_e1, target.shape_e2, t)).numpy()
        ref = lens_arc_lenstronomy(target, t, 2 * 101, supersampling=8).reshape(3, 101, 2, 101, 2).sum(axis=(2, 4))
        flux_ref = ref.sum(axis=(1, 2))
        assert np.all(np.abs(ours.sum(axis=(1, 2)) / flux_ref - 1) < 0.01), (t.galaxy_id, ours.sum(axis=(1, 2)), flux_ref)
        assert np.abs(ours - ref).max() < 0.02 * ref.max(), t.galaxy_id


def test_noise_sigma_is_the_reference_model(sweep):
    """Noise = sky sigma from psfdepth and the sources' Poisson-like sigma of
    ``arc_poisson_sigma`` (the reference's ``add_arc_noise``) in quadrature: the residual
    of a stamp from its noise-free image in units of that sigma has unit spread, and the
    sky sigma of the reference renderer's stamp of the same object agrees."""
    from lensaudit.injection.psf import kernel_half_width, moffat_kernels
    from lensaudit.injection.realism import arc_poisson_sigma, sigma_pix_from_depth
    import torch

    d, name, rows, truth = sweep
    im = MockSweepImager(rows, truth, CFG)
    gal = rows[(rows.type == "DEV") & (rows.flux_r > 20) & np.isfinite(rows.ra)].iloc[0]
    noisy = im.stamps([gal.galaxy_id])[0].astype(np.float64)
    clean = im.stamps([gal.galaxy_id], noise=False)[0].astype(np.float64)
    fwhm = np.array([gal.psfsize_g, gal.psfsize_r, gal.psfsize_z])
    f = torch.as_tensor(fwhm)
    kern = moffat_kernels(f, torch.full_like(f, 3.5), 0.262, kernel_half_width(fwhm.max(), 0.262)).numpy()
    sky = sigma_pix_from_depth(np.array([gal.psfdepth_g, gal.psfdepth_r, gal.psfdepth_z]), kern)
    sigma = np.sqrt(sky[:, None, None] ** 2 + arc_poisson_sigma(clean, sky) ** 2)
    z = (noisy - clean) / sigma
    assert abs(np.nanstd(z) - 1) < 0.02 and abs(np.nanmean(z)) < 0.02
    assert (arc_poisson_sigma(clean, sky) > 0.5 * sky[:, None, None]).any()  # the source's own noise is exercised
    ref = im.stamp_reference(gal)
    border = np.ones((101, 101), bool)
    border[20:81, 20:81] = False
    for b in range(3):
        mad = lambda a: 1.4826 * np.nanmedian(np.abs(a - np.nanmedian(a)))  # noqa: E731
        assert abs(mad(ref[b][border]) / mad(noisy[b][border]) - 1) < 0.05


@pytest.mark.parametrize("kind", ["ring", "spiral", "blue_clumpy"])
def test_confuser_morphologies_are_the_reference_ones(kind):
    """Same random draws, same profile and flux fractions as the reference renderer, to
    float32 precision."""
    from types import SimpleNamespace

    from lensaudit.mock import reference
    from lensaudit.mock.render import _morphology

    ax = (np.arange(202) - 100.5) * 0.131
    x, y = np.meshgrid(-ax, ax)
    flux = np.array([1.0, 2.0, 3.0])
    ref = reference._morphology(kind, np.random.default_rng(5), x, y, SimpleNamespace(shape_r=1.3), flux)
    ref = ref.reshape(3, 101, 2, 101, 2).sum(axis=(2, 4))
    ours = _morphology(kind, np.random.default_rng(5), 1.3, flux, 101, 0.262).numpy()
    assert np.abs(ours - ref).max() < 1e-5 * ref.max()


def test_ring_box_equals_the_whole_grid_to_the_bit(monkeypatch):
    """The ring is evaluated only within RING_ZERO_SIGMAS widths of its radius: the binned image
    equals the whole 2x grid's to the bit (float32 exp is +0 beyond 14.42 widths), for draws over
    the whole radius and width ranges, rings reaching past the stamp included; a box of 5
    widths (the planted fault) loses the faint wings."""
    import torch

    from lensaudit.mock import render
    from lensaudit.mock.render import _bin, _ring_binned

    def whole(xs, ys, r0, w):
        return _bin(torch.hypot(xs[None, :], ys[:, None]).sub_(r0).mul_(1 / w).square_().mul_(-0.5).exp_(), 2)

    for size in (101, 41):
        n_sub = 2 * size
        ax = (torch.arange(n_sub, dtype=torch.float32) - (n_sub - 1) / 2) * 0.131
        xs, ys = -ax, ax
        rng = np.random.default_rng(11)
        for r0, w in [(1.0, 0.2), (5.0, 0.5), (6.5, 0.5)] + [tuple(v) for v in rng.uniform([1.0, 0.2], [5.0, 0.5], (40, 2))]:
            assert torch.equal(_ring_binned(r0, w, xs, ys, size, 2), whole(xs, ys, r0, w)), (size, r0, w)
    monkeypatch.setattr(render, "RING_ZERO_SIGMAS", 5.0)
    assert not torch.equal(_ring_binned(1.0, 0.5, xs, ys, 41, 2), whole(xs, ys, 1.0, 0.5))


def test_stamp_convolution_reuses_its_buffers_to_the_bit():
    """``convolve_stamp`` with the buffers a batch keeps (kernels of several sizes, 3-band and
    shared unit images, float32 and float64, one after the other) gives the bytes of a call with
    none, and is scipy's 'same' convolution; ``noise_sigma`` from the batch's ``noise_terms`` is the
    per-stamp one to the bit."""
    import torch
    from scipy.signal import fftconvolve

    from lensaudit.injection.psf import kernel_half_width, moffat_kernels
    from lensaudit.mock.render import convolve_stamp, noise_sigma, noise_terms

    rng = np.random.default_rng(5)
    buffers: dict = {}
    sigma_sky = rng.uniform(0.002, 0.02, (12, 3))
    scale, var = noise_terms(sigma_sky)
    for k in range(12):
        fwhm = rng.uniform(0.8, 2.3, 3)
        f = torch.as_tensor(fwhm, dtype=torch.float32)[None]
        dtype = torch.float64 if k % 5 == 4 else torch.float32
        kern = moffat_kernels(f, torch.full_like(f, 3.5), 0.262, kernel_half_width(fwhm.max(), 0.262))[0].to(dtype)
        unit = k % 3 == 0
        img = torch.as_tensor(rng.normal(size=(1 if unit else 3, 101, 101)), dtype=dtype)
        flux = torch.as_tensor(rng.uniform(1, 5, 3), dtype=dtype) if unit else None
        got = convolve_stamp(img, kern, buffers, flux)
        assert torch.equal(got, convolve_stamp(img, kern, None, flux))
        for c in range(3):
            want = fftconvolve(img[0 if unit else c].double().numpy(), kern[c].double().numpy(), mode="same")
            want = want * (float(flux[c]) if unit else 1.0)
            assert np.abs(got[c].double().numpy() - want).max() < (1e-5 if dtype == torch.float32 else 1e-12) * np.abs(want).max()
        if dtype == torch.float32:
            out = torch.empty_like(got)
            assert torch.equal(noise_sigma(got, scale[k], var[k], out=out), noise_sigma(got, *noise_terms(sigma_sky[k])))
    assert len(buffers) >= 3  # shapes kept apart: kernel sizes, 3-band and unit images, dtypes
