"""The compute device for torch work: CUDA when present (``auto``), else the CPU."""

import dagster as dg


class DeviceResource(dg.ConfigurableResource):
    device: str = "auto"  # auto | cpu | cuda | cuda:N

    def torch_device(self) -> str:
        import torch

        if self.device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise dg.Failure(f"device {self.device!r} requested but CUDA is not available")
        return self.device
