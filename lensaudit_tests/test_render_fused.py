"""The fused Triton renderer (``render_arcs(fused=True)``) against the reference renderer, on the
CPU through Triton's interpreter (the same kernel code the GPU compiles; run in a subprocess,
since the interpreter must be chosen before triton is first imported), and pixelised PSFs."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from lensaudit.injection.psf import kernel_half_width, moffat_kernels
from lensaudit.injection.render import render_arcs
from lensaudit_tests._triton_interpreter import ROOT, interpreted_checks
from lensaudit_tests.test_injection import PARITY_ROWS, cols_of, row

import triton  # noqa: E402,F401 - torch's own dependency: a missing triton is an error, not a skip


def _diff(out, ref) -> list[float]:
    """[max |dpix| / peak, max |dflux| / flux] over stamps and bands."""
    o, r = out.images.double(), ref.images.double()
    dpix = float(((o - r).abs().amax(dim=(2, 3)) / r.amax(dim=(2, 3))).max())
    dflux = float((o.sum(dim=(2, 3)) / r.sum(dim=(2, 3)) - 1).abs().max())
    return [dpix, dflux]


def _moffat_of(rows):
    fwhm = torch.tensor([[r[f"psf_fwhm_{b}_arcsec"] for b in "grz"] for r in rows], dtype=torch.float64)
    h = kernel_half_width(float(fwhm.max()), 0.262)
    return moffat_kernels(fwhm, torch.full_like(fwhm, 3.5), 0.262, h), h


def _clumpy_cols():
    r = row(theta_e_arcsec=1.2, src_x_arcsec=0.2, src_r_sersic_arcsec=0.15)
    cols = cols_of([r, dict(r, src_n_sersic=3.0, e1=0.0, e2=0.0)])
    cols["clump_dx"] = np.array([[0.1, -0.1], [0.05, 0.0]])
    cols["clump_dy"] = np.array([[0.05, 0.1], [-0.1, 0.0]])
    cols["clump_sigma"] = np.array([[0.04, 0.05], [0.05, 0.05]])
    cols["clump_frac"] = np.array([[0.15, 0.1], [0.2, 0.0]])
    return cols


def _product_inputs(seed: int, cases):
    """Per (n, B) of ``cases``: (n, fwhm, beta, fi, flux) of B random stamps (rfft2 at n x n of 101² images)
    and their Moffat FWHM, beta and 3-band fluxes, drawn in that order from one seeded generator."""
    g = torch.Generator().manual_seed(seed)
    for n, B in cases:
        fwhm = 0.8 + torch.rand((B, 3), generator=g)
        beta = 2.5 + torch.rand((B, 3), generator=g)
        fi = torch.fft.rfft2(torch.rand((B, 101, 101), generator=g), s=(n, n))
        yield n, fwhm, beta, fi, torch.rand((B, 3), generator=g)


def _spectral_product_checks() -> list[bool]:
    """``fused.spectral_product`` (in the interpreter) against torch's products with the normalised,
    mirrored spectra (``psf.moffat_spectra``), at odd and even transform sizes: equal to the bit."""
    from lensaudit.injection.fused import spectral_product
    from lensaudit.injection.psf import moffat_half_spectra, moffat_spectra

    equal = []
    for n, fwhm, beta, fi, flux in _product_inputs(1, ((135, 4), (144, 4), (151, 4))):
        want = fi[:, None] * moffat_spectra(fwhm, beta, 0.262, 20, n, dtype=torch.float32) * flux[:, :, None, None]
        got = spectral_product(fi, moffat_half_spectra(fwhm, beta, 0.262, 20, n, dtype=torch.float32), flux)
        equal.append(bool(torch.equal(got, want)))
    return equal


INTERPRETER_PIXEL_LAYOUT = (1024, 32)  # (PIXEL_BLOCK, PIXEL_TILE_W): 4x fewer programs than the 64-pixel tiles


def _hermitian_full(x: torch.Tensor, n: int) -> torch.Tensor:
    """(..., n, n // 2 + 1) rfft2-layout spectra of real images -> (..., n, n): X(u, v) = conj X(-u, -v)."""
    U, V = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    low = V < n // 2 + 1
    f = x[..., torch.where(low, U, (n - U) % n), torch.where(low, V, n - V)]
    return torch.where(low, f, f.conj())


def _pair_product_checks() -> list[bool]:
    """``fused.spectral_product_pairs`` (in the interpreter) against ``spectral_product``'s spectra extended
    by Hermitian symmetry and packed by torch as X_2p + i X_2p+1 (odd batches: a zero last partner)."""
    from lensaudit.injection.fused import spectral_product, spectral_product_pairs
    from lensaudit.injection.psf import moffat_half_spectra

    equal = []
    for n, fwhm, beta, fi, flux in _product_inputs(2, ((135, 5), (144, 4), (151, 3))):
        half = moffat_half_spectra(fwhm, beta, 0.262, 20, n, dtype=torch.float32)
        x = _hermitian_full(spectral_product(fi, half, flux), n)
        x = torch.cat([x, torch.zeros_like(x[:len(fi) % 2])])  # an odd batch: a zero partner
        equal.append(bool(torch.equal(spectral_product_pairs(fi, half, flux), x[0::2] + 1j * x[1::2])))
    return equal


def _interpreted_checks() -> dict:
    """Run in the subprocess: each case's (dpix/peak, dflux/flux) of fused vs reference."""
    from lensaudit_tests.test_render_supersampling import _far_lens_rows

    from lensaudit.injection import fused as F

    out = {}
    # the pixel kernel's program layouts: the default tiles, runs of pixels in row order (the previous layout) and
    # large tiles give the same bytes (clumps, the inner mask and 178 cusp pixels on two 61-pixel stamps); the
    # checks below run with the large tiles, since the interpreter runs the programs one by one
    default, units = (F.PIXEL_BLOCK, F.PIXEL_TILE_W), {}
    for layout in (default, (256, 0), INTERPRETER_PIXEL_LAYOUT):
        F.PIXEL_BLOCK, F.PIXEL_TILE_W = layout
        units[layout] = render_arcs(_clumpy_cols(), npix=61, suppress_inner=True, fused=True)
    F.PIXEL_BLOCK, F.PIXEL_TILE_W = INTERPRETER_PIXEL_LAYOUT
    out["pixel_layouts_equal"] = [bool(torch.equal(units[lay].images, units[default].images))
                                  and bool(torch.equal(units[lay].unit_lensed, units[default].unit_lensed))
                                  for lay in ((256, 0), INTERPRETER_PIXEL_LAYOUT)]
    out["pixel_layout_default"] = list(default)
    cols = cols_of(PARITY_ROWS)
    ref, fused = render_arcs(cols), render_arcs(cols, fused=True)  # float64 reference
    now = fused
    out["parity_rows"] = _diff(fused, ref)
    out["parity_rows_mag"] = float((fused.magnification / ref.magnification - 1).abs().max())
    cols = cols_of(_far_lens_rows(4.0, 0.05))  # the cusp pixels go through the reference's refinement
    fused = render_arcs(cols, fused=True)
    out["cusp"] = _diff(fused, render_arcs(cols))
    out["cusp_mag"] = fused.magnification.tolist()
    from lensaudit.injection import cusp

    cusp.CELL_SUMS = "tree"  # the cells summed as subtrees, as on CUDA
    tree = render_arcs(cols, fused=True)
    cusp.CELL_SUMS = "auto"
    out["cusp_tree"] = _diff(tree, render_arcs(cols))
    out["cusp_tree_vs_sequential"] = _diff(tree, fused)
    for suppress in (False, True):
        cols = _clumpy_cols()
        out[f"clumps_suppress{suppress}"] = _diff(render_arcs(cols, npix=61, suppress_inner=suppress, fused=True),
                                                  render_arcs(cols, npix=61, suppress_inner=suppress))
    # the cusp cells' cap (CUSP_MAX_CELLS): reached, both renderers stop refining at the same level
    from lensaudit.injection import render as R

    cols = cols_of(_far_lens_rows(4.0, 0.05)[:1])
    F.CUSP_MAX_CELLS = R.CUSP_MAX_CELLS = 64
    capped = render_arcs(cols, fused=True)
    out["cusp_capped"] = _diff(capped, render_arcs(cols))
    out["cusp_capped_mag"] = capped.magnification.tolist()
    F.CUSP_MAX_CELLS = R.CUSP_MAX_CELLS = cusp.CUSP_MAX_CELLS
    # the one-pass PSF stage against the previous passes (normalised, mirrored spectra; torch's products)
    cols = cols_of(PARITY_ROWS)
    R.FUSED_SPECTRAL_PRODUCT = False
    before = render_arcs(cols, fused=True)
    R.FUSED_SPECTRAL_PRODUCT = True
    out["one_pass_vs_before"] = _diff(now, before)
    out["one_pass_units_equal"] = bool(torch.equal(now.unit_lensed, before.unit_lensed))
    out["spectral_product_equal"] = _spectral_product_checks()
    # the inverse transform per pair of stamps (c2c; render.FUSED_PACKED_INVERSE) against irfft2 per stamp (c2r),
    # an odd batch too
    packed_default = R.FUSED_PACKED_INVERSE
    for rows in (PARITY_ROWS, PARITY_ROWS[:3]):
        R.FUSED_PACKED_INVERSE = False
        c2r = render_arcs(cols_of(rows), fused=True)
        R.FUSED_PACKED_INVERSE = True
        # the parity rows' default render above is already the packed one while that is the default
        packed = now if rows is PARITY_ROWS and packed_default else render_arcs(cols_of(rows), fused=True)
        out[f"packed_vs_c2r_{len(rows)}"] = _diff(packed, c2r)
        out[f"packed_units_equal_{len(rows)}"] = bool(torch.equal(packed.unit_lensed, c2r.unit_lensed))
    R.FUSED_PACKED_INVERSE = packed_default
    out["pair_product_equal"] = _pair_product_checks()
    try:
        from lensaudit.injection.fused import render_unit_lensed_fused

        p = {k: torch.as_tensor(v, dtype=torch.float32) for k, v in cols_of([row()]).items()}
        render_unit_lensed_fused(p, 101, 4, 0.262, out=torch.zeros((1, 144, 144))[:, :100, :100])
        out["bad_out"] = "accepted"
    except ValueError as e:
        out["bad_out"] = str(e)
    rows = PARITY_ROWS[1:3]
    moffat, _ = _moffat_of(rows)
    out["pixelised_per_row"] = _diff(render_arcs(cols_of(rows), psf_kernels=moffat, fused=True), render_arcs(cols_of(rows)))
    shared = moffat[0].clone()
    shared[:, shared.shape[-1] // 2, shared.shape[-1] // 2 + 3] += 0.05
    out["pixelised_shared"] = _diff(render_arcs(cols_of(rows), psf_kernels=shared, fused=True),
                                    render_arcs(cols_of(rows), psf_kernels=shared))
    return out


@pytest.fixture(scope="module")
def interpreted():
    return interpreted_checks("lensaudit_tests.test_render_fused")


def test_fused_matches_the_reference_on_the_lenstronomy_parity_rows(interpreted):
    """The rows that test_parity_with_lenstronomy holds to 1 % of lenstronomy: the fused image
    is the reference's to float32 rounding (same algorithm), far inside 1 % flux / 1 % of peak."""
    dpix, dflux = interpreted["parity_rows"]
    assert dpix <= 0.01 and dflux <= 0.01
    assert dpix <= 1e-4 and dflux <= 1e-4 and interpreted["parity_rows_mag"] <= 1e-4


def test_fused_keeps_cuspy_cores_clumps_and_the_inner_mask(interpreted):
    assert max(interpreted["cusp"]) <= 1e-4
    assert np.allclose(interpreted["cusp_mag"], 1 + 1e-3 / 2.4, rtol=0.01)  # n = 4, R_e = 0.05": flux kept
    # the CUDA path's subtree sums: the same parity, and the sequential sums' images to float32 rounding
    assert max(interpreted["cusp_tree"]) <= 1e-4 and max(interpreted["cusp_tree_vs_sequential"]) <= 1e-6
    assert max(interpreted["clumps_suppressFalse"]) <= 1e-4
    assert max(interpreted["clumps_suppressTrue"]) <= 1e-4


def test_fused_cusp_cap_stops_both_renderers_alike(interpreted):
    """With CUSP_MAX_CELLS reached, the fused renderer's level kernel stops where the reference does
    (every cell of that level counted): the same images, and not the uncapped ones."""
    assert max(interpreted["cusp_capped"]) <= 1e-4
    assert not np.allclose(interpreted["cusp_capped_mag"], interpreted["cusp_mag"][:1], rtol=1e-3)


def test_fused_pixel_kernel_layouts_give_the_same_bytes(interpreted):
    """The pixel kernel's programs as tiles (the default) or as runs of pixels in row order (the
    previous layout), and tiles of another shape: every pixel's arithmetic is the same, so the images are."""
    assert interpreted["pixel_layout_default"][1] > 0  # the default is a tile layout, checked against runs
    assert interpreted["pixel_layouts_equal"] == [True, True]


def test_fused_psf_stage_in_one_pass(interpreted):
    """The one-pass PSF stage (unit image in the padded buffer, ``spectral_product``, irfft2's scaling
    folded into the fluxes) = the previous passes to float32 rounding; the product itself to the bit."""
    assert interpreted["one_pass_units_equal"]
    assert max(interpreted["one_pass_vs_before"]) <= 1e-6
    assert all(interpreted["spectral_product_equal"]) and len(interpreted["spectral_product_equal"]) == 3
    assert "unit column stride" in interpreted["bad_out"]


def test_fused_inverse_transform_in_pairs(interpreted):
    """The inverse transform as one complex transform per pair of stamps (``spectral_product_pairs``,
    stamp 2p + i stamp 2p + 1; ``render.FUSED_PACKED_INVERSE``) = irfft2 per stamp to float32 rounding, even
    and odd batches, the unit images untouched; the packed spectra = torch's Hermitian extension of
    ``spectral_product``'s to the bit."""
    for b in (6, 3):
        assert max(interpreted[f"packed_vs_c2r_{b}"]) <= 1e-6
        assert interpreted[f"packed_units_equal_{b}"]
    assert interpreted["pair_product_equal"] == [True, True, True]


@pytest.mark.parametrize("b", [4, 5, 1])
def test_unpack_pairs_puts_each_stamp_back(b):
    """``unpack_pairs``: the real part of pair p is stamp 2p, the imaginary part stamp 2p + 1 (an odd
    batch's last pair has no partner), each cut to the window [lo, lo + N)."""
    from lensaudit.injection.fused import unpack_pairs

    g = torch.Generator().manual_seed(b)
    imgs = torch.rand((b + b % 2, 3, 20, 20), generator=g, dtype=torch.float64)
    packed = imgs[0::2] + 1j * imgs[1::2]
    dest = torch.empty((b, 3, 12, 12), dtype=torch.float64)
    unpack_pairs(packed, 5, dest)
    assert torch.equal(dest, imgs[:b, :, 5:17, 5:17])


@pytest.mark.parametrize("product", ["spectral_product", "spectral_product_pairs"])
def test_spectral_product_refuses_mismatched_shapes(product):
    from lensaudit.injection import fused

    fn = getattr(fused, product)
    fi = torch.zeros((2, 144, 73), dtype=torch.complex64)
    with pytest.raises(ValueError, match="do not match"):
        fn(fi, torch.zeros((2, 3, 144, 73)), torch.zeros((2, 3)))
    with pytest.raises(ValueError, match="do not match"):
        fn(fi, torch.zeros((2, 3, 73, 73)), torch.zeros((3, 2)))


def test_fused_pixelised_psfs(interpreted):
    assert max(interpreted["pixelised_per_row"]) <= 1e-4  # the Moffat kernels as pixels = the Moffat images
    assert max(interpreted["pixelised_shared"]) <= 1e-4


def test_fused_without_cuda_or_interpreter_is_a_clear_error():
    """In a subprocess with no visible CUDA device and no interpreter (also on a GPU machine)."""
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", TRITON_INTERPRET="0",
               PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    code = ("import triton, sys\nfrom lensaudit.injection.render import render_arcs\n"
            "from lensaudit_tests.test_injection import cols_of, row\n"
            "try:\n    render_arcs(cols_of([row()]), fused=True)\nexcept ValueError as e:\n    print(e); sys.exit(3)\n")
    r = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 3 and "needs a CUDA device" in r.stdout, (r.stdout, r.stderr[-2000:])


def test_pixelised_psf_reference_path():
    rows = PARITY_ROWS[1:3]
    cols = cols_of(rows)
    moffat, h = _moffat_of(rows)
    ref = render_arcs(cols)
    # the Moffat kernels handed over as pixels (scaled: normalised inside) give the Moffat images
    assert max(_diff(render_arcs(cols, psf_kernels=moffat * 3.0), ref)) <= 1e-12
    # one shared pixelised PSF per band: exactly scipy's 'same' convolution of the unit image, times the flux
    from scipy.signal import fftconvolve

    shared = moffat[0].clone()
    shared[:, h, h + 3] += 0.05  # an asymmetric feature
    out = render_arcs(cols, psf_kernels=shared)
    shared = shared / shared.sum(dim=(1, 2), keepdim=True)
    for i in range(2):
        flux = 10 ** (-0.4 * (np.array([rows[i][f"src_mag_{b}"] for b in "grz"]) - 22.5))
        for c in range(3):
            want = fftconvolve(out.unit_lensed[i].numpy(), shared[c].numpy(), mode="same") * flux[c]
            assert np.allclose(out.images[i, c].numpy(), want, atol=1e-12 * want.max())


@pytest.mark.parametrize("kern,msg", [(np.ones((3, 4, 4)), "K odd"), (np.ones((2, 5, 5)), "(3, K, K)"),
                                      (np.zeros((3, 5, 5)), "positive sum"), (np.ones((3, 103, 103)), "exceeds")])
def test_bad_pixelised_psf_is_a_clear_error(kern, msg):
    with pytest.raises(ValueError, match=msg.replace("(", r"\(").replace(")", r"\)")):
        render_arcs(cols_of([row()]), psf_kernels=kern)


def test_moffat_spectra_equal_the_fft_of_the_centred_kernels():
    """The fused renderer's Moffat spectra (``psf.moffat_spectra``, cosine products of the kernel's
    quadrant, no FFT) are the rfft2 of the centred unit-sum kernels, and the 'same' convolution
    through them equals ``convolve_same``; random FWHMs and betas, odd and even transform sizes."""
    from lensaudit.injection.psf import convolve_same, fast_fft_size, moffat_spectra

    g = torch.Generator().manual_seed(4)
    fwhm = 0.8 + 1.2 * torch.rand((5, 3), generator=g, dtype=torch.float64)
    beta = 2.0 + 3.0 * torch.rand((5, 3), generator=g, dtype=torch.float64)
    h = kernel_half_width(float(fwhm.max()), 0.262)
    k = moffat_kernels(fwhm, beta, 0.262, h)
    img = torch.rand((5, 101, 101), generator=g, dtype=torch.float64)
    for n in (fast_fft_size(101 + h), 144, 151):
        pad = torch.zeros((5, 3, n, n), dtype=torch.float64)
        pad[..., :2 * h + 1, :2 * h + 1] = k
        ref = torch.fft.rfft2(torch.roll(pad, (-h, -h), dims=(-2, -1)))
        spec = moffat_spectra(fwhm, beta, 0.262, h, n)
        assert spec.shape == ref.shape and float(ref.imag.abs().max()) < 1e-14
        assert float((spec - ref.real).abs().max()) < 1e-13
        out = torch.fft.irfft2(torch.fft.rfft2(img, s=(n, n))[:, None] * spec, s=(n, n))[..., :101, :101]
        same = convolve_same(img[:, None], k)
        assert float((out - same).abs().max() / same.abs().max()) < 1e-12


def test_fused_kernels_compile_for_a_gpu():
    """The interpreter runs the kernels' Python on the CPU; this compiles them as the GPU would (Triton
    to PTX to an sm_90 cubin with the ptxas that Triton ships), so a kernel the interpreter accepts and
    the compiler does not fails here, not on the first GPU."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from lensaudit.injection import fused as F

    def sig(fn, **types):
        """Every argument a float32 pointer unless given; constexpr values as keyword ints/bools."""
        const = {k: v for k, v in types.items() if not isinstance(v, str)}
        return fn, {a: "constexpr" if a in const else types.get(a, "*fp32") for a in fn.arg_names}, const

    i64, i8, f32, i32 = "*i64", "*i8", "fp32", "i32"
    common = dict(NCOL_=F.NCOL, N_CLUMPS=2, NC_ALLOC=2, SUPPRESS=True)
    cases = [
        sig(F._centre_kernel, N=i32, c=f32, pixscale=f32, NCOL_=F.NCOL, BLOCK_=F.BLOCK),
        sig(F._pixel_kernel, N=i32, c=f32, pixscale=f32, area=f32, cusp_near=f32, IMG_B=i32, IMG_R=i32, SS=4,
            BLOCK_=F.PIXEL_BLOCK, TILE_W=F.PIXEL_TILE_W, **common),
        sig(F._pixel_kernel, N=i32, c=f32, pixscale=f32, area=f32, cusp_near=f32, IMG_B=i32, IMG_R=i32, SS=4,
            BLOCK_=256, TILE_W=0, **common),
        sig(F._cell_kernel, sidx_ptr=i64, ref_ptr=i8, n=i32, cusp_near=f32, BLOCK_=1024, **common),
        sig(F._child_kernel, pown_ptr=i64, idx_ptr=i64, bidx_ptr=i64, own_ptr=i64, ref_ptr=i8, n=i32, hh=f32, w=f32,
            cusp_near=f32, allow=i32, KK=4, USE_IDX=True, BLOCK_=1024, **common),
        sig(F._spectral_product_kernel, n=i32, m=i32, nh=i32, C=3, BLOCK_=1024),
        sig(F._pair_product_kernel, B=i32, n=i32, m=i32, nh=i32, C=3, BLOCK_=1024),
    ]
    for fn, signature, const in cases:
        k = triton.compile(ASTSource(fn=fn, signature=signature, constexprs=const), target=GPUTarget("cuda", 90, 32))
        assert len(k.asm["cubin"]) > 0, fn.__name__
