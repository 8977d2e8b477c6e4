"""Labelled diffraction patterns for the pattern classifier: a random crystal holding one kind of
defect (or none), its kinematical Bragg pattern (continuum FFT of the voxel object, or the
atomistic sum over the displaced fcc atoms) around a random reflection, and what a classifier can
know from it.

The label is the kind of defect *visible* at the reflection: a dislocation or loop whose phase
winding |G·b| is below :data:`MIN_CONTRAST`, a fault whose wrapped |G·R| is, or a twin whose
domain scatters into the same reflection, leaves no mark on the pattern. Such a crystal is
labelled ``perfect`` with ``invisible=True``: a classifier reports "no visible defect at this
reflection", and :func:`invisible_defects` lists what the reflection cannot show.

The crystal spans 60–85 % of a 32³ object grid, and the pattern is its 64³ transform: linear
oversampling 2.4–3.4, as a well-set BCDI scan measures. The continuum object is sampled twice finer
(64³ voxels of half the size) and its transform cut to that window, so that the pattern is the
crystal's, not its voxel grid's: patterns of the coarse grid carry its aliasing, which the atomistic
sum does not, and a network trained on them learned it and misread the atoms' patterns.

>>> from braggscope.identify.patterns import PATTERN_CLASSES, simulate_pattern
>>> p = simulate_pattern(3)
>>> p.expected.shape, PATTERN_CLASSES[p.label] in PATTERN_CLASSES
((64, 64, 64), True)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from braggscope._validate import check_vector
from braggscope.errors import ConfigError
from braggscope.physics import wrap_phase
from braggscope.simulate.planar import SplitDislocation, twin_shares_reflection
from braggscope.simulate import (REFLECTIONS, Detector, SmoothStrain, StackingFault, TwinBoundary,
                                 atomistic_amplitude, circumradius, continuum_intensity, fcc_atoms, measure,
                                 orthogonal_q_basis, random_crystal, random_defects, simulate_sample)

__all__ = ["PATTERN_CLASSES", "POSITION_BINS", "PATTERN_SHAPE", "MIN_CONTRAST", "Pattern", "defect_contrast",
           "invisible_defects", "invisible_text", "format_vector", "relative_depth", "simulate_pattern",
           "detector_counts", "TEST_SEED", "VALIDATION_SEED"]

PATTERN_CLASSES = ("perfect", "dislocation", "loop", "stacking_fault", "twin")
POSITION_BINS = ("centre", "middle", "surface")  # a dislocation's distance from the centre / the crystal's reach: < 1/3, < 2/3, ≥ 2/3
PATTERN_SHAPE = (64, 64, 64)
OBJECT_SHAPE = (32, 32, 32)
MIN_CONTRAST = 0.5  # [rad] the phase contrast below which a defect leaves no mark (as identify.data)
VALIDATION_SEED = 500_000  # calibration examples: seeds ≥ this
TEST_SEED = 1_000_000  # held-out examples: seeds ≥ this; training never sees them
_N111 = ((1, 1, 1), (1, 1, -1), (1, -1, 1), (-1, 1, 1))
_FCC_FAMILIES = {  # [a] one vector of each ± pair
    "dislocations": [np.array(v) / 2 for v in ((1, 1, 0), (1, -1, 0), (1, 0, 1), (1, 0, -1), (0, 1, 1), (0, 1, -1))],
    "shockley_partials": [np.array(v) / 6 for n in _N111 for v in
                          ((n[0], n[1], -2 * n[2]), (n[0], -2 * n[1], n[2]), (-2 * n[0], n[1], n[2]))],
    "frank_loops": [np.array(n) / 3 for n in _N111]}
_DEFECT_KIND = {"dislocation": ("dislocation", "split_dislocation"), "loop": ("loop",),
                "stacking_fault": ("stacking_fault",), "twin": ("twin",)}


@dataclass(frozen=True)
class Pattern:
    """One labelled pattern.

    Attributes
    ----------
    expected : (64, 64, 64) ndarray of float32
        The noiseless intensity, normalised to sum 1, Bragg peak at index 32 (64 · finer and
        32 · finer for a finer grid, :func:`simulate_pattern`).
    label : int
        Index in PATTERN_CLASSES of the visible defect kind (0: none visible).
    invisible : bool
        The crystal holds a defect that the reflection does not show (G·b = 0, G·R ∈ 2πℤ, shared twin).
    position : int
        For one visible dislocation, its index in POSITION_BINS; else -1.
    hkl : tuple
    material : str
    size : float
        [nm] Inscribed diameter of the crystal.
    defects : list of dict
        The simulator's ground-truth entries.
    """

    expected: np.ndarray
    label: int
    invisible: bool
    position: int
    hkl: tuple
    material: str
    size: float
    defects: list


def defect_contrast(defect, g_vector, hkl) -> float:
    """[rad] The largest phase contrast `defect` shows at the Bragg vector `g_vector` [1/nm]
    (sample frame): |G·b| for a dislocation or loop (the largest of a split dislocation's
    partials), the wrapped |G·R| of a fault or its bounding loop's |G·b|, π for a twin whose
    domain goes dark at `hkl` and 0 for one that shares it; smooth fields count as 0."""
    g = np.asarray(g_vector, float)
    if isinstance(defect, TwinBoundary):
        return float(np.pi * (1 - defect.amplitude_factor(hkl)))
    if isinstance(defect, StackingFault):
        return max(abs(float(wrap_phase(g @ defect.loop.burgers))), abs(float(g @ defect.loop.burgers)))
    if isinstance(defect, SplitDislocation):
        return max(abs(float(g @ p.burgers)) for p in (defect.leading, defect.trailing))
    burgers = getattr(defect, "burgers", None)
    return 0.0 if burgers is None else abs(float(g @ burgers))


def invisible_defects(hkl) -> dict:
    """The fcc defects the reflection `hkl` cannot show (crystal frame, vectors in units of a).

    'dislocations' (perfect a/2<110>), 'shockley_partials' (a/6<112>: split dislocations and the
    bounds of Shockley faults) and 'frank_loops' (a/3<111>): the Burgers vectors b with G·b = 0,
    so no phase winds around the line. 'fault_planes': the {111} planes whose intrinsic fault
    (R ≡ a/3<111>) gives G·R ∈ 2πℤ, no phase jump across it (its bounding partial may still
    show). 'twin_planes': the {111} twins whose domain also scatters into `hkl`. A defect in these
    lists leaves the pattern of a perfect crystal, so a 'perfect' verdict at `hkl` rules it out
    only after a second reflection that shows it."""
    h = np.asarray(check_vector(hkl, "hkl", nonzero=True), float)
    out = {name: [tuple(float(x) for x in b) for b in vectors if abs(h @ b) < 1e-9]
           for name, vectors in _FCC_FAMILIES.items()}
    out["fault_planes"] = [n for n in _N111 if round(h @ n) % 3 == 0]
    out["twin_planes"] = [n for n in _N111 if twin_shares_reflection(hkl, n)]
    return out


def format_vector(v) -> str:
    """A crystal vector [a] as the field writes it: (0.5, -0.5, 0) → 'a/2[1-10]', (1, 1, 1) → '(111)'."""
    v = np.asarray(v, float)
    for n in (1, 2, 3, 6):
        if np.allclose(v * n, np.round(v * n)):
            digits = "".join(str(int(x)) for x in np.round(v * n))
            return f"({digits})" if n == 1 else f"a/{n}[{digits}]"
    raise ValueError(f"{v} is not a low-index crystal vector")


_FAMILY_NAMES = {"dislocations": "dislocations b =", "shockley_partials": "Shockley partials b =",
                 "frank_loops": "Frank loops b =", "fault_planes": "faults on", "twin_planes": "twins on"}


def invisible_text(hkl, invisible) -> str:
    """One line naming the defects the reflection `hkl` cannot show (`invisible`:
    :func:`invisible_defects`), or saying that the reflection was not given."""
    if invisible is None:
        return "reflection not given: the defects it cannot show (G·b = 0, G·R ∈ 2πℤ) are not listed"
    listed = [f"{_FAMILY_NAMES[k]} {', '.join(format_vector(v) for v in vs)}" for k, vs in invisible.items() if vs]
    return (f"invisible at {tuple(int(v) for v in hkl)} (G·b = 0, G·R ∈ 2πℤ), so not ruled out: "
            + ("; ".join(listed) if listed else "none of the fcc dislocations, loops, faults and twins"))


def relative_depth(dislocation, crystal) -> float:
    """A straight (or split) dislocation's distance from the crystal centre over the crystal's
    reach in that direction: 0 through the centre, 1 on the surface."""
    line = dislocation.leading if isinstance(dislocation, SplitDislocation) else dislocation
    foot = line.position - (line.position @ line.line) * line.line
    distance = float(np.linalg.norm(foot))
    if distance < 1e-9:
        return 0.0
    return distance / float(crystal.shape.radial_extent((foot / distance)[:, None])[0])


def _draw(rng, size):
    """Crystal, defects, reflection and the class drawn for one pattern."""
    crystal = random_crystal(rng, size=size)
    kind = PATTERN_CLASSES[rng.integers(len(PATTERN_CLASSES))]
    defects = []
    if kind == "dislocation":
        defects = random_defects(crystal, rng, kinds=_DEFECT_KIND[kind], count=(1, 1 + (rng.uniform() < 0.3)),
                                 depth=0.9)
    elif kind != "perfect":
        defects = random_defects(crystal, rng, kinds=_DEFECT_KIND[kind], count=(1, 1))
    if rng.uniform() < (0.5 if kind == "perfect" else 0.3):  # smooth strain: perfect is not strain-free
        defects.append(crystal.smooth_strain(amplitude=rng.uniform(0.005, 0.03), wavelength=rng.uniform(60, 200),
                                             rng=int(rng.integers(1 << 30))))
    hkl = tuple(int(v) for v in REFLECTIONS[rng.integers(len(REFLECTIONS))])
    return crystal, kind, defects, hkl


def _labels(crystal, kind, defects, hkl):
    g = crystal.g_vector(hkl)
    lattice_defects = [d for d in defects if not isinstance(d, SmoothStrain)]
    seen = [defect_contrast(d, g, hkl) >= MIN_CONTRAST for d in lattice_defects]
    label = PATTERN_CLASSES.index(kind) if any(seen) else 0
    visible_lines = [d for d, s in zip(lattice_defects, seen) if s]
    position = -1
    if kind == "dislocation" and len(visible_lines) == 1:
        depth = relative_depth(visible_lines[0], crystal)
        position = min(int(depth * len(POSITION_BINS)), len(POSITION_BINS) - 1)
    return label, not all(seen), position


def simulate_pattern(seed, *, model="continuum", size=(30.0, 200.0), finer=1) -> Pattern:
    """The labelled noiseless pattern of `seed`: a random crystal of inscribed diameter in `size`
    [nm] with one random defect kind, at a random low-index reflection.

    `model` 'continuum' transforms the voxel object (the training data); 'atomistic' sums the
    displaced fcc atoms on the same q-grid (finufft; keep `size` below about 50 nm: millions of
    atoms), so that split partials, Frank loops' fractional G·b and the lattice's discreteness
    are in the pattern the way they are in a measurement.

    `finer` (an integer, or one per axis) samples the same q-range on a grid that many times
    finer: the pattern has 64 · finer pixels and `finer` times the oversampling along that axis,
    as a scan with smaller pixels, a longer detector distance or a finer rocking step measures
    it. The crystal and its labels are those of `seed` whatever `finer` is."""
    finer = np.broadcast_to(np.asarray(finer, int), (len(PATTERN_SHAPE),))
    if np.any(finer < 1):
        raise ConfigError(f"finer must be ≥ 1 per axis, got {tuple(finer)}")
    shape = tuple(int(n * f) for n, f in zip(PATTERN_SHAPE, finer))
    rng = np.random.default_rng(seed)
    crystal, kind, defects, hkl = _draw(rng, size)
    voxel = 2 * circumradius(crystal.shape) / (rng.uniform(0.6, 0.85) * OBJECT_SHAPE[0])
    if model == "atomistic":
        q_basis = orthogonal_q_basis(PATTERN_SHAPE, voxel) / finer  # columns: the q-step per axis
        amp = atomistic_amplitude(fcc_atoms(crystal, defects), g_vector=crystal.g_vector(hkl), q_basis=q_basis,
                                  shape=shape)
        intensity = amp.real ** 2 + amp.imag ** 2
    elif model == "continuum":
        # the object sampled twice finer and its transform cut to the window: without the aliasing of
        # a coarse voxel grid, which a network learns and the atoms do not have
        sample = simulate_sample(crystal, defects, shape=tuple(2 * n for n in OBJECT_SHAPE), voxel_size=voxel / 2,
                                 hkl=hkl)
        full = continuum_intensity(sample.obj, shape=tuple(2 * n for n in shape), workers=1)
        intensity = full[tuple(slice(n // 2, n // 2 + n) for n in shape)]
    else:
        raise ConfigError(f"unknown diffraction model {model!r}; use 'continuum' or 'atomistic'")
    label, invisible, position = _labels(crystal, kind, defects, hkl)
    expected = (intensity / intensity.sum()).astype(np.float32)
    inscribed = 2 * float(crystal.shape.radial_extent(np.eye(3)).min())
    return Pattern(expected=expected, label=label, invisible=invisible, position=position, hkl=hkl,
                   material=crystal.material.name, size=inscribed, defects=[d.describe() for d in defects])


def detector_counts(expected, photons, rng=None):
    """Counts and mask of a measurement of the pattern `expected` with `photons` in total, by
    the simulator's detector (:func:`braggscope.simulate.measure`): Poisson noise, and at random
    a Maxipix chip gap (half of the patterns) and a parasitic alien (one in five)."""
    rng = np.random.default_rng(rng)
    gaps = "maxipix" if rng.uniform() < 0.5 else "none"
    offset = tuple(int(v) for v in rng.integers(20, 44, size=2))
    detector = Detector(photons=float(photons), gaps=gaps, gap_offset=offset, aliens=int(rng.uniform() < 0.2))
    m = measure(expected, detector, rng=rng)
    return m.intensity, m.mask
