"""A small U-Net for 3-D (and 2-D) segmentation of defects, with tiled inference.

The blocks follow MONAI's BasicUNet (two convolutions with normalisation and LeakyReLU per
level, max-pool down, transposed convolution up, skip connections by concatenation), written
here so that the network runs with torch alone. BatchNorm (not instance norm) keeps the
prediction of a tile independent of the rest of the tile, so tiled and whole-volume predictions
agree.

>>> import torch
>>> net = UNet(in_channels=4, classes=4, features=(4, 8, 16))
>>> net(torch.zeros(1, 4, 16, 16, 16)).shape
torch.Size([1, 4, 16, 16, 16])
"""
from __future__ import annotations

import functools
import itertools

from pathlib import Path

import numpy as np
import torch
from torch import nn

__all__ = ["ConvBlock", "UNet", "predict_tiled", "fuse_batchnorm", "default_weights_path", "load_unet"]


def _layers(spatial_dims):
    if spatial_dims not in (2, 3):
        raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
    if spatial_dims == 3:
        return nn.Conv3d, nn.BatchNorm3d, nn.MaxPool3d, nn.ConvTranspose3d
    return nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d, nn.ConvTranspose2d


class ConvBlock(nn.Sequential):
    """Two (convolution 3, BatchNorm, LeakyReLU 0.1) layers."""

    def __init__(self, spatial_dims, in_channels, out_channels):
        conv, norm, _, _ = _layers(spatial_dims)
        layers = []
        for c_in in (in_channels, out_channels):
            layers += [conv(c_in, out_channels, 3, padding=1, bias=False), norm(out_channels), nn.LeakyReLU(0.1)]
        super().__init__(*layers)


class UNet(nn.Module):
    """U-Net: `features` channels per level (each level halves the size), `classes` logits out.

    Parameters
    ----------
    in_channels : int
    classes : int
    features : sequence of int
        Channels from the full-resolution level down to the bottleneck.
    spatial_dims : {2, 3}
    """

    def __init__(self, in_channels=4, classes=4, features=(12, 24, 48, 96), spatial_dims=3):
        super().__init__()
        _, _, pool, up = _layers(spatial_dims)
        self.config = dict(in_channels=in_channels, classes=classes, features=tuple(features),
                           spatial_dims=spatial_dims)
        self.down = nn.ModuleList([ConvBlock(spatial_dims, in_channels, features[0])])
        self.down.extend(ConvBlock(spatial_dims, a, b) for a, b in zip(features[:-1], features[1:]))
        self.pool = pool(2)
        self.up = nn.ModuleList(up(b, a, 2, stride=2) for a, b in zip(features[:-1], features[1:]))
        self.merge = nn.ModuleList(ConvBlock(spatial_dims, 2 * a, a) for a in features[:-1])
        self.head = _layers(spatial_dims)[0](features[0], classes, 1)

    @property
    def multiple(self) -> int:
        """Input sizes must be multiples of this (2 per pooling)."""
        return 2 ** (len(self.down) - 1)

    def forward(self, x):
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else self.pool(x))
            skips.append(x)
        x = skips.pop()
        for up, merge in zip(reversed(self.up), reversed(self.merge)):
            x = merge(torch.cat([skips.pop(), up(x)], dim=1))
        return self.head(x)


def fuse_batchnorm(model: nn.Module) -> nn.Module:
    """An inference copy of `model` whose (convolution, BatchNorm) pairs in every
    :class:`ConvBlock` are folded into one convolution (torch's ``fuse_conv_bn_eval``): the same
    output in eval mode (to float rounding), with fewer passes over memory."""
    import copy

    from torch.nn.utils.fusion import fuse_conv_bn_eval

    fused = copy.deepcopy(model).eval()
    for block in fused.modules():
        if isinstance(block, ConvBlock):
            for i in range(0, len(block), 3):
                block[i] = fuse_conv_bn_eval(block[i], block[i + 1])
                block[i + 1] = nn.Identity()
    return fused


def _starts(size, tile, step):
    if size <= tile:
        return [0]
    starts = list(range(0, size - tile, step)) + [size - tile]
    return sorted(set(starts))


def _ramp(size, overlap):
    """Weights along one axis of a tile that fall linearly to 0.1 over `overlap` voxels at both ends."""
    ramp = np.ones(size, np.float32)
    if overlap > 0:
        edge = np.linspace(0.1, 1.0, overlap, dtype=np.float32)
        ramp[:overlap], ramp[-overlap:] = edge, edge[::-1]
    return ramp


@torch.no_grad()
def predict_tiled(model, inputs, *, tile=64, overlap=16, device="cpu", activation=None) -> np.ndarray:
    """Class probabilities (classes, ...) float32 of `inputs` (channels, ...): the volume padded
    to a multiple of the network's size step and cut into blocks of `tile` voxels that overlap by
    `overlap`, blended with weights that fall off linearly at the blocks' faces. `activation`
    maps the logits (1, classes, ...) to what is blended (default: softmax over the classes).
    `model` is left in eval mode on `device`, in the channels-last layout, which oneDNN's CPU
    convolutions run faster in (the same output to float rounding)."""
    activation = activation or (lambda logits: torch.softmax(logits, dim=1))
    x = np.asarray(inputs, np.float32)
    shape = x.shape[1:]
    layout = torch.channels_last if len(shape) == 2 else torch.channels_last_3d
    model = model.to(device, memory_format=layout).eval()
    m = model.multiple
    padded = [-(-n // m) * m for n in shape]
    sizes = [min(max(m, tile // m * m), p) for p in padded]
    x = np.pad(x, [(0, 0)] + [(0, p - n) for p, n in zip(padded, shape)])
    ramps = [_ramp(t, min(overlap, t // 2) if p > t else 0) for p, t in zip(padded, sizes)]
    w = functools.reduce(np.multiply, np.ix_(*ramps))
    out = np.zeros((model.config["classes"], *padded), np.float32)
    weight = np.zeros(padded, np.float32)
    for start in itertools.product(*[_starts(p, t, max(t - overlap, 1)) for p, t in zip(padded, sizes)]):
        box = tuple(slice(s, s + t) for s, t in zip(start, sizes))
        piece = torch.from_numpy(np.ascontiguousarray(x[(slice(None),) + box]))[None].to(device, memory_format=layout)
        prob = activation(model(piece))[0].float().cpu().numpy()
        out[(slice(None),) + box] += prob * w
        weight[box] += w
    out /= np.maximum(weight, 1e-12)
    return out[(slice(None),) + tuple(slice(0, n) for n in shape)]


def default_weights_path() -> Path:
    """The shipped weights of the defect U-Net (trained by :mod:`braggscope.identify.training`)."""
    return Path(__file__).parent / "weights" / "defect_unet.pt"


def load_unet(path=None, *, device="cpu"):
    """The U-Net with its weights (default: the shipped ones) and the training record
    ('meta': seed, data, validation scores), in eval mode on `device`."""
    from braggscope._backend import load_checkpoint

    saved = load_checkpoint(default_weights_path() if path is None else path, "U-Net weights",
                            "train them with python -m braggscope.identify.training")
    model = UNet(**saved["config"])
    model.load_state_dict(saved["state_dict"])
    model.meta = saved.get("meta", {})
    return model.to(device).eval()
