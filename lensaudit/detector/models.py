"""Detector architectures from torchvision: 3 channels in (g, r, z), one logit out.

``resnet18`` and ``efficientnet_b0`` with random initialisation (no hub weights: the
machines reach no model hub, and ImageNet statistics do not describe nanomaggies).
"""

from __future__ import annotations

import torch
from torch import nn

ARCHITECTURES = ("resnet18", "efficientnet_b0")


def check_architecture(arch: str) -> str:
    """``arch`` when it names one of ``ARCHITECTURES``; ValueError naming them otherwise."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {ARCHITECTURES}")
    return arch


def build_model(arch: str) -> nn.Module:
    import torchvision

    if check_architecture(arch) == "resnet18":
        return torchvision.models.resnet18(weights=None, num_classes=1)
    return torchvision.models.efficientnet_b0(weights=None, num_classes=1)


#: the state-dict key of each architecture's output-logit bias
OUTPUT_BIAS_KEY = {"resnet18": "fc.bias", "efficientnet_b0": "classifier.1.bias"}


class CheckpointError(RuntimeError):
    """A checkpoint that does not belong to the architecture, or is not a state dict."""


def checkpoint_bytes(state: dict) -> bytes:
    """The bytes of ``torch.save(state)`` written to an in-memory buffer: the zip's record
    names are then the fixed ``archive/...`` (saving to a path records the file's name, and
    a temporary name would make every save differ), so the same state dict always gives
    the same bytes.  Non-finite weights are refused (CheckpointError)."""
    import io

    _check_finite(state, "state dict to save")
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def save_checkpoint(model: nn.Module, path) -> str:
    """The state dict only (a plain ``{name: tensor}`` mapping, loadable by
    ``torch.load(path, weights_only=True)`` straight into torchvision's model), written
    atomically and byte-reproducibly (``checkpoint_bytes``).  The architecture is recorded
    beside it in ``run_info.json``.  Returns the file's sha256 (hex)."""
    import hashlib

    from lensaudit.store import atomic_path

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    blob = checkpoint_bytes(state)
    with atomic_path(path) as tmp:
        tmp.write_bytes(blob)
    return hashlib.sha256(blob).hexdigest()


def _check_finite(state: dict, what) -> None:
    for k, v in state.items():
        if isinstance(v, torch.Tensor) and v.is_floating_point() and not bool(torch.isfinite(v).all()):
            n = int((~torch.isfinite(v)).sum())
            raise CheckpointError(f"{what}: weight {k!r} holds {n} NaN/inf values")


def load_checkpoint(path, arch: str, map_location="cpu") -> nn.Module:
    """Load with ``torch.load(..., weights_only=True)``; refuse a checkpoint of another
    architecture, a tampered / truncated file, a pickled object or NaN/inf weights with a
    clear error (CheckpointError)."""
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # pickle, zip and weights-only errors all mean "not a checkpoint we trust"
        raise CheckpointError(f"{path}: not a loadable weights-only checkpoint ({type(exc).__name__}: {exc})") from exc
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: not a state dict of tensors")
    _check_finite(state, path)
    model = build_model(arch)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise CheckpointError(f"{path}: not a {arch} checkpoint (state dict does not fit: {first})") from exc
    return model
