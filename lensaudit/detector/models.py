"""Detector architectures from torchvision: 3 channels in (g, r, z), one logit out.

``resnet18`` and ``efficientnet_b0`` with random initialisation (no hub weights: the
machines reach no model hub, and ImageNet statistics do not describe nanomaggies).
"""

from __future__ import annotations

import torch
from torch import nn

ARCHITECTURES = ("resnet18", "efficientnet_b0")


def build_model(arch: str) -> nn.Module:
    import torchvision

    if arch == "resnet18":
        m = torchvision.models.resnet18(weights=None, num_classes=1)
    elif arch == "efficientnet_b0":
        m = torchvision.models.efficientnet_b0(weights=None, num_classes=1)
    else:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {ARCHITECTURES}")
    return m


class CheckpointError(RuntimeError):
    """A checkpoint that does not belong to the architecture, or is not a state dict."""


def save_checkpoint(model: nn.Module, path) -> None:
    """The state dict only (a plain ``{name: tensor}`` mapping, loadable by
    ``torch.load(path, weights_only=True)`` straight into torchvision's model), written
    atomically.  The architecture is recorded beside it in ``run_info.json``."""
    from lensaudit.store import atomic_path

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path, arch: str, map_location="cpu") -> nn.Module:
    """Load with ``torch.load(..., weights_only=True)``; refuse a checkpoint of another
    architecture, a tampered / truncated file or a pickled object with a clear error."""
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # pickle, zip and weights-only errors all mean "not a checkpoint we trust"
        raise CheckpointError(f"{path}: not a loadable weights-only checkpoint ({type(exc).__name__}: {exc})") from exc
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: not a state dict of tensors")
    model = build_model(arch)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise CheckpointError(f"{path}: not a {arch} checkpoint (state dict does not fit: {first})") from exc
    return model
