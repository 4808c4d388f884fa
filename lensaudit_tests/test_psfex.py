"""Real PSFEx PSFs (DR9 DECam, vendored in data/real): evaluation against the fixtures' own values,
resampling to the coadd, the renderer's pixel-kernel option and the selection's psf_model "psfex"."""

import numpy as np
import pandas as pd
import pytest
import torch
from astropy.io import fits
from astropy.table import Table

from lensaudit.survey import psfex as P
from lensaudit.survey.instrument import DECAM_CCD_PIXSCALE_ARCSEC, PIXSCALE_ARCSEC

from conftest import REAL_DATA

CCDS = REAL_DATA / "dr9_decam_ccd_psfex_legacypipe_testcase3" / "survey-ccds-1.fits.gz"


def _ccd_models():
    """[(survey-ccds row, its PSFEx model)] for the 8 testcase3 CCDs (matched by expnum and CCD name)."""
    models = {(m.expnum, m.ccdname): m for m in map(P.read_psfex, P.default_models())}
    return [(r, models[(int(r["expnum"]), str(r["ccdname"]).strip())]) for r in Table.read(CCDS)]


def test_every_vendored_model_is_read():
    models = [P.read_psfex(p) for p in P.default_models()]
    assert len(models) == 11
    assert sorted(m.band for m in models) == sorted("gggg" "rrr" "zzzz")
    for m in models:
        assert m.basis.shape == (6, 63, 63) and m.degree == 2 and m.samp == 1.0


def _psfnorm_errors(terms=None, offset=0.0):
    """Relative error of sqrt(sum P^2) of the unit-sum model at the CCD image centre (W//2, H//2),
    legacypipe's psfnorm position, against the survey-ccds ``psfnorm`` of each CCD."""
    errs = []
    for r, m in _ccd_models():
        x, y = int(r["width"]) // 2 + offset, int(r["height"]) // 2 + offset
        if terms is None:
            img = P.evaluate_native(m, x, y)
        else:
            dx, dy = (x - m.zero[0]) / m.scale[0], (y - m.zero[1]) / m.scale[1]
            img = np.tensordot(terms(dx, dy, m.degree), m.basis, axes=(0, 0))
        img = img / img.sum()
        errs.append(float(np.sqrt((img ** 2).sum())) / float(r["psfnorm"]) - 1)
    return np.abs(errs)


def _graded_terms(dx, dy, degree):
    """A planted wrong basis order: by total degree (1, x, y, x^2, x y, y^2), not PSFEx's."""
    return np.array([dx ** i * dy ** (d - i) for d in range(degree + 1) for i in range(d, -1, -1)])


def test_survey_ccds_psfnorm_is_reproduced_and_pins_order_and_pixel_origin():
    """legacypipe wrote each CCD's psfnorm from this very model: the order and the 0-based
    position reproduce it to 1e-6 (float32 precision); a wrong order or the 1-based origin do not."""
    assert len(_psfnorm_errors()) == 8
    assert _psfnorm_errors().max() < 1e-6
    assert _psfnorm_errors(terms=_graded_terms).min() > 1e-4        # planted: every CCD fails
    assert _psfnorm_errors(offset=1.0).max() > 5e-6                 # the 1-based origin is visibly off


def test_evaluation_at_polzero_is_the_constant_basis_image():
    for p in P.default_models():
        m = P.read_psfex(p)
        assert np.array_equal(P.evaluate_native(m, *m.zero), m.basis[0])
        assert not np.array_equal(P.evaluate_native(m, m.zero[0] + 300.0, m.zero[1]), m.basis[0])


def test_coadd_kernels_are_odd_unit_sum_and_centred():
    for p in P.default_models():
        m = P.read_psfex(p)
        for x, y in (m.zero, P.model_position(m, "h1:g:0")):
            k = P.psf_at(m, x, y)
            assert k.shape[0] == k.shape[1] and k.shape[0] % 2 == 1
            assert k.sum() == pytest.approx(1.0, abs=1e-12)
            assert np.abs(P.first_moments(k)).max() < 1e-3
        assert P.psf_at(m, *m.zero, half_width=10).shape == (21, 21)


def test_fwhm_agrees_with_the_ccds_fwhm_and_is_below_psfexs_star_median():
    """The coadd kernel's half-maximum FWHM [arcsec] against each CCD's survey-ccds ``fwhm``
    (x its CD-matrix pixel scale): within 8 % for all 8 CCDs (measured 0.925-0.996, median 0.95).
    PSF_FWHM is not a model measurement (PSFEx's median SExtractor FWHM_IMAGE of its PSF stars,
    ``psf->fwhm = set->fwhm``) and reads 1.18-1.42x the model's on these files: a loose band
    that still catches a wrong pixel scale."""
    ratios = []
    for r, m in _ccd_models():
        cd = P.ccd_cd_matrix(r)
        scale = P.ccd_pixscale_arcsec(cd)
        assert scale == pytest.approx(DECAM_CCD_PIXSCALE_ARCSEC, rel=0.01)
        k = P.psf_at(m, int(r["width"]) // 2, int(r["height"]) // 2, ccd_cd=cd)
        ratios.append(P.halfmax_fwhm_pix(k) * PIXSCALE_ARCSEC / (float(r["fwhm"]) * scale))
        # planted: the kernel resampled to twice the coadd pixel scale reads a wrong FWHM
        bad = P.psf_at(m, int(r["width"]) // 2, int(r["height"]) // 2, ccd_cd=cd, pixscale_arcsec=2 * PIXSCALE_ARCSEC)
        assert abs(P.halfmax_fwhm_pix(bad) * PIXSCALE_ARCSEC / (float(r["fwhm"]) * scale) - 1) > 0.08
    assert np.abs(np.array(ratios) - 1).max() < 0.08
    for p in P.default_models():
        m = P.read_psfex(p)
        fwhm = P.halfmax_fwhm_pix(P.psf_at(m, *m.zero))  # coadd pixels
        assert 1.1 < m.fwhm_pix * DECAM_CCD_PIXSCALE_ARCSEC / (fwhm * PIXSCALE_ARCSEC) < 1.45, m.name


def _gaussian_model(sx, sy):
    y, x = np.mgrid[:63, :63] - 31.0
    basis = np.zeros((6, 63, 63))
    basis[0] = np.exp(-0.5 * (x ** 2 / sx ** 2 + y ** 2 / sy ** 2))
    return P.PsfexModel(path="synthetic-psfex.fits", basis=basis, degree=2, zero=(0.0, 0.0), scale=(1000.0, 2000.0),
                        samp=1.0, fwhm_pix=float("nan"), band="r", expnum=None, ccdname=None)


def _second_moments(k):
    h = k.shape[0] // 2
    o = np.arange(-h, h + 1)
    return float((k.sum(axis=0) * o ** 2).sum()), float((k.sum(axis=1) * o ** 2).sum())


def test_the_ccd_orientation_is_carried_to_the_coadd():
    """A PSF elongated along CCD x appears along coadd rows (north) through a DECam CD matrix whose
    CCD x runs along Dec (cd2_1 != 0, as on the vendored rows); without a CD matrix it stays along x."""
    m = _gaussian_model(3.0, 1.5)
    ixx, iyy = _second_moments(P.psf_at(m, 0.0, 0.0))
    assert ixx > 3 * iyy
    cd = np.array([[0.0, 7.2862e-05], [-7.2862e-05, 0.0]])
    ixx, iyy = _second_moments(P.psf_at(m, 0.0, 0.0, ccd_cd=cd))
    assert iyy > 3 * ixx
    # a sampling step of 2 CCD pixels per PSF pixel doubles the size in coadd pixels
    m2 = P.PsfexModel(**{**m.__dict__, "samp": 2.0})
    assert _second_moments(P.psf_at(m2, 0.0, 0.0))[0] == pytest.approx(4 * _second_moments(P.psf_at(m, 0.0, 0.0))[0],
                                                                     rel=0.02)


def _write_psfex(path, drop=(), rows=1):
    """A copy of a vendored merged PSFEx file without columns ``drop`` (or with ``rows`` rows)."""
    src = P.default_models()[0]
    with fits.open(src) as h:
        t = Table(h[1].data)
    t.remove_columns([c for c in t.colnames if c in drop])
    if rows != 1:
        from astropy.table import vstack
        t = vstack([t] * rows)
    t.write(path, format="fits", overwrite=True)
    return path


def test_files_that_are_not_psfex_give_clear_errors(tmp_path):
    with pytest.raises(P.PsfexFormatError, match="no PSF_MASK column"):
        P.read_psfex(CCDS)
    with pytest.raises(P.PsfexFormatError, match="missing POLZERO1, POLSCAL2"):
        P.read_psfex(_write_psfex(tmp_path / "a.fits", drop=("polzero1", "polscal2")))
    with pytest.raises(P.PsfexFormatError, match="name the CCD"):
        P.read_psfex(_write_psfex(tmp_path / "b.fits", rows=2))
    fits.PrimaryHDU(np.zeros((4, 4))).writeto(tmp_path / "img.fits")
    with pytest.raises(P.PsfexFormatError, match="not a binary table"):
        P.read_psfex(tmp_path / "img.fits")
    (tmp_path / "t.fits").write_text("not fits")
    with pytest.raises(P.PsfexFormatError):
        P.read_psfex(tmp_path / "t.fits")
    m = P.read_psfex(_write_psfex(tmp_path / "c.fits", drop=()))
    assert m.band is None  # no band in the name "c.fits" nor in the table


def test_a_file_psfex_wrote_itself_reads_like_legacypipes_merged_copy(tmp_path):
    """PSFEx's own layout: a PSF_MASK column, the metadata as header keywords (PSFEx's names)."""
    src = P.default_models()[0]
    merged = P.read_psfex(src)
    with fits.open(src) as h:
        d = h[1].data
        hdr = fits.Header()
        for k in ("polnaxis", "polgrp1", "polgrp2", "polname1", "polname2", "polzero1", "polzero2", "polscal1",
                  "polscal2", "polngrp", "poldeg1", "psf_fwhm", "psf_samp", "psfnaxis", "psfaxis1", "psfaxis2",
                  "psfaxis3"):
            v = d[k][0]
            hdr[k.upper()] = v.item() if hasattr(v, "item") else str(v)
        mask = d["psf_mask"]
    col = fits.Column(name="PSF_MASK", format=f"{mask[0].size}E", dim="(63,63,6)", array=mask)
    fits.BinTableHDU.from_columns([col], header=hdr).writeto(tmp_path / "c4d_x_ooi_r_ls9-psfex.fits")
    native = P.read_psfex(tmp_path / "c4d_x_ooi_r_ls9-psfex.fits")
    assert np.array_equal(native.basis, merged.basis) and native.zero == merged.zero and native.scale == merged.scale
    assert native.degree == 2 and native.band == "r" and native.fwhm_pix == pytest.approx(merged.fwhm_pix)


def test_the_coadd_orientation_is_the_real_coadds():
    """COADD_CD_SIGN is the sign pattern of the vendored DR6 coadd's CD matrix (east left, north up)."""
    h = fits.getheader(REAL_DATA / "dr6_coadd_brick_0959p805" / "legacysurvey-0959p805-image-g.fits.fz", 1)
    cd = np.array([[h["CD1_1"], h["CD1_2"]], [h["CD2_1"], h["CD2_2"]]])
    assert np.allclose(cd, P.coadd_cd_matrix(), rtol=1e-6, atol=0)


# --- the renderer's pixel kernels ------------------------------------------------------------------

def _row(**kw):
    """An injection row (test_injection.row's values)."""
    base = dict(theta_e_arcsec=1.5, e1=0.1, e2=-0.05, gamma1=0.03, gamma2=0.01, center_x_arcsec=0.05,
                center_y_arcsec=-0.1, src_x_arcsec=0.1, src_y_arcsec=0.05, src_r_sersic_arcsec=0.2, src_n_sersic=1.0,
                src_e1=0.1, src_e2=0.0, src_mag_g=23.0, src_mag_r=22.5, src_mag_z=22.0, psf_fwhm_g_arcsec=1.3,
                psf_fwhm_r_arcsec=1.2, psf_fwhm_z_arcsec=1.1, moffat_beta=3.5, supersample=4)
    return {**base, **kw}


def test_moffat_kernels_passed_as_pixels_give_the_moffat_path():
    from lensaudit.injection.params import validate_rows
    from lensaudit.injection.psf import kernel_half_width, moffat_kernels
    from lensaudit.injection.render import render_arcs

    rows = [_row(), _row(theta_e_arcsec=2.2, psf_fwhm_g_arcsec=1.7, moffat_beta=2.5)]
    cols = validate_rows(rows)
    for dtype in (torch.float64, torch.float32):
        ref = render_arcs(cols, dtype=dtype)
        fwhm = torch.tensor([[r[f"psf_fwhm_{b}_arcsec"] for b in "grz"] for r in rows], dtype=dtype)
        beta = torch.tensor([[r["moffat_beta"]] * 3 for r in rows], dtype=dtype)
        k = moffat_kernels(fwhm, beta, PIXSCALE_ARCSEC, kernel_half_width(float(fwhm.max()), PIXSCALE_ARCSEC))
        # the pixel path renormalises each kernel to unit sum: equal to the last bits of the float
        got = render_arcs(cols, dtype=dtype, psf_kernels=k).images
        tol = 1e-12 if dtype == torch.float64 else 1e-6
        assert torch.allclose(got, ref.images, rtol=tol, atol=tol * float(ref.images.abs().max()))
    with pytest.raises(ValueError, match="K odd"):
        render_arcs(cols, psf_kernels=torch.ones(2, 3, 4, 4) / 16)
    with pytest.raises(ValueError, match=r"\(3, K, K\) or \(2, 3, K, K\)"):
        render_arcs(cols, psf_kernels=torch.ones(3, 3, 5, 5) / 25)


def _psfex_kernels():
    ms = {m.band: m for m in map(P.read_psfex, P.default_models()) if m.expnum in (372546, 372547, 257266)}
    return np.stack([P.psf_at(ms[b], *P.model_position(ms[b], f"x:{b}")) for b in "grz"])


@pytest.mark.filterwarnings("ignore:Input PSF model has at least one negative element")
def test_a_psfex_kernel_conserves_flux_and_matches_lenstronomy_pixel_psf():
    from lensaudit.injection.params import validate_rows
    from lensaudit.injection.reference import lenstronomy_render
    from lensaudit.injection.render import render_arcs

    k = _psfex_kernels()
    unlensed = validate_rows([_row(theta_e_arcsec=1e-6, gamma1=0.0, gamma2=0.0, src_r_sersic_arcsec=0.3)])
    res = render_arcs(unlensed, psf_kernels=k[None])
    want = 10 ** (-0.4 * (np.array([23.0, 22.5, 22.0]) - 22.5))
    assert np.allclose(res.images[0].sum(dim=(1, 2)).numpy(), want, rtol=0.01)
    r = _row(theta_e_arcsec=1.2, e1=0.17, e2=0.05, gamma1=0.05, gamma2=-0.03, src_r_sersic_arcsec=0.15)
    ours = render_arcs(validate_rows([r]), psf_kernels=k[None]).images[0].numpy()
    ref = lenstronomy_render(dict(r, supersample=16), k)
    assert np.allclose(ours.sum(axis=(1, 2)), ref.sum(axis=(1, 2)), rtol=0.01)
    assert (np.abs(ours - ref).max(axis=(1, 2)) <= 0.01 * ref.max(axis=(1, 2))).all()
    moffat = render_arcs(validate_rows([r])).images[0].numpy()
    assert np.abs(ours - moffat).max() > 0.01 * moffat.max()  # the real PSF is not the Moffat one


# --- the selection function's psf_model "psfex" ----------------------------------------------------

class _MeanModel(torch.nn.Module):
    def forward(self, x):
        return x.mean(dim=(1, 2, 3))[:, None] * 10.0


def _hosts(n=6, seed=0):
    rng = np.random.default_rng(seed)
    stamps = torch.from_numpy(rng.normal(0, 0.002, (n, 3, 101, 101)).astype(np.float32))
    rows = pd.DataFrame({"galaxy_id": [f"h{i:03d}" for i in range(n)], "psfsize_g": np.linspace(1.0, 1.6, n),
                         "psfsize_r": 1.1, "psfsize_z": np.linspace(0.7, 1.0, n), "psfdepth_g": 2.5e4,
                         "psfdepth_r": 2.5e4, "psfdepth_z": 2.5e3, "ebv": 0.02})
    return stamps, rows


def _params(rows, seed=1):
    from lensaudit.selection.inject import draw_parameters

    plan = pd.DataFrame({"injection_id": [f"i{i}" for i in range(len(rows))], "galaxy_id": rows["galaxy_id"],
                         "theta_e_bin": np.arange(len(rows)) % 11})
    return draw_parameters(plan, rows, seed).reset_index(drop=True)


def test_psfex_option_on_a_tiny_in_memory_selection():
    from lensaudit.config import SelectionSettings
    from lensaudit.selection.psfex_psfs import PsfexPsfs, injection_psfs
    from lensaudit.selection.inject import inject_and_score, inject_batch

    assert SelectionSettings().psf_model == "moffat" and injection_psfs("moffat") is None
    with pytest.raises(ValueError, match="unknown psf_model 'gauss'"):
        injection_psfs("gauss")
    stamps, rows = _hosts()
    params = _params(rows)
    pos = np.arange(len(rows))
    model = _MeanModel().eval()
    moffat = inject_and_score(model, stamps, pos, params, rows, 64, "cpu", seed=3)
    assert moffat.equals(inject_and_score(model, stamps, pos, params, rows, 64, "cpu", seed=3, psf=None))
    psfs = injection_psfs("psfex", (), seed=5)
    a = inject_and_score(model, stamps, pos, params, rows, 64, "cpu", seed=3, psf=psfs)
    b = inject_and_score(model, stamps, pos, params, rows, 64, "cpu", seed=3, psf=PsfexPsfs(seed=5))
    assert a.equals(b)                                   # deterministic, not cached state
    assert not np.allclose(a["logit"], moffat["logit"])  # another PSF, another injection
    # per host and band: the nearest-FWHM model of that band, at a position set by (host, band, seed)
    k = psfs.kernels(rows)
    assert k.shape == (len(rows), 3, 2 * psfs.half_width + 1, 2 * psfs.half_width + 1)
    assert np.allclose(k.sum(axis=(-2, -1)), 1.0)
    assert np.array_equal(psfs.kernels(rows.iloc[::-1])[::-1], k)
    z = psfs.by_band["z"]
    i, x, y = psfs.choice("h000", "z", 0.5)
    assert i == z[int(np.argmin(psfs.fwhm_arcsec[z]))]
    assert (x, y) == psfs.choice("h000", "z", 0.5)[1:] != psfs.choice("h001", "z", 0.5)[1:]
    assert psfs.choice("h000", "z", 0.5)[1:] != PsfexPsfs(seed=6).choice("h000", "z", 0.5)[1:]
    # sigma_pix from the same kernels; the arc keeps the Moffat arc's flux (both unit-sum PSFs)
    gen = torch.Generator().manual_seed(0)
    inj = inject_batch(stamps, pos, params, rows, "cpu", gen, psf=psfs)
    sig, arc = inj.sigma_pix, inj.arc
    depth = rows[["psfdepth_g", "psfdepth_r", "psfdepth_z"]].to_numpy()
    assert np.allclose(sig.numpy(), np.sqrt((k ** 2).sum(axis=(-2, -1)) / depth), rtol=1e-6)
    arc_m = inject_batch(stamps, pos, params, rows, "cpu", torch.Generator().manual_seed(0)).arc
    assert np.allclose(arc.sum(dim=(2, 3)).numpy(), arc_m.sum(dim=(2, 3)).numpy(), rtol=0.02)


def test_a_model_set_missing_a_band_is_refused():
    from lensaudit.selection.psfex_psfs import PsfexPsfs

    only_g = [p for p in P.default_models() if P.read_psfex(p).band == "g"]
    with pytest.raises(ValueError, match=r"no PSFEx model for band\(s\) \['r', 'z'\]"):
        PsfexPsfs(only_g)
