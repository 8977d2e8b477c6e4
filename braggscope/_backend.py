"""Device and dtype resolution for the torch compute parts (chosen per call, never globally)."""
from __future__ import annotations

from ._validate import check_choice
from .errors import DeviceError

__all__ = ["resolve_device", "one_cycle_training", "load_checkpoint"]


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


def one_cycle_training(model, batch_loss, *, steps, lr, pct_start=0.05, log_every=50, label=""):
    """Train `model` for `steps` AdamW steps (weight decay 10⁻⁴) under a one-cycle learning rate
    peaking at `lr`: `batch_loss(step)` returns the loss of a fresh batch. Prints the mean loss
    every `log_every` steps; returns the model in eval mode."""
    import time

    import numpy as np
    import torch

    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=pct_start)
    model.train()
    t0, running = time.time(), []
    for step in range(steps):
        loss = batch_loss(step)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        running.append(loss.item())
        if (step + 1) % log_every == 0:
            print(f"{label}step {step + 1}/{steps} loss {np.mean(running):.4f} {time.time() - t0:.0f} s", flush=True)
            running = []
    return model.eval()


def load_checkpoint(path, what, how_to_make):
    """The dict saved by torch.save at `path` (tensors only, on the CPU); ConfigError naming
    `what` is missing and `how_to_make` it when there is no such file."""
    from pathlib import Path

    import torch

    from .errors import ConfigError

    if not Path(path).is_file():
        raise ConfigError(f"no {what} at {path}; {how_to_make}")
    return torch.load(path, map_location="cpu", weights_only=True)
