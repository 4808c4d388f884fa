"""The GPU paths' building blocks, on the CPU: the cusp cells summed as subtrees (the CUDA path
of the renderers, ``cusp.subtree_sums``: deterministic where ``index_add_``'s atomics are not)
and the stacked column upload of the renderers (``device_upload.columns_to_device``)."""

import numpy as np
import pytest
import torch

from lensaudit.device_upload import columns_to_device, to_device
from lensaudit.injection import cusp
from lensaudit.injection.params import validate_rows
from lensaudit.injection.render import render_arcs
from lensaudit_tests.test_render_supersampling import _far_lens_rows


def test_subtree_sums_add_every_level_to_its_owner():
    """Two owners, split 2: owner 0's second child is refined (its children 0.25 and 0.5), so owner 0
    gets 1 + (0.25 + 0.5) and owner 1 gets 2 + 3; the refined child's own entry is ignored."""
    lv0 = (torch.tensor([1.0, 0.0, 2.0, 3.0], dtype=torch.float64), torch.tensor([1]))
    lv1 = (torch.tensor([0.25, 0.5], dtype=torch.float64), torch.tensor([], dtype=torch.long))
    assert torch.equal(cusp.subtree_sums([lv0, lv1], 2), torch.tensor([1.75, 5.0], dtype=torch.float64))
    assert torch.equal(cusp.subtree_sums([lv0[:1] + (torch.tensor([], dtype=torch.long),)], 2),
                       torch.tensor([1.0, 5.0], dtype=torch.float64))


def test_tree_sums_follow_cell_sums_and_the_device(monkeypatch):
    x = torch.zeros(2)
    assert not cusp.use_subtree_sums(x)  # the CPU's sequential index_add_ by default
    monkeypatch.setattr(cusp, "CELL_SUMS", "tree")
    assert cusp.use_subtree_sums(x)
    monkeypatch.setattr(cusp, "CELL_SUMS", "sequential")
    assert not cusp.use_subtree_sums(x)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_renderer_tree_sums_equal_the_sequential_sums(monkeypatch, dtype):
    """The renderer's cusp cells summed as subtrees (the CUDA path, forced here on the CPU) give the
    sequential sums' images to rounding on cuspy sources, and the same bytes twice."""
    cols = validate_rows(_far_lens_rows(4.0, 0.05) + _far_lens_rows(4.0, 0.05, 0.3))
    ref = render_arcs(cols, dtype=dtype)
    monkeypatch.setattr(cusp, "CELL_SUMS", "tree")
    tree = render_arcs(cols, dtype=dtype)
    tol = 1e-12 if dtype == torch.float64 else 2e-6
    assert torch.allclose(tree.images, ref.images, rtol=tol, atol=tol * float(ref.images.abs().max()))
    assert torch.equal(tree.images, render_arcs(cols, dtype=dtype).images)


def test_a_misplaced_subtree_is_caught(monkeypatch):
    """The planted fault: subtrees written into the wrong children (the refined indices shifted)
    change the cuspy images far beyond rounding, so the test above can fail."""
    cols = validate_rows(_far_lens_rows(4.0, 0.05))
    ref = render_arcs(cols)
    real = cusp.subtree_sums

    def shifted(levels, split):
        return real([(c, (r + 1) % len(c) if len(r) else r) for c, r in levels], split)

    monkeypatch.setattr(cusp, "CELL_SUMS", "tree")
    import lensaudit.injection.render as render

    monkeypatch.setattr(render, "subtree_sums", shifted)
    bad = render_arcs(cols)
    assert float((bad.images - ref.images).abs().max() / ref.images.abs().max()) > 1e-3


def test_columns_to_device_gives_torch_as_tensor_values():
    rng = np.random.default_rng(1)
    cols = {"a": rng.normal(size=7), "b": list(range(7)), "clump_dx": rng.normal(size=(7, 3)), "s": np.float64(2.5)}
    for dtype in (torch.float32, torch.float64):
        got = columns_to_device(cols, "cpu", dtype)
        assert list(got) == list(cols)
        for k, v in cols.items():
            want = torch.as_tensor(np.asarray(v, dtype=np.float64), dtype=dtype)
            assert got[k].dtype == dtype and torch.equal(got[k], want), k
    assert torch.equal(to_device(np.arange(4), "cpu"), torch.arange(4))
    # columns of different lengths are uploaded one by one
    odd = columns_to_device({"a": np.ones(3), "b": np.zeros(4)}, "cpu", torch.float32)
    assert odd["a"].shape == (3,) and odd["b"].shape == (4,)
