"""Where networks run: the ``--device`` vocabulary shared by train, evaluate and predict."""

from __future__ import annotations

#: Device names every command accepts; ``auto`` is CUDA when available, else the CPU.
DEVICES = ("auto", "cpu", "cuda")
DEFAULT_DEVICE = "auto"


def resolve_device(device: str = DEFAULT_DEVICE):
    """``'auto' | 'cpu' | 'cuda'`` -> a ``torch.device``; asking for CUDA without one is a ValueError."""
    import torch

    if isinstance(device, torch.device):
        return device
    if device not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked but no CUDA device is available")
    if device == "cuda" or (device == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")
