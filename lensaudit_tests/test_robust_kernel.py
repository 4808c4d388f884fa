"""``detector.robust_kernel``: the one-pass Triton ``raw_robust`` gives the torch operations' values to
the bit, on stamps planted with every case the statistics treat specially (NaN and +-inf in the
annulus, odd and even finite counts, ties at the middle, a flat band, an empty band, clipped and
infinite pixels).  On the CPU the kernel runs in Triton's interpreter (a subprocess with
TRITON_INTERPRET=1); ``bench/check_robust_kernel.py`` runs the same ``_checks`` on a GPU against
torch's CUDA path (not yet run: bench/RESULTS.md, session 21)."""

import numpy as np
import pytest
import torch

from lensaudit_tests._triton_interpreter import interpreted_checks


def _cases(n: int = 16, size: int = 65, seed: int = 0) -> np.ndarray:
    """(n, 3, size, size) float32 stamps: noise around a sky level, each row planted differently."""
    from lensaudit.detector.preprocess import _annulus_mask

    rng = np.random.default_rng(seed)
    x = rng.normal(0.01, 0.02, (n, 3, size, size)).astype(np.float32)
    ann = np.flatnonzero(_annulus_mask(size))
    flat = x.reshape(n, 3, -1)
    x[0, 0, :, :4] = np.nan  # NaN in the annulus: the finite count changes parity with the next row
    x[1, 0, :, :3] = np.nan
    x[0, 1] = 0.5  # a flat band: MAD 0, degenerate
    x[1, 2] = np.nan  # no finite annulus value: degenerate
    flat[2, 0, ann[:7]] = [np.inf, -np.inf, np.inf, np.nan, np.inf, -np.inf, np.inf]
    x[3] = np.round(x[3] * 50) / 50  # many ties, the middle values among them
    x[4, 0, 32, 32] = 1e6  # clipped to +10
    x[4, 1, 30:33, 30:33] = -np.inf  # -inf in the crop: -10
    x[4, 2, 31, 31] = np.nan  # NaN in the crop: 0
    flat[5, 0, ann[:ann.size // 2 + 1]] = 0.25  # more than half the annulus one value: the upper middle is it
    flat[5, 1, ann[:ann.size // 2]] = 0.25  # exactly half: the upper middle is the next value above
    flat[5, 1, ann[ann.size // 2:]] = 0.75
    x[6, 0] = -0.0  # negative zeros
    flat[6, 0, ann[::2]] = 0.0
    x[7] *= np.float32(1e-40)  # subnormal values
    x[8, 2] = -x[8, 2]  # negative sky
    for r in range(9, n):  # random NaN fractions per band (a QC-passed stamp can keep up to 2 % centrally)
        for c in range(3):
            x[r, c][rng.random((size, size)) < rng.uniform(0, 0.3)] = np.nan
    return x


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal values (NaN where both are NaN), dtype and shape."""
    return a.dtype == b.dtype and a.shape == b.shape and bool(((a == b) | (a.isnan() & b.isnan())).all())


def _checks(device: str) -> dict:
    """The kernel against the torch operations on ``device`` (CUDA, or the CPU under Triton's interpreter)."""
    from lensaudit.detector import robust_kernel
    from lensaudit.detector.preprocess import CLIP, MAD_TO_SIGMA, _annulus_index, _annulus_mask, raw_robust

    out = {}
    big = _cases(10, size=101, seed=1)
    for name, x, crop in (("65px_crop64", _cases(), 64), ("101px_crop101", big, 101), ("101px_crop64", big, 64)):
        xt = torch.from_numpy(x).to(device)
        want, want_deg = raw_robust(xt, crop=crop, kernel=False)
        got, got_deg = raw_robust(xt, crop=crop, kernel=True)
        cl, cl_deg = raw_robust(xt, crop=crop, kernel=True, channels_last=True)
        out[name] = {"values": _same(got, want), "degenerate": bool(torch.equal(got_deg, want_deg)),
                     "channels_last_values": _same(cl, want) and bool(torch.equal(cl_deg, want_deg)),
                     "channels_last_layout": cl.is_contiguous(memory_format=torch.channels_last),
                     "degenerate_bands": int(want_deg.sum())}
    ann = _annulus_mask(65)
    finite = np.isfinite(_cases()[:, :, ann]).sum(axis=-1)
    out["finite_counts_odd_and_even"] = sorted({int(k) % 2 for k in finite[finite > 0].ravel()})
    # a planted fault is seen: the annulus one pixel off (a kernel indexing it wrong)
    xt = torch.from_numpy(_cases()).to(device)
    idx = _annulus_index(65, str(xt.device), torch.int32)
    off, _ = robust_kernel.raw_robust_kernel(xt, 64, idx + 1, MAD_TO_SIGMA, CLIP)
    out["planted_shifted_annulus_differs"] = not _same(off, raw_robust(xt, crop=64, kernel=False)[0])
    return out


def _interpreted_checks() -> dict:
    """Run inside a TRITON_INTERPRET=1 process."""
    from lensaudit.detector import robust_kernel

    with np.errstate(invalid="ignore"):  # the interpreter's numpy on an empty band's inf - inf (then masked)
        return {"usable": robust_kernel.usable(torch.zeros(1)), **_checks("cpu")}


@pytest.fixture(scope="module")
def interpreted():
    return interpreted_checks("lensaudit_tests.test_robust_kernel")


def test_raw_robust_kernel_equals_the_torch_operations_to_the_bit(interpreted):
    assert interpreted["usable"]
    for name in ("65px_crop64", "101px_crop101", "101px_crop64"):
        assert interpreted[name]["values"] and interpreted[name]["degenerate"], (name, interpreted[name])
        assert interpreted[name]["channels_last_values"] and interpreted[name]["channels_last_layout"]
    # the flat band, the empty one, the band with more than half its annulus one value (MAD 0), the zeros
    assert interpreted["65px_crop64"]["degenerate_bands"] == 4
    assert interpreted["finite_counts_odd_and_even"] == [0, 1]  # both median rules exercised


def test_raw_robust_kernel_comparison_sees_a_planted_fault(interpreted):
    assert interpreted["planted_shifted_annulus_differs"]


def test_raw_robust_kernel_is_not_used_on_the_cpu_without_the_interpreter(monkeypatch):
    from lensaudit.detector.preprocess import raw_robust

    monkeypatch.setenv("TRITON_INTERPRET", "0")
    x = torch.from_numpy(_cases()[:2])
    with pytest.raises(RuntimeError, match="needs a CUDA tensor"):
        raw_robust(x, crop=64, kernel=True)
    y, deg = raw_robust(x, crop=64)  # the default on the CPU: the torch operations
    assert y.shape == (2, 3, 64, 64) and deg.tolist()[0] == [False, True, False]
    y_cl, _ = raw_robust(x, crop=64, channels_last=True)
    assert y_cl.is_contiguous(memory_format=torch.channels_last) and torch.equal(y_cl, y)


def test_the_kernel_is_the_default_on_cuda_only_where_triton_is_installed(monkeypatch):
    """By default CUDA tensors take the kernel (``KERNEL_ON_CUDA``) when Triton can be imported, else the
    torch operations (the same values); CPU tensors never; an explicit choice stands."""
    from types import SimpleNamespace

    from lensaudit.detector import preprocess

    cuda, cpu = SimpleNamespace(is_cuda=True), SimpleNamespace(is_cuda=False)
    monkeypatch.setattr(preprocess, "_triton_available", lambda: True)
    assert preprocess._use_kernel(cuda, None) and not preprocess._use_kernel(cpu, None)
    monkeypatch.setattr(preprocess, "_triton_available", lambda: False)
    assert not preprocess._use_kernel(cuda, None)
    assert preprocess._use_kernel(cuda, True) and preprocess._use_kernel(cpu, True) and not preprocess._use_kernel(cuda, False)
    monkeypatch.setattr(preprocess, "_triton_available", lambda: True)
    monkeypatch.setattr(preprocess, "KERNEL_ON_CUDA", False)
    assert not preprocess._use_kernel(cuda, None)


def test_raw_robust_kernel_compiles_for_an_h100_with_ieee_rounding():
    """The interpreter runs the kernel as numpy and would not see a kernel that fails to compile; Triton's own
    compiler (its bundled ptxas, no GPU needed) builds it for sm_90 (H100 / H200), and the PTX divides with the
    IEEE quotient, as the bit-equality needs (with Triton's ``/`` the PTX has no ``div.rn.f32``: checked when
    this test was written)."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from lensaudit.detector.robust_kernel import raw_robust_kernel_

    sig = {"x_ptr": "*fp32", "ann_ptr": "*i32", "out_ptr": "*fp32", "deg_ptr": "*i8", **dict.fromkeys(
        ("HW", "W", "NA", "OFF", "CROP", "s_n", "s_c", "s_h", "s_w"), "i32"), "mad_to_sigma": "fp32", "clip": "fp32",
        **dict.fromkeys(("C", "BLOCK_A", "BLOCK"), "constexpr")}
    src = ASTSource(fn=raw_robust_kernel_, signature=sig, constexprs={"C": 3, "BLOCK_A": 2048, "BLOCK": 1024})
    built = triton.compile(src, target=GPUTarget("cuda", 90, 32), options={"enable_fp_fusion": False})
    ptx = built.asm["ptx"]
    assert built.asm["cubin"] and "div.rn.f32" in ptx
