"""``selection.fused_add``: the one-pass GPU adding of arc, noise and host gives the torch path's
values to the bit.  On the CPU the kernel runs in Triton's interpreter (a subprocess with
TRITON_INTERPRET=1) and the reference is the torch path with CUDA's correctly rounded float32
square root (``_sqrt_rn``; torch's own CPU sqrt is not); the GPU run of the comparison against
torch's CUDA path itself is bench/check_fused_add.py (results in bench/RESULTS.md)."""

import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

from lensaudit_tests._triton_interpreter import interpreted_checks


def _inputs(n=5, hosts=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randn((n, 3, 21, 21), generator=g) * 0.3  # negative pixels too (FFT ringing)
    images[0, 1, 3, 4] = float("nan")
    images[1, 0, :2] = 0.0
    images[1, 0, 2, :3] = -0.0
    trans = 0.7 + 0.3 * torch.rand((n, 3), generator=g)
    sig = 0.01 + 0.05 * torch.rand((n, 3), generator=g)
    host_stamps = torch.randn((hosts, 3, 21, 21), generator=g) * 0.02
    pos = torch.tensor([3, 0, 3, 1, 2][:n])
    sigma_host = (0.01 + 0.05 * torch.rand((n, 3), generator=g)).double()
    sigma_host[2, 2] = 0.0  # a host without measured noise: 0 / 0 and x / 0 as in torch
    return images, trans, sig, host_stamps, pos, sigma_host


def _sqrt_rn(x: torch.Tensor) -> torch.Tensor:
    """The correctly rounded float32 square root, as torch computes it on CUDA (``sqrtf`` without
    fast math); torch's vectorised CPU sqrt is off by one ulp on ~0.6 % of values (AVX-512), so the
    CPU reference takes the float64 root rounded once to float32 (exact for sqrt)."""
    return torch.sqrt(x.double()).float() if x.dtype == torch.float32 else torch.sqrt(x)


def _arc_noise_rn(arc, sigma, gen):
    """``inject.arc_noise`` with the CUDA square root (``_sqrt_rn``): the same operations in the same order."""
    from lensaudit.selection.inject import arc_noise_factor

    sd = _sqrt_rn(arc.clamp(min=0) * arc_noise_factor(sigma, arc.dtype)[:, :, None, None])
    return torch.randn(arc.shape, generator=gen, device=arc.device, dtype=arc.dtype) * sd


def _torch_path(images, trans, sig, host_stamps, pos, sigma_host, null, seed):
    from lensaudit.injection.visibility import matched_energy
    from lensaudit.selection.inject import added_rms

    arc = images * trans[:, :, None, None]
    noise = _arc_noise_rn(arc, sig, torch.Generator().manual_seed(seed))
    added = torch.zeros_like(arc) if null else arc
    signal = added + noise
    return host_stamps[pos] + signal, signal, matched_energy(added, sigma_host), added_rms(signal)


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal values (NaN where both are NaN; -0.0 equals 0.0) and the same dtype and shape."""
    return a.dtype == b.dtype and a.shape == b.shape and bool(((a == b) | (a.isnan() & b.isnan())).all())


def _interpreted_checks() -> dict:
    """Run inside a TRITON_INTERPRET=1 process: the kernel against the torch path."""
    import pandas as pd

    from lensaudit.injection.visibility import matched_energy_of_terms
    from lensaudit.selection import fused_add, inject
    from lensaudit.selection.inject import arc_noise_factor

    out = {"usable": fused_add.usable(torch.zeros(1))}
    for null in (False, True):
        images, trans, sig, host_stamps, pos, sigma_host = _inputs()
        want = _torch_path(images, trans, sig, host_stamps, pos, sigma_host, null, seed=7)
        normal = torch.randn(images.shape, generator=torch.Generator().manual_seed(7))
        got = fused_add.add_arc(images, trans, arc_noise_factor(sig, torch.float32), normal, host_stamps, pos,
                                sigma_host, null)
        same = [_same(got.stamps, want[0]), _same(got.signal, want[1]),
                _same(matched_energy_of_terms(got.arc_energy_terms), want[2]),
                _same(inject.added_rms_of_squares(got.signal_squares), want[3])]
        out[f"null{null}"] = same
    # a planted difference (the image's absolute value, as a kernel that lost the sign would add) is seen:
    # the comparison is not vacuous
    images, trans, sig, host_stamps, pos, sigma_host = _inputs()
    normal = torch.randn(images.shape, generator=torch.Generator().manual_seed(7))
    got = fused_add.add_arc(images.abs(), trans, arc_noise_factor(sig, torch.float32), normal, host_stamps, pos, sigma_host)
    want = _torch_path(images, trans, sig, host_stamps, pos, sigma_host, False, seed=7)
    out["planted_abs_differs"] = not _same(got.signal, want[1])

    # the whole chunk loop, both paths, the same numbers (CPU device, interpreted kernel)
    from lensaudit_tests.test_selection_stream import _Tiny, _plan, _store

    with tempfile.TemporaryDirectory() as d:
        hosts, reader = _store(Path(d), n=12)
        plan, params = _plan(hosts)
        stamps = torch.from_numpy(reader.read(hosts))
        pos = pd.Index(hosts["galaxy_id"]).get_indexer(plan["galaxy_id"])
        runs = {}
        inject.arc_noise = _arc_noise_rn  # the torch path as on CUDA (its square root correctly rounded)
        calls, kernel = [], fused_add.add_arc
        fused_add.add_arc = lambda *a, **k: calls.append(1) or kernel(*a, **k)
        for flag in (True, False):
            inject.FUSED_ADD = flag
            runs[flag] = [inject.inject_and_score_tensor(_Tiny(), stamps, pos, params, hosts, 64, "cpu", 11, chunk=4,
                                                         null=null) for null in (False, True)]
        inject.FUSED_ADD = True
        out["loop_equal"] = [bool(torch.equal(a, b)) for a, b in zip(runs[True], runs[False])]
        out["loop_rows"], out["loop_kernel_calls"] = len(plan), len(calls)
    return out


@pytest.fixture(scope="module")
def interpreted():
    return interpreted_checks("lensaudit_tests.test_fused_add")


def test_fused_add_equals_the_torch_path_to_the_bit(interpreted):
    assert interpreted["usable"]
    assert interpreted["nullFalse"] == [True] * 4  # stamps, signal, matched energy, added rms
    assert interpreted["nullTrue"] == [True] * 4
    assert interpreted["planted_abs_differs"]  # a kernel that lost the image's sign is caught


def test_fused_add_in_the_chunk_loop_gives_the_same_records(interpreted):
    assert interpreted["loop_rows"] > 4 and interpreted["loop_equal"] == [True, True]
    assert interpreted["loop_kernel_calls"] == 2 * -(-interpreted["loop_rows"] // 4)  # every chunk, both runs


def test_fused_add_is_not_used_on_the_cpu_without_the_interpreter(monkeypatch):
    from lensaudit.selection import fused_add

    monkeypatch.setenv("TRITON_INTERPRET", "0")
    assert not fused_add.usable(torch.zeros(2), torch.zeros(2))


def test_fused_add_refuses_bad_inputs():
    from lensaudit.selection import fused_add

    images, trans, sig, host_stamps, pos, sigma_host = _inputs()
    with pytest.raises(ValueError, match="float32"):
        fused_add.add_arc(images.double(), trans, sig, images.double(), host_stamps, pos, sigma_host)
    with pytest.raises(ValueError, match="do not fit"):
        fused_add.add_arc(images, trans, sig, images[:, :2], host_stamps, pos, sigma_host)


def test_inject_batch_refuses_host_positions_outside_the_hosts():
    """Checked on the host for both paths (the kernel would read outside the host stamps; torch would
    wrap a negative position to the last host)."""
    import pandas as pd

    from lensaudit.selection.inject import inject_batch

    stamps = torch.zeros((2, 3, 21, 21))
    rows = pd.DataFrame({"galaxy_id": ["a", "b"]})
    for pos in ([0, 2], [-1, 0]):
        with pytest.raises(IndexError, match="outside the 2 host stamps"):
            inject_batch(stamps, np.array(pos), pd.DataFrame({"theta_e_arcsec": [1.0, 1.0]}), rows, "cpu",
                         torch.Generator())
