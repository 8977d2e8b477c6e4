"""The neural first guess: an encoder–decoder that predicts the crystal (amplitude, phase and
support) from its diffraction pattern, to start the iterative engine or PyNX near the solution.

The network sees the pattern as the detector gives it, cropped (and binned where the crystal is
strongly oversampled) around the Bragg peak to a fixed size of 64 pixels per axis: the log
counts and the mask of unmeasured pixels. It predicts the object on the central half of the
real-space grid of that window (32 voxels per axis, where a crystal sampled at oversampling ≥ 2
lies): amplitude in [0, 1], phase as (cos, sin), so that wraps cost nothing, and a support
logit. There are no skip connections: detector pixels and object voxels are not the same places.
The prediction is mapped back onto the data's own real-space grid and scaled by Parseval, so it
goes into :func:`~braggscope.retrieval.reconstruct` as ``obj=`` and ``support=``.

>>> import torch
>>> net = PhaseNet(features=(4, 8, 8, 8))
>>> net(torch.zeros(1, 2, 64, 64, 64)).shape
torch.Size([1, 4, 32, 32, 32])
"""
from __future__ import annotations

import json

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage
from torch import nn

from braggscope._backend import load_checkpoint
from braggscope.errors import ConfigError
from braggscope.io.cxi import validate_intensity

from .engine import DEFAULT_RECIPE, default_chain
from .operators import parse_recipe
from .prepare import bin_pixels, crop_around_peak

__all__ = ["NET_SIZE", "PhaseNet", "network_input", "object_from_output", "NetworkFrame", "network_frame",
           "to_data_grid", "FirstGuess", "first_guess", "default_weights_path", "load_phase_net",
           "estimate_oversampling", "starts_from_guess", "network_start", "seeded_chain",
           "SEEDED_CYCLES", "SEEDED_SUPPORT_SIGMA"]

NET_SIZE = 64  # [pixels] side of the network's diffraction window; it predicts NET_SIZE // 2 voxels per axis
SEEDED_CYCLES = 200  # cycles of the default chain's shape run from the guess (benchmarks/neural_retrieval.py)
# [voxels] The shrink-wrap's blur at the start of a seeded chain (2 for random starts). Chosen ad hoc on 64 validation
# crystals (seeds TEST_SEED + 70 000 …, not the benchmark's), against their random runs of 1000 cycles: seeded runs of
# 100 cycles came within 5 % of them for 27 % of the pairs with 2 voxels, 29 % with 1.5, 36 % with 1 and 35 % with 0.7.
SEEDED_SUPPORT_SIGMA = 1.0
# The training crystals span 0.45–0.85 of half the window (oversampling 2.35–4.4). The window is binned by the
# largest factor that keeps the estimated oversampling above this: twice the estimate's 10 % tolerance (tested on
# spheres) short of the training range's top, so that an overestimate rarely bins a crystal the network knows.
BIN_OVERSAMPLING = 3.4


def _layers(spatial_dims):
    if spatial_dims not in (2, 3):
        raise ConfigError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
    if spatial_dims == 3:
        return nn.Conv3d, nn.BatchNorm3d, nn.ConvTranspose3d
    return nn.Conv2d, nn.BatchNorm2d, nn.ConvTranspose2d


def _conv(spatial_dims, c_in, c_out, kernel=3, stride=1):
    """Convolution, BatchNorm, LeakyReLU 0.1 (size kept for stride 1, halved for stride 2)."""
    conv, norm, _ = _layers(spatial_dims)
    return nn.Sequential(conv(c_in, c_out, kernel, stride=stride, padding=(kernel - stride + 1) // 2, bias=False),
                         norm(c_out), nn.LeakyReLU(0.1))


class PhaseNet(nn.Module):
    """Encoder–decoder from (log counts, mask) at N pixels to (amplitude logit, cos, sin, support
    logit) at N/2 voxels per axis.

    The encoder halves the size at each level (a 4-wide stride-2 stem, then stride-2
    convolutions) down to N/16, where every unit sees the whole pattern; the decoder doubles it
    back up to N/2 with transposed convolutions.

    Parameters
    ----------
    features : sequence of int
        Channels at N/2, N/4, N/8 and N/16 (and back up).
    spatial_dims : {2, 3}
    """

    def __init__(self, features=(16, 32, 64, 128), spatial_dims=3):
        super().__init__()
        _, _, up = _layers(spatial_dims)
        f = tuple(int(c) for c in features)
        self.config = dict(features=f, spatial_dims=spatial_dims)
        self.encoder = nn.Sequential(_conv(spatial_dims, 2, f[0], kernel=4, stride=2), _conv(spatial_dims, f[0], f[0]),
                                     *[nn.Sequential(_conv(spatial_dims, a, b, stride=2), _conv(spatial_dims, b, b))
                                       for a, b in zip(f[:-1], f[1:])])
        self.decoder = nn.Sequential(*[nn.Sequential(up(b, a, 2, stride=2), _conv(spatial_dims, a, a))
                                       for a, b in zip(f[-2::-1], f[:0:-1])])
        self.head = _layers(spatial_dims)[0](f[0], 4, 1)

    def forward(self, x):
        return self.head(self.decoder(self.encoder(x)))


def network_input(intensity, mask) -> np.ndarray:
    """The network's two channels (2, ...) float32: log(1 + I) / log(1 + max I) on the measured
    pixels (0 on the masked ones), and the mask (1 = not measured)."""
    intensity = np.asarray(intensity, np.float32)
    mask = np.asarray(mask, bool)
    counts = np.where(mask, 0.0, np.maximum(intensity, 0.0))
    scaled = np.log1p(counts) / max(float(np.log1p(counts.max())), 1e-6)
    return np.stack([scaled, mask]).astype(np.float32)


def object_from_output(raw):
    """(object, support logit) from the network's raw output (B, 4, ...): amplitude = sigmoid of
    channel 0, phase = angle of (channel 1 + i channel 2); complex64 and float tensors."""
    amplitude = torch.sigmoid(raw[:, 0])
    norm = torch.sqrt(raw[:, 1] ** 2 + raw[:, 2] ** 2 + 1e-6)
    return amplitude * torch.complex(raw[:, 1] / norm, raw[:, 2] / norm), raw[:, 3]


def estimate_oversampling(intensity, mask=None) -> np.ndarray:
    """Oversampling per axis: the array size over the crystal's extent.

    The extent is half that of the autocorrelation support, over 0.85. The autocorrelation is the
    inverse FFT of the counts (masked pixels filled from their nearest measured neighbour),
    smoothed over a voxel; along each axis its profile (the largest value in each plane across
    the axis) counts where it stands above 4 % of its peak. A module gap through the peak leaves
    a fill error that is a band along the axis across the gap, whose transform lifts that axis's
    whole profile (by 0.1–0.15 of the peak in the held-out patterns looked at); the profile's
    lowest value is taken off first, so that this floor reads less often as a crystal as wide as
    the array (no fill is right where a gap hides most of the peak). 0.85 is the share of the
    extent that the threshold keeps of a ball (0.83) and of faceted crystals (0.8–0.95 measured on
    the training crystals)."""
    import scipy.fft

    from .prepare import _filled

    intensity, mask = validate_intensity(intensity, mask)
    auto = np.abs(scipy.fft.fftshift(scipy.fft.ifftn(scipy.fft.ifftshift(_filled(intensity, mask).astype(float)))))
    auto = ndimage.gaussian_filter(auto, 1.0)
    auto /= max(float(auto.max()), 1e-300)
    extent = []
    for axis in range(auto.ndim):
        profile = auto.max(axis=tuple(a for a in range(auto.ndim) if a != axis))
        floor = float(profile.min())
        extent.append(max(int(np.sum(profile - floor > 0.04 * (1 - floor))), 1) / (2 * 0.85))
    return np.array([n / e for n, e in zip(intensity.shape, extent)])


@dataclass(frozen=True)
class NetworkFrame:
    """The network's window on a pattern: `intensity` and `mask` (NET_SIZE per axis), the
    `bins` per axis, the `offset` of the crop in the input (before binning) and the input's
    `data_shape`. The window's real-space voxel is data_shape / (NET_SIZE · bins) data voxels."""

    intensity: np.ndarray
    mask: np.ndarray
    bins: tuple
    offset: tuple
    data_shape: tuple

    @property
    def zoom(self) -> np.ndarray:
        """Data voxels per network voxel, per axis."""
        return np.array(self.data_shape) / (NET_SIZE * np.array(self.bins))


def network_frame(intensity, mask=None, *, bins=None) -> NetworkFrame:
    """Crop NET_SIZE · bins pixels per axis around the Bragg peak (its centre of mass lands on
    the centre; outside the data is masked) and bin them to NET_SIZE.

    `bins` (per axis) default: as many as keep the estimated oversampling (:func:`estimate_oversampling`)
    above BIN_OVERSAMPLING; cropping alone keeps the oversampling and coarsens the voxel."""
    intensity, mask = validate_intensity(intensity, mask)
    if bins is None:
        bins = np.maximum(np.floor(estimate_oversampling(intensity, mask) / BIN_OVERSAMPLING), 1).astype(int)
    bins = tuple(int(b) for b in np.broadcast_to(bins, (intensity.ndim,)))
    counts, crop_mask, offset = crop_around_peak(intensity, tuple(NET_SIZE * b for b in bins), mask=mask)
    counts, crop_mask = bin_pixels(counts, bins, mask=crop_mask)
    return NetworkFrame(counts, crop_mask, bins, offset, intensity.shape)


def to_data_grid(obj, support, frame: NetworkFrame):
    """The network's object and support (NET_SIZE/2 voxels per axis, centred) resampled onto the
    real-space grid of the data (linear interpolation of real and imaginary parts; the support
    by nearest neighbour), centred on index n // 2."""
    centre_net = np.array(obj.shape) // 2
    axes = [(np.arange(n) - n // 2) / z + c for n, z, c in zip(frame.data_shape, frame.zoom, centre_net)]
    coords = np.stack(np.meshgrid(*axes, indexing="ij"))
    sample = lambda a, order: ndimage.map_coordinates(a, coords, order=order, mode="constant", cval=0)
    out = sample(obj.real, 1) + 1j * sample(obj.imag, 1)
    return out.astype(np.complex64), sample(support.astype(np.float32), 0) > 0.5


@dataclass(frozen=True)
class FirstGuess:
    """The network's guess: `obj` (complex64) and `support` (bool, grown by the margin) on the data's
    grid, ready for ``reconstruct(..., obj=guess.obj, support=guess.support)``; `net_obj` and `net_support` on the
    network's own grid; `frame` the window it saw; `seconds` the inference time."""

    obj: np.ndarray
    support: np.ndarray
    net_obj: np.ndarray
    net_support: np.ndarray
    frame: NetworkFrame
    seconds: float


def _parseval_scale(obj, intensity, mask):
    """`obj` scaled so that its |FFT|² carries the measured counts on the measured pixels."""
    import scipy.fft

    calc = np.abs(scipy.fft.fftn(scipy.fft.ifftshift(obj))) ** 2
    measured = ~scipy.fft.ifftshift(mask)
    total = float(calc[measured].sum())
    return obj * np.float32(np.sqrt(scipy.fft.ifftshift(intensity)[measured].sum() / total)) if total > 0 else obj


def first_guess(intensity, mask=None, *, net=None, device="auto", bins=None, support_threshold=0.5,
                support_margin=2) -> FirstGuess:
    """The network's first guess of the object behind a Bragg CDI pattern.

    Parameters
    ----------
    intensity : (Z, Y, X) or (Y, X) ndarray
        [photons] Counts centred near the Bragg peak (any size; cropped and binned for the network).
    mask : ndarray of bool, optional
        True = not measured.
    net : PhaseNet, optional
        Default: the shipped weights for the data's dimension (:func:`load_phase_net`).
    device : str
        'auto', 'cpu' or 'cuda'.
    bins : int or sequence of int, optional
        Binning of the window (default from the oversampling, :func:`network_frame`).
    support_threshold : float
        Probability above which a voxel is in the network's support.
    support_margin : int
        [voxels] Growth of that support on the data's grid for the start: shrink-wrap takes a loose
        support in, while a tight one cannot grow.

    Returns
    -------
    FirstGuess
    """
    import time

    from braggscope._backend import resolve_device

    intensity, mask = validate_intensity(intensity, mask)
    dev = resolve_device(device)
    net = load_phase_net(intensity.ndim) if net is None else net
    if net.config["spatial_dims"] != intensity.ndim:
        raise ConfigError(f"the network is {net.config['spatial_dims']}-D but the data are {intensity.ndim}-D")
    t0 = time.perf_counter()
    frame = network_frame(intensity, mask, bins=bins)
    x = torch.from_numpy(network_input(frame.intensity, frame.mask))[None].to(dev)
    net = net.to(dev).eval()
    with torch.no_grad():
        obj, logit = object_from_output(net(x))
    net_obj, net_support = obj[0].cpu().numpy(), torch.sigmoid(logit[0]).cpu().numpy() > support_threshold
    if not net_support.any():
        net_support = np.abs(net_obj) > 0.5 * np.abs(net_obj).max()
    obj_data, support_data = to_data_grid(net_obj * net_support, net_support, frame)
    if not support_data.any():
        raise ConfigError("the network found no crystal in this pattern; check that it is a Bragg peak "
                          "centred in the array")
    if support_margin > 0:
        support_data = ndimage.binary_dilation(support_data, iterations=int(support_margin))
    return FirstGuess(_parseval_scale(obj_data, intensity, mask), support_data, net_obj, net_support, frame,
                      time.perf_counter() - t0)


def starts_from_guess(guess: FirstGuess, n_runs, *, rng=None, spread=0.3) -> np.ndarray:
    """`n_runs` starting objects (n_runs, ...) from a guess: the guess itself first, then the guess
    times a random smooth phase (Gaussian noise smoothed over 2 voxels, RMS `spread` [rad] in the
    support), so that several runs explore around it and can be ranked and combined."""
    rng = np.random.default_rng(rng)
    starts = [guess.obj]
    for _ in range(int(n_runs) - 1):
        phase = ndimage.gaussian_filter(rng.normal(size=guess.obj.shape), 2.0)
        phase *= spread / max(float(phase[guess.support].std()), 1e-12)
        starts.append(guess.obj * np.exp(1j * phase).astype(np.complex64))
    return np.stack(starts).astype(np.complex64)


def seeded_chain(cycles=SEEDED_CYCLES, *, psf=False) -> str:
    """The chain that refines a guess: the default chain's shape
    (:func:`~braggscope.retrieval.default_chain`) with the shrink-wrap's blur starting at
    SEEDED_SUPPORT_SIGMA voxels instead of 2. The guess's support already follows the crystal to
    within its 2-voxel margin; a blur of 2 voxels loosens it again, and HIO's feedback then spreads
    into the loosened support.

    >>> seeded_chain(40)
    'ER**10 * (ShrinkWrap(sigma=1.0, sigma_cycles=30) * RAAR**5)**3 * (ShrinkWrap(sigma=1.0, sigma_cycles=30, keep_when_exploded=True) * HIO**5)**3'
    """
    return default_chain(cycles, psf=psf, support_sigma=SEEDED_SUPPORT_SIGMA)


def network_start(intensity, mask=None, *, n_runs, seed_net=None, psf=False, rng=None, device="auto"):
    """How the iterative chain starts: (keywords for :func:`~braggscope.retrieval.reconstruct`,
    the network's guess or None).

    With the guess (`seed_net` True, or None where weights for the data's dimension are
    installed) the keywords are :func:`seeded_chain` run for SEEDED_CYCLES ('recipe'),
    `n_runs` starts spread around the guess ('obj', :func:`starts_from_guess`) and its support;
    without it, random starts and DEFAULT_RECIPE. `psf` adds a partial-coherence PSF to either
    chain (:func:`~braggscope.retrieval.default_chain`)."""
    if seed_net is False or (seed_net is None and not default_weights_path(np.ndim(intensity)).is_file()):
        return {"recipe": default_chain(parse_recipe(DEFAULT_RECIPE).cycles, psf=True) if psf else DEFAULT_RECIPE}, None
    guess = first_guess(intensity, mask, device=device)
    return {"recipe": seeded_chain(SEEDED_CYCLES, psf=psf), "obj": starts_from_guess(guess, n_runs, rng=rng),
            "support": guess.support}, guess


def default_weights_path(spatial_dims=3) -> Path:
    """The shipped weights for 3-D (or 2-D) patterns (trained by :mod:`.neural_training`)."""
    return Path(__file__).resolve().parent / "weights" / f"phase_net_{int(spatial_dims)}d.pt"


def load_phase_net(spatial_dims=3, path=None, *, with_recipe=False):
    """The network with its trained weights (file from :func:`.neural_training.save_weights`),
    and with `with_recipe` also the recipe (a dict) that made them."""
    state = load_checkpoint(default_weights_path(spatial_dims) if path is None else path, "trained phase network",
                            "train one with `python -m braggscope.retrieval.neural_training` or run without --seed-net")
    net = PhaseNet(**state["config"])
    net.load_state_dict(state["weights"])
    return (net.eval(), json.loads(state["recipe"])) if with_recipe else net.eval()
