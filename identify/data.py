"""Training and test examples for the defect networks: simulated crystals passed through the
detector and the retrieval engine, turned into the network's input channels and labels.

An example is made as a beamline makes one: a random crystal with random defects (or none) is
measured at a random reflection with Poisson noise at a given photon count, reconstructed by the
torch engine (shrink-wrap RAAR then ER, from a perturbed start near the solution),
aligned on the truth (twin, sub-voxel shift, global phase), and turned into its strain field. The
labels are the simulator's defect masks of the defects visible at that reflection.

>>> from braggscope.identify.data import CLASSES
>>> CLASSES
('background', 'dislocation', 'fault', 'twin')
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from braggscope.metrics import align_to
from braggscope.simulate import (REFLECTIONS, Detector, continuum_intensity, measure, random_crystal, random_defects,
                                 simulate_sample)

__all__ = ["CLASSES", "Example", "base_channels", "physics_maps", "physics_channels", "input_channels", "labels_from_masks", "simulate_example", "STRAIN_SCALE",
           "MIN_CONTRAST", "REFLECTIONS"]

CLASSES = ("background", "dislocation", "fault", "twin")
STRAIN_SCALE = 2e-3  # strain channel = tanh(ε / STRAIN_SCALE): 1e-4 stays linear, cores saturate
MIN_CONTRAST = 0.5  # [rad] defects with less phase contrast at G are invisible and not labelled
_KINDS = ("dislocation", "split_dislocation", "loop", "stacking_fault", "twin", "dilatation")
_RECIPE = "ER**40 * (ShrinkWrap * RAAR**20)**6"


@dataclass(frozen=True)
class Example:
    """One network example: `inputs` (6, Z, Y, X) float32 (:func:`input_channels`), `labels` (Z, Y, X) uint8 (indices
    of CLASSES), the reconstruction's `error` against the truth, its `field` (StrainField) and
    the truth's `defects` (JSON-able list)."""

    inputs: np.ndarray
    labels: np.ndarray
    error: float
    field: object
    defects: list
    photons: float
    hkl: tuple


def base_channels(field) -> np.ndarray:
    """The four measured channels (4, ...) float32 of a :class:`~braggscope.strain.StrainField`:
    amplitude (over its 99th percentile in the support), cos φ, sin φ and tanh(ε / STRAIN_SCALE),
    all zero outside the support."""
    support = np.asarray(field.support, bool)
    amp = np.nan_to_num(np.asarray(field.amplitude, np.float32))
    scale = np.percentile(amp[support], 99) if support.any() else 1.0
    phase = np.nan_to_num(np.asarray(field.phase, np.float32))
    strain = np.nan_to_num(np.asarray(field.strain, np.float32))
    channels = [np.clip(amp / max(scale, 1e-12), 0, 1.5), np.cos(phase) * support, np.sin(phase) * support,
                np.tanh(strain / STRAIN_SCALE) * support]
    return np.stack(channels).astype(np.float32)


def physics_maps(base) -> dict:
    """What the physics baseline sees in the base channels (the object amplitude·(cos φ + i sin φ)
    on the support where cos² + sin² > 0.5): 'lines' and 'winding' (:func:`.vortices.vortex_lines`),
    'jumps', 'residual' and 'crossings' (:func:`.planes.jump_voxels`)."""
    from .planes import jump_voxels
    from .vortices import vortex_lines

    base = np.asarray(base, np.float32)
    obj = base[0] * (base[1] + 1j * base[2])
    support = base[1] ** 2 + base[2] ** 2 > 0.5
    if not support.any():
        zeros = np.zeros(base.shape[1:])
        return {"lines": zeros > 0, "winding": np.zeros((3,) + zeros.shape, np.int8), "jumps": zeros > 0,
                "residual": zeros.astype(np.float32), "crossings": zeros.astype(np.int16)}
    lines, winding = vortex_lines(obj, support)
    jumps, residual, crossings = jump_voxels(obj, support)
    return {"lines": lines, "winding": winding, "jumps": jumps, "residual": residual, "crossings": crossings}


def physics_channels(base, maps=None) -> np.ndarray:
    """Two channels (2, ...) float32 the physics baseline computes from the base channels (or
    takes from their `maps`, :func:`physics_maps`): the phase-vortex lines (plaquettes with a
    non-zero winding in the closed support, grown by one voxel) and the size of planar phase jumps
    |Δ| / π (where a step departs from its neighbours' by more than 1 rad). They are invariant
    under the augmentations (flips, axis permutations, global phase, φ → -φ)."""
    maps = physics_maps(base) if maps is None else maps
    jumps = ndimage.maximum_filter(np.abs(maps["residual"]), size=3) * maps["jumps"] / np.pi
    return np.stack([ndimage.binary_dilation(maps["lines"]), jumps]).astype(np.float32)


def input_channels(field) -> np.ndarray:
    """Network input (6, ...) float32: :func:`base_channels` then :func:`physics_channels`."""
    base = base_channels(field)
    return np.concatenate([base, physics_channels(base)])


def labels_from_masks(dislocation, fault, twin) -> np.ndarray:
    """Class index per voxel (uint8): a dislocation core wins over a fault, a fault over a twin."""
    labels = np.zeros(np.shape(dislocation), np.uint8)
    labels[np.asarray(twin, bool)] = 3
    labels[np.asarray(fault, bool)] = 2
    labels[np.asarray(dislocation, bool)] = 1
    return labels


def _draw_defects(crystal, rng, kinds):
    """20 % none, 10 % smooth strain only, else 1–3 defects of `kinds`; with no `kinds`, a
    perfect crystal (half of them smoothly strained)."""
    pick = rng.uniform() * (0.3 if not kinds else 1.0)
    if pick < 0.2 - (0.05 if not kinds else 0.0):
        return []
    if pick < 0.3:  # smooth strain only: a perfect crystal that is not strain-free
        return [crystal.smooth_strain(amplitude=rng.uniform(0.005, 0.03), wavelength=rng.uniform(60, 200),
                                      rng=int(rng.integers(1 << 30)))]
    return random_defects(crystal, rng, kinds=kinds, count=(1, 3))


def _start(truth, truth_support, rng):
    """A start near a successful retrieval but not on it: the truth blurred (σ 1.5 voxels, which
    fills the cores), times a random smooth phase error of about 1 rad, on the true support
    grown by 1–3 voxels (the size a good autocorrelation support has)."""
    support = ndimage.binary_dilation(truth_support, iterations=int(rng.integers(1, 4)))
    blurred = ndimage.gaussian_filter(truth.real, 1.5) + 1j * ndimage.gaussian_filter(truth.imag, 1.5)
    error = ndimage.gaussian_filter(rng.normal(size=truth.shape), 6.0)
    error *= 1.0 / max(error[support].std(), 1e-12)
    return support, (blurred * np.exp(1j * error) * support).astype(np.complex64)


def reconstruct_measurement(intensity, truth, truth_support, rng, device="cpu"):
    """Shrink-wrap RAAR then ER on the counts from a perturbed, blurred truth (:func:`_start`):
    the reconstruction a successful retrieval gives, with its noise, resolution and support
    artefacts. Random starts fail on most defective crystals (DESIGN.md), and telling a failed
    retrieval from a defect is not this network's task."""
    from braggscope.retrieval import reconstruct

    support, obj = _start(truth, truth_support, rng)
    result = reconstruct(intensity, _RECIPE, support=support, obj=obj, free_fraction=0, rng=rng, device=device)
    return result.obj[0]


def simulate_example(seed, *, shape=(64, 64, 64), photons=None, kinds=_KINDS, device="cpu") -> Example:
    """One example from `seed`: crystal, defects (of `kinds`; none for a perfect crystal),
    reflection and photons (10^7–10^9 when not given) drawn from it. The crystal spans about
    55 % of the grid (oversampling ≈ 1.8)."""
    from braggscope.strain import strain_field, support_from_amplitude

    rng = np.random.default_rng(seed)
    crystal = random_crystal(rng, size=(50.0, 160.0))
    defects = _draw_defects(crystal, rng, kinds)
    hkl = REFLECTIONS[rng.integers(len(REFLECTIONS))]
    reach = 2 * float(crystal.shape.radial_extent(np.eye(3)).max())
    voxel = reach / (rng.uniform(0.45, 0.6) * min(shape))
    sample = simulate_sample(crystal, defects, shape=shape, voxel_size=voxel, hkl=hkl, min_contrast=MIN_CONTRAST)
    photons = float(10 ** rng.uniform(7, 9)) if photons is None else float(photons)
    counts = measure(continuum_intensity(sample.obj), Detector(photons=photons), rng=rng).intensity
    obj, info = align_to(reconstruct_measurement(counts, sample.obj, sample.support, rng, device), sample.obj)
    field = strain_field(obj, support_from_amplitude(obj), g_vector=sample.g_vector, voxel_size=voxel)
    labels = labels_from_masks(sample.dislocation_mask, sample.fault_mask, sample.twin_mask)
    return Example(inputs=input_channels(field), labels=labels, error=info["error"], field=field,
                   defects=sample.defects, photons=photons, hkl=hkl)
