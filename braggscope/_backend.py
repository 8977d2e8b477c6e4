"""Device and dtype resolution for the torch compute parts (chosen per call, never globally)."""
from __future__ import annotations

from ._validate import check_choice
from .errors import DeviceError

__all__ = ["resolve_device"]


def resolve_device(device="auto"):
    """The torch device for `device`: 'auto' (CUDA if torch sees one, else CPU), 'cpu', 'cuda',
    'cuda:N' or 'mps' (only when named)."""
    import torch

    if isinstance(device, torch.device):
        return device
    name = str(device)
    base = name.split(":")[0]
    check_choice(base, "device", {"auto", "cpu", "cuda", "mps"})
    if base == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if base == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"device {name!r} asked for, but torch sees no CUDA GPU; use --device cpu or auto")
    return torch.device(name)
