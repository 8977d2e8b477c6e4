"""A simulated beamline: a scan of a known crystal, measured in the detector frame, reconstructed
with the engine, and scored against the truth.

The counts are absolute: photons per pixel = flux density × r_e² |F|² e^{-2M} P / V_cell² ×
|∫ρ e^{-iq·r} d³r|² × pixel solid angle × count time, so the distance, the step, the count time
and the reflection change the data the way they do at a beamline. The object is sampled on a
grid `refine` times finer than the reconstruction's (same field of view), so the detector window
holds the crystal's true Fourier transform, not an aliased one; the reconstruction is then
compared with the truth point-sampled on its own grid, and what its resolution cannot carry
counts as error.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import scipy.fft
from scipy import ndimage

from braggscope.errors import ConfigError, SupportError
from braggscope.metrics import compare
from braggscope.simulate import Crystal, Detector, measure
from braggscope.simulate.bcdi import align_to_geometry
from braggscope.simulate.dislocations import DislocationLoop, StraightDislocation
from braggscope.simulate.sample import object_at
from braggscope.retrieval import combine_runs, default_chain, reconstruct, remove_phase_ramp
from braggscope.retrieval.postprocess import centring_shift
from braggscope.strain.field import strain_field

from .sampling import Instrument, Scan, beam_time, dose, efficiency, pixel_rate, scan_geometry, violations

__all__ = ["ScanResult", "SimulatedBeamline", "efficiency", "random_beamline"]


@dataclass(frozen=True, kw_only=True)
class ScanResult:
    """What one simulated scan gave.

    Attributes
    ----------
    displacement_error : float
        [nm] RMS of the reconstructed displacement along G minus the truth's, inside the
        crystal, amplitude-weighted, after the twin, shift, global phase and phase ramp.
    strain_error : float
        RMS of the strain along G minus the truth's (mean difference removed) in the crystal's
        interior.
    resolution : float
        [nm] Half period where the PRTF of the best two runs falls below 1/e (grid voxels scaled by the
        cube root of the voxel volume).
    dislocation_recall : float or None
        Share of the visible dislocation cores (G·b ≠ 0) that a phase vortex of the
        reconstruction finds within 2 voxels; None where the crystal has none.
    beam_time : float
        [s] Counting, overheads and any reflection change.
    dose : float
        [Gy] Absorbed dose.
    saturated_pixels : int
        Pixels above the count-rate limit in any frame (masked).
    oversampling : tuple of float
        True oversampling per axis: the grid over the crystal's extent in voxels.
    photons : float
        Counts in the window.
    llk : float
        Poisson LLK of the scored run.
    failed : bool
        The reconstruction broke down (its support collapsed or exploded); the errors are then
        those of a random phase (π/√3 rad RMS) and the resolution is NaN.
    """

    displacement_error: float
    strain_error: float
    resolution: float
    dislocation_recall: float | None
    beam_time: float
    dose: float
    saturated_pixels: int
    oversampling: tuple
    photons: float
    llk: float
    failed: bool = False

    @property
    def efficiency(self) -> float:
        """J = log10(displacement_error² [nm²] × beam_time [s])."""
        return efficiency(self.displacement_error, self.beam_time)

    def as_dict(self) -> dict:
        return {**dataclasses.asdict(self), "efficiency": self.efficiency}


@dataclass(frozen=True)
class _Truth:
    obj: np.ndarray  # on the reconstruction grid
    points: np.ndarray  # [nm] crystal-frame voxel centres (3, *shape)
    voxel: np.ndarray  # [nm] lab-frame voxel edges (columns)
    g_lab: np.ndarray
    g_crystal: np.ndarray


class SimulatedBeamline:
    """Scans of one crystal with its defects: ``beamline(scan)`` measures, reconstructs and scores.

    Parameters
    ----------
    crystal : Crystal
        The crystal in its own frame; each reflection turns it (the smallest rotation) so that
        G meets the detector's Q, defects and all.
    defects : sequence
        Defects built with `crystal`'s methods.
    instrument : Instrument
    current_hkl : tuple, optional
        Reflection the crystal is aligned on; another one costs the reflection change.
    cycles, runs : int
        The chain (:func:`~braggscope.retrieval.default_chain`) and its random starts; the run
        of lowest free LLK is scored, the PRTF is that of the best two.
    refine : int
        Fine sampling of the simulated object per reconstruction voxel and axis.
    seed : int
        Seed of every noise draw; call k of the beamline draws from (seed, k).
    """

    def __init__(self, crystal: Crystal, defects=(), *, instrument: Instrument = Instrument(), current_hkl=None,
                 cycles=400, runs=4, refine=2, seed=0):
        self.crystal, self.defects, self.instrument = crystal, list(defects), instrument
        directions = np.random.default_rng(0).normal(size=(3, 400))
        extent = crystal.shape.radial_extent(directions / np.linalg.norm(directions, axis=0))
        self.true_size = float(2 * np.max(extent))  # [nm] largest extent
        self.current_hkl = current_hkl
        self.cycles, self.runs, self.refine, self.seed = int(cycles), int(runs), int(refine), int(seed)
        self.calls = 0

    @property
    def material(self):
        return self.crystal.material

    def _turned(self, scan):
        """The rotation R (crystal frame → lab) that puts G_hkl on the geometry's Q."""
        geo = scan_geometry(scan, self.instrument, self.material)
        turned = align_to_geometry(self.crystal, scan.hkl, geo)
        return geo, turned.orientation @ self.crystal.orientation.T

    def truth(self, scan: Scan, *, fine=False) -> _Truth:
        """The object on the reconstruction grid of `scan` (or on the `refine`-times finer grid)."""
        geo, rot = self._turned(scan)
        shape = (scan.frames, self.instrument.crop, self.instrument.crop)
        voxel = geo.object_voxel(shape)
        m = self.refine if fine else 1
        grid = np.stack(np.meshgrid(*[np.arange(m * n) - m * (n // 2) for n in shape], indexing="ij"))
        lab = np.tensordot(voxel / m, grid, axes=1)
        points = np.tensordot(rot.T, lab, axes=1)
        h = abs(np.linalg.det(voxel / m)) ** (1 / 3)
        obj = object_at(self.crystal, self.defects, points, hkl=scan.hkl, voxel_size=h)
        g = self.crystal.g_vector(scan.hkl)
        return _Truth(obj=obj, points=points, voxel=voxel, g_lab=rot @ g, g_crystal=g)

    def expected_counts(self, scan: Scan) -> np.ndarray:
        """[photons] Noiseless counts of `scan` in the detector window (frames, rows, columns)."""
        fine = self.truth(scan, fine=True)
        shape = (scan.frames, self.instrument.crop, self.instrument.crop)
        amplitude = scipy.fft.fftshift(scipy.fft.fftn(scipy.fft.ifftshift(fine.obj)))
        window = tuple(slice(big // 2 - n // 2, big // 2 - n // 2 + n) for big, n in zip(amplitude.shape, shape))
        cell_volume = abs(np.linalg.det(fine.voxel / self.refine))  # [nm³] Σ → ∫ d³r
        power = np.abs(amplitude[window] * cell_volume) ** 2
        return (power * pixel_rate(scan, self.instrument, self.material) * scan.count_time).astype(np.float32)

    def measure(self, scan: Scan, rng=None):
        """Counts and mask of `scan` (Poisson noise; pixels above the count-rate limit masked)."""
        expected = self.expected_counts(scan).astype(float)
        limit = self.instrument.saturation_counts(scan.count_time)
        m = measure(expected, Detector(photons=float(expected.sum()), saturation=limit), rng=rng)
        return m.intensity, m.mask

    def __call__(self, scan: Scan) -> ScanResult:
        """Measure `scan`, reconstruct it and score it against the truth."""
        rng = np.random.default_rng((self.seed, self.calls))
        self.calls += 1
        intensity, mask = self.measure(scan, rng)
        truth = self.truth(scan)
        try:
            result = reconstruct(intensity, default_chain(self.cycles), mask=mask, n_runs=self.runs, rng=rng)
        except SupportError:
            return self._failure(scan, truth, intensity, mask)
        solution = combine_runs(result, intensity, mask, keep=1)  # the best run by free LLK
        resolution = combine_runs(result, intensity, mask, keep=2).prtf["resolution"]  # PRTF of the best two
        return self._score(scan, solution, resolution, truth, intensity, mask)

    def _failure(self, scan, truth, intensity, mask) -> ScanResult:
        return ScanResult(displacement_error=np.pi / np.sqrt(3) / float(np.linalg.norm(truth.g_lab)),
                          strain_error=float("nan"), resolution=float("nan"), dislocation_recall=None,
                          beam_time=beam_time(scan, self.instrument, current_hkl=self.current_hkl),
                          dose=dose(scan, self.instrument, self.material), saturated_pixels=int(mask.sum()),
                          oversampling=self._oversampling(truth), photons=float(intensity.sum()),
                          llk=float("nan"), failed=True)

    @staticmethod
    def _oversampling(truth):
        """The grid over the crystal's extent in voxels, per axis."""
        inside = np.abs(truth.obj) > 0.5
        extent = [np.ptp(np.flatnonzero(inside.any(axis=tuple(a for a in range(3) if a != k)))) + 1 for k in range(3)]
        return tuple(float(n / e) for n, e in zip(inside.shape, extent))

    def _score(self, scan, solution, resolution, truth, intensity, mask) -> ScanResult:
        inside = np.abs(truth.obj) > 0.5
        shift = centring_shift(inside)  # centred like the solution (combine_runs)
        reference, inside = (np.roll(a, shift, axis=(0, 1, 2)) for a in (truth.obj, inside))
        points = np.roll(truth.points, shift, axis=(1, 2, 3))
        reference, _ = remove_phase_ramp(reference, inside)
        aligned, errors = compare(solution.obj, reference)
        g_norm = float(np.linalg.norm(truth.g_lab))
        voxel_edge = abs(np.linalg.det(truth.voxel)) ** (1 / 3)
        return ScanResult(
            displacement_error=errors["phase_rms"] / g_norm,
            strain_error=self._strain_error(aligned, reference, inside, truth),
            resolution=resolution * voxel_edge,
            dislocation_recall=self._recall(aligned, inside, points, truth.g_crystal, voxel_edge),
            beam_time=beam_time(scan, self.instrument, current_hkl=self.current_hkl),
            dose=dose(scan, self.instrument, self.material),
            saturated_pixels=int(mask.sum()),
            oversampling=self._oversampling(truth),
            photons=float(intensity.sum()), llk=float(solution.llk))

    def _strain_error(self, aligned, reference, inside, truth) -> float:
        interior = ndimage.binary_erosion(inside, iterations=2)
        if interior.sum() < 8:
            interior = inside
        kwargs = dict(g_vector=truth.g_lab, voxel_size=truth.voxel, order=2)
        try:
            got = strain_field(aligned, inside, **kwargs).strain
            want = strain_field(reference, inside, **kwargs).strain
        except ConfigError:  # a crystal a few voxels thin has no interior gradient
            return float("nan")
        diff = (got - want)[interior & np.isfinite(got) & np.isfinite(want)]
        return float(np.sqrt(np.mean((diff - diff.mean()) ** 2))) if diff.size else float("nan")

    def _recall(self, aligned, inside, points, g_crystal, voxel_edge):
        """Share of visible core voxels (G·b ≠ 0; `points` [nm] the crystal-frame voxel centres)
        with a phase vortex of `aligned` within 2 voxels."""
        from braggscope.identify.vortices import vortex_lines

        lines = [d for d in self.defects if isinstance(d, (StraightDislocation, DislocationLoop))
                 and abs(g_crystal @ d.burgers) > 0.5]
        if not lines:
            return None
        core = np.zeros(inside.shape, bool)
        for d in lines:
            core |= d.distance(points) <= 1.5 * voxel_edge
        core &= ndimage.binary_erosion(inside, iterations=2)
        if not core.any():
            return None
        found, _ = vortex_lines(aligned, inside)
        near = ndimage.binary_dilation(found, iterations=2)
        return float(np.sum(core & near) / core.sum())

    def check(self, scan: Scan) -> list[str]:
        """The hard constraints `scan` breaks for the true crystal (see
        :func:`~braggscope.acquisition.sampling.violations`)."""
        truth = self.truth(scan)
        volume = float(np.sum(np.abs(truth.obj)) * abs(np.linalg.det(truth.voxel)))
        return violations(scan, self.instrument, self.material, self.true_size, volume=volume)


def random_beamline(seed, *, size=(150.0, 250.0), material="Pt", dislocation_share=0.3,
                    instrument: Instrument = Instrument(), **kwargs) -> SimulatedBeamline:
    """A beamline on a random crystal of the kind BCDI measures: faceted, inscribed diameter
    uniform in `size` [nm], with a smooth strain field (displacement RMS 0.01–0.03 nm over
    wavelengths of half the size and more) and, in `dislocation_share` of the draws, one
    dislocation. Everything is drawn from `seed`; `kwargs` go to :class:`SimulatedBeamline`."""
    from braggscope.simulate import random_crystal, random_defects

    rng = np.random.default_rng(seed)
    crystal = random_crystal(rng, size=size, materials=(material,))
    diameter = float(np.mean(size))
    defects = [crystal.smooth_strain(rng.uniform(0.01, 0.03), diameter / 2, rng=int(rng.integers(2**31)))]
    if rng.uniform() < dislocation_share:
        defects += random_defects(crystal, rng, kinds=("dislocation",), count=(1, 1))
    return SimulatedBeamline(crystal, defects, instrument=instrument, seed=seed, **kwargs)
