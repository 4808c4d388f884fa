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


def save_checkpoint(model: nn.Module, path, arch: str) -> None:
    """State dict only (plus the architecture name), written atomically."""
    from lensaudit.store import atomic_path

    with atomic_path(path) as tmp:
        torch.save({"arch": arch, "state_dict": model.state_dict()}, tmp)


def load_checkpoint(path, arch: str, map_location="cpu") -> nn.Module:
    """Load with ``torch.load(..., weights_only=True)``; refuse another architecture or a
    tampered / truncated file with a clear error."""
    try:
        blob = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # pickle, zip and weights-only errors all mean "not a checkpoint we trust"
        raise CheckpointError(f"{path}: not a loadable weights-only checkpoint ({type(exc).__name__}: {exc})") from exc
    if not isinstance(blob, dict) or "state_dict" not in blob:
        raise CheckpointError(f"{path}: not a lensaudit checkpoint (no state_dict)")
    if blob.get("arch") != arch:
        raise CheckpointError(f"{path}: checkpoint is for {blob.get('arch')!r}, not {arch!r}")
    model = build_model(arch)
    try:
        model.load_state_dict(blob["state_dict"], strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: state dict does not fit {arch}: {exc}") from exc
    return model
