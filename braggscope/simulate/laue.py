"""Laue microdiffraction: a white beam, a crystal (or a grain of a polycrystal), a 2-D detector.

Frame (the one of LaueTools and of the BM32 station, so that orientation matrices and the five
calibration parameters mean the same here and there): x along the incident beam, z vertical
up (towards the detector above the sample, 2θ ≈ 90°), y = z × x (horizontal, in the plane of
the synchrotron orbit, the beam's polarisation). Lengths on the detector in mm, pixel positions
(x along the detector's columns, y along its rows) in pixels from the calibration's centre.

Kinematics: reciprocal vector G [1/nm] (|G| = 2π/d) of the local lattice; the reflection picks
k = 2π/λ = -|G|²/(2 G_x) from the spectrum (it needs G_x < 0) and sends kf = k x̂ + G. A
hydrostatic strain scales G, so it changes the energy but not kf's direction; only the
deviatoric part of the strain and the rotations move the spots.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from .._validate import check_positive
from ..errors import ConfigError
from ..geometry import HC_KEV_NM
from ..physics import FWHM_PER_SIGMA
from .polycrystal import dislocation_density
from .structure import CrystalStructure, get_structure

__all__ = ["LaueDetector", "Spectrum", "Beam", "LaueSpots", "LauePattern", "LaueFrame", "laue_spots",
           "spot_positions", "node_pixels", "laue_pattern", "record", "atomistic_spot", "reflections_within",
           "spot_intensity", "BEAM", "POLARISATION"]

BEAM = np.array([1.0, 0.0, 0.0])  # incident beam direction
POLARISATION = np.array([0.0, 1.0, 0.0])  # electric field of the (horizontally polarised) beam
ROD_SAMPLES = 32  # nodes along a stacking-fault streak (its Lorentzian's quantiles)


@dataclass(frozen=True, kw_only=True)
class LaueDetector:
    """A flat 2-D detector, placed by the five usual calibration parameters.

    Attributes
    ----------
    distance : float
        [mm] dd: distance from the sample point to the detector plane, along its normal.
    xcen, ycen : float
        [pixel] Where the normal from the sample meets the detector.
    xbet : float
        [deg] Tilt of the detector's normal from z towards the beam (about y).
    xgam : float
        [deg] Rotation of the pixel axes in the detector plane.
    pixel_size : float
        [mm] Square pixels.
    shape : (int, int)
        (rows, columns) of the frame.

    The default is a BM32-like sCMOS frame (2016 × 2018 pixels of 73.4 µm) 77 mm above the sample.
    """

    distance: float = 77.0
    xcen: float = 1009.0
    ycen: float = 1008.0
    xbet: float = 0.0
    xgam: float = 0.0
    pixel_size: float = 0.0734
    shape: tuple = (2016, 2018)

    def __post_init__(self):
        check_positive(self.distance, "detector distance", "mm")
        check_positive(self.pixel_size, "pixel size", "mm")
        if len(self.shape) != 2 or min(self.shape) < 1:
            raise ConfigError(f"detector shape must be (rows, columns), got {self.shape}")

    @property
    def axes(self) -> np.ndarray:
        """Unit vectors (3, 3) in the lab frame: the plane's normal n (towards the detector) and
        the directions of increasing pixel x and y."""
        b, g = np.radians(self.xbet), np.radians(self.xgam)
        normal = np.array([np.sin(b), 0.0, np.cos(b)])
        along_x, along_y = np.array([0.0, -1.0, 0.0]), np.array([np.cos(b), 0.0, -np.sin(b)])
        return np.stack([normal, np.cos(g) * along_x - np.sin(g) * along_y,
                         np.sin(g) * along_x + np.cos(g) * along_y])

    def project(self, directions, source=None):
        """Pixel (x, y) where rays from `source` [mm] (3,) or (..., 3) along `directions` (..., 3)
        meet the detector; NaN for rays that go away from it."""
        normal, ex, ey = self.axes
        u = np.asarray(directions, dtype=float)
        p = np.zeros(3) if source is None else np.asarray(source, dtype=float)
        cos_n = u @ normal
        reach = (self.distance - p @ normal) / np.where(cos_n > 1e-9, cos_n, np.nan)
        hit = p + reach[..., None] * u - self.distance * normal
        return self.xcen + hit @ ex / self.pixel_size, self.ycen + hit @ ey / self.pixel_size

    def directions(self, x, y, source=None) -> np.ndarray:
        """Unit vectors (..., 3) from `source` [mm] to the pixels (x, y)."""
        normal, ex, ey = self.axes
        x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
        point = (self.distance * normal + ((x - self.xcen) * self.pixel_size)[..., None] * ex
                 + ((y - self.ycen) * self.pixel_size)[..., None] * ey)
        if source is not None:
            point = point - np.asarray(source, dtype=float)
        return point / np.linalg.norm(point, axis=-1, keepdims=True)

    def on_frame(self, x, y) -> np.ndarray:
        """True where (x, y) lies on the frame (pixel centres at integers, edges at ±0.5)."""
        rows, cols = self.shape
        return (x >= -0.5) & (x < cols - 0.5) & (y >= -0.5) & (y < rows - 0.5)


@dataclass(frozen=True)
class Spectrum:
    """The white beam's spectral flux [photons per keV, relative] between `emin` and `emax` [keV].

    The shape is a bending magnet's, (E/E_c) ∫_{E/E_c}^∞ K_{5/3} per unit bandwidth (Jackson,
    *Classical Electrodynamics* 14.6), divided by E for a flux per keV, cut to the band by the
    optics; ESRF's 0.85 T bending magnets at 6 GeV give E_c ≈ 20 keV."""

    emin: float = 5.0
    emax: float = 25.0
    critical_energy: float = 20.0

    def __post_init__(self):
        check_positive(self.emin, "emin", "keV")
        if not self.emax > self.emin:
            raise ConfigError(f"the band must have emax > emin, got {self.emin}–{self.emax} keV")

    def __call__(self, energy_kev) -> np.ndarray:
        """Relative flux per keV at `energy_kev`, 0 outside the band (the band's peak is 1)."""
        e = np.asarray(energy_kev, dtype=float)
        grid = np.linspace(self.emin, self.emax, 256)
        peak = np.max(_g1(grid / self.critical_energy) / grid)
        inside = (e >= self.emin) & (e <= self.emax)
        return np.where(inside, _g1(e / self.critical_energy) / np.where(inside, e, 1.0) / peak, 0.0)


@lru_cache(maxsize=1)
def _g1_table():
    """G1(y) = y ∫_y^∞ K_{5/3}(s) ds on a log grid of y from 10⁻⁴ to 30 (scipy's quad and kv)."""
    from scipy.integrate import quad
    from scipy.special import kv

    y = np.geomspace(1e-4, 30.0, 600)
    return np.log(y), np.log([t * quad(lambda s: kv(5 / 3, s), t, np.inf)[0] for t in y])


def _g1(y):
    """G1(y), interpolated log-log in :func:`_g1_table` (smooth: well under 10⁻³ relative)."""
    log_y, log_g1 = _g1_table()
    return np.exp(np.interp(np.log(np.maximum(y, 1e-4)), log_y, log_g1))


@dataclass(frozen=True)
class LaueSpots:
    """Laue reflections of one crystal: arrays over spots.

    Attributes: ``hkl`` (n, 3) Miller indices; ``energy`` [keV]; ``x``, ``y`` [pixel];
    ``two_theta``, ``chi`` [deg] (LaueTools' angles: 2θ between kf and the beam, χ the azimuth of
    kf about it, 0 towards z); ``g`` (n, 3) [1/nm] the lab-frame reciprocal vectors;
    ``intensity`` (relative, see :func:`spot_intensity`)."""

    hkl: np.ndarray
    energy: np.ndarray
    x: np.ndarray
    y: np.ndarray
    two_theta: np.ndarray
    chi: np.ndarray
    g: np.ndarray
    intensity: np.ndarray

    def __len__(self):
        return len(self.energy)


@lru_cache(maxsize=64)
def reflections_within(structure: CrystalStructure, g_max) -> np.ndarray:
    """Miller indices (n, 3) of every allowed reflection with 0 < |G| ≤ `g_max` [1/nm] (read-only;
    remembered for the last 64 structures and limits)."""
    basis = structure.direct_basis
    limits = np.ceil(g_max * np.linalg.norm(basis, axis=0) / (2 * np.pi)).astype(int)
    axes = [np.arange(-m, m + 1) for m in limits]
    hkl = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    g = np.linalg.norm(structure.g_vectors(hkl), axis=1)
    hkl = hkl[(g > 0) & (g <= g_max)]
    hkl = hkl[structure.allowed(hkl)]
    hkl.flags.writeable = False
    return hkl


def _kinematics(g_lab):
    """Energy [keV], unit kf (..., 3), 2θ and χ [deg] of lab-frame reciprocal vectors (..., 3)."""
    g2 = np.sum(g_lab * g_lab, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        k = np.where(g_lab[..., 0] < 0, -g2 / (2 * g_lab[..., 0]), np.nan)
    kf = k[..., None] * BEAM + g_lab
    uf = kf / k[..., None]
    two_theta = np.degrees(np.arccos(np.clip(uf[..., 0], -1, 1)))
    chi = np.degrees(np.arctan2(uf[..., 1], uf[..., 2]))
    return HC_KEV_NM * k / (2 * np.pi), uf, two_theta, chi


def node_pixels(g, detector: LaueDetector, source=None):
    """Pixel (x, y) where the white beam diffracts off reciprocal-space nodes `g` (..., 3) [rad/nm,
    lab frame], wherever they are (a lattice's or a point of a streak); NaN where g points downstream."""
    _, uf, _, _ = _kinematics(np.asarray(g, dtype=float))
    return detector.project(uf, source)


def spot_intensity(structure: CrystalStructure, hkl, energy, uf, spectrum: Spectrum, *, f2=None) -> np.ndarray:
    """Relative integrated intensity of Laue reflections (kinematical, per unit crystal volume).

    I ∝ Φ(λ) λ⁴ |F|² P / (V_c² sin²θ), the white-beam integrated intensity (the Lorentz factor
    1/(2 sin²θ) of a fixed crystal in a continuous spectrum), with the flux per unit wavelength
    Φ(λ) = Φ(E) E/λ and the polarisation factor P = 1 − (ε̂·k̂f)² of the horizontally polarised
    beam; absorption is the caller's (it depends on where the diffracting volume lies). `f2`:
    |F|² if already known (it changes little with the small energy shifts of a distorted lattice)."""
    if f2 is None:
        f2 = np.abs(structure.structure_factor(hkl, energy)) ** 2
    lam = HC_KEV_NM / np.asarray(energy)
    sin_theta2 = (1 - uf[..., 0]) / 2  # sin²θ = (1 − cos 2θ)/2
    polarisation = 1 - (uf @ POLARISATION) ** 2
    flux_per_wavelength = spectrum(energy) * energy / lam
    return flux_per_wavelength * lam**4 * f2 * polarisation / (structure.cell_volume**2 * sin_theta2)


def spot_positions(structure, orientation, hkl, detector: LaueDetector, *, strain=None, source=None):
    """Pixel (x, y) and energy [keV] of the reflections `hkl` (n, 3) of a crystal of `orientation`
    (crystal → lab) with the lab-frame distortion `strain` (see :func:`laue_spots`), whether or
    not they fall in the band or on the frame (NaN where G points downstream)."""
    structure = get_structure(structure)
    transform = np.asarray(orientation, dtype=float)
    if strain is not None:
        transform = np.linalg.inv(np.eye(3) + np.asarray(strain, dtype=float)).T @ transform
    energy, uf, _, _ = _kinematics(structure.g_vectors(hkl) @ transform.T)
    x, y = detector.project(uf, source)
    return x, y, energy


def laue_spots(structure, orientation, detector: LaueDetector, *, spectrum: Spectrum | None = None,
               strain=None, source=None) -> LaueSpots:
    """The Laue spots of one crystal that reach `detector`.

    Parameters
    ----------
    structure : CrystalStructure or str
    orientation : (3, 3) ndarray
        U: crystal Cartesian frame → lab frame (LaueTools' orientation matrix).
    detector : LaueDetector
    spectrum : Spectrum, optional
        The band (default 5–25 keV).
    strain : (3, 3) ndarray, optional
        Distortion β = ∇u of the lattice in the lab frame (symmetric part: strain; antisymmetric:
        rotation); the reciprocal vectors become (I + β)^{-T} G.
    source : (3,) ndarray, optional
        [mm] Where in the sample the diffracting volume lies (default the calibration's origin).
    """
    structure = get_structure(structure)
    spectrum = spectrum or Spectrum()
    u = np.asarray(orientation, dtype=float)
    if u.shape != (3, 3) or not np.allclose(u @ u.T, np.eye(3), atol=1e-6):
        raise ConfigError("orientation must be a 3×3 rotation matrix (crystal → lab frame)")
    k_max = 2 * np.pi * spectrum.emax / HC_KEV_NM
    slack = 1.0 if strain is None else 1.0 + 2 * float(np.abs(strain).max())
    hkl = reflections_within(structure, 2 * k_max * slack)
    transform = u if strain is None else np.linalg.inv(np.eye(3) + np.asarray(strain, dtype=float)).T @ u
    g = structure.g_vectors(hkl) @ transform.T
    energy, uf, two_theta, chi = _kinematics(g)
    keep = (energy >= spectrum.emin) & (energy <= spectrum.emax)
    x, y = detector.project(uf[keep], source)
    on = detector.on_frame(x, y)
    idx = np.flatnonzero(keep)[on]
    intensity = spot_intensity(structure, hkl[idx], energy[idx], uf[idx], spectrum)
    return LaueSpots(hkl[idx], energy[idx], x[on], y[on], two_theta[idx], chi[idx], g[idx], intensity)


@dataclass(frozen=True)
class Beam:
    """The focused white beam on the sample.

    Attributes
    ----------
    fwhm : float
        [nm] Full width at half maximum of the (round, Gaussian) focal spot, normal to the beam.
    incidence : float
        [deg] Angle between the beam and the sample surface (BM32: 40°, the sample tilted so that
        2θ = 90° reflections reach the detector above).
    spectrum : Spectrum
    """

    fwhm: float = 300.0
    incidence: float = 40.0
    spectrum: Spectrum = field(default_factory=Spectrum)

    @property
    def axis_in_sample(self) -> np.ndarray:
        """The beam's direction in the sample frame (z, y, x): down into the sample at the incidence."""
        return self.sample_to_lab.T @ BEAM

    @property
    def sample_to_lab(self) -> np.ndarray:
        """(3, 3) matrix taking sample-frame (z, y, x) components to lab (x, y, z) ones: sample z
        is the surface normal (-sin α, 0, cos α), sample x runs downstream along the surface
        (cos α, 0, sin α) and sample y = -y_lab completes the right-handed (z, y, x) frame."""
        a = np.radians(self.incidence)
        return np.stack([[-np.sin(a), 0.0, np.cos(a)], [0.0, -1.0, 0.0], [np.cos(a), 0.0, np.sin(a)]], axis=1)


@dataclass(frozen=True)
class LauePattern:
    """The noiseless Laue pattern of a polycrystal and its ground truth.

    Attributes
    ----------
    image : (rows, cols) ndarray
        Expected intensity per pixel, relative (see :func:`spot_intensity`; volumes in nm³).
    spots : list of dict
        Per reflection of each grain (and twin domain) that reaches the detector: grain, domain,
        hkl, intensity-weighted mean energy [keV] and position (x, y) [pixel], and its intensity.
    grains : list of dict
        Per grain: :meth:`Grain.describe`, its illuminated volume [nm³], its dislocation density
        [1/m²] and, if lit, the mean strain its spots see ('mean_strain', sample frame: the
        symmetric distortion averaged with the beam's and the absorption's weights).
    """

    image: np.ndarray
    spots: list
    grains: list


def _splat(image, x, y, weight):
    """Add `weight` at sub-pixel positions (x, y) to `image` by bilinear interpolation."""
    rows, cols = image.shape
    x0, y0 = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    fx, fy = x - x0, y - y0
    flat = image.reshape(-1)
    for dx, dy, w in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        xi, yi = x0 + dx, y0 + dy
        ok = (xi >= 0) & (xi < cols) & (yi >= 0) & (yi < rows)
        if ok.any():
            index = yi[ok] * cols + xi[ok]
            low = index.min()
            added = np.bincount(index - low, (weight * w)[ok])
            flat[low:low + len(added)] += added


def _candidates(structure, orientation_lab, detector, spectrum, margin=0.05):
    """Reflections (hkl, |F|² at their energy) whose spot from an undistorted domain of
    `orientation_lab` falls within `margin` of the band and of the frame."""
    k_max = 2 * np.pi * spectrum.emax * (1 + margin) / HC_KEV_NM
    hkl = reflections_within(structure, 2 * k_max)
    energy, uf, _, _ = _kinematics(structure.g_vectors(hkl) @ orientation_lab.T)
    keep = (energy >= spectrum.emin * (1 - margin)) & (energy <= spectrum.emax * (1 + margin))
    x, y = detector.project(uf[keep])
    rows, cols = detector.shape
    near = (x > -margin * cols) & (x < cols * (1 + margin)) & (y > -margin * rows) & (y < rows * (1 + margin))
    hkl, energy = hkl[keep][near], energy[keep][near]
    return hkl, np.abs(structure.structure_factor(hkl, energy)) ** 2


def _rod_nodes(g0, faults, samples=ROD_SAMPLES):
    """The nodes `g0` (m, 3) spread along each fault family's streak (:meth:`FaultedStacking.rod`)
    at `samples` quantiles of its Lorentzian: (reflection index (n,), node (n, 3), weight (n,)),
    the weights of each reflection summing to 1; a reflection the faults leave sharp keeps its node."""
    index, nodes, weight = np.arange(len(g0)), g0, np.ones(len(g0))
    quantiles = np.tan(np.pi * ((np.arange(samples) + 0.5) / samples - 0.5))
    for fault in faults:
        centre, hwhm = fault.rod(nodes)
        streak = hwhm > 1e-9 * np.linalg.norm(nodes, axis=-1)
        offsets = centre[streak, None] + hwhm[streak, None] * quantiles
        index = np.concatenate([index[~streak], np.repeat(index[streak], samples)])
        weight = np.concatenate([weight[~streak], np.repeat(weight[streak], samples) / samples])
        spread = nodes[streak, None, :] + offsets[..., None] * fault.normal
        nodes = np.concatenate([nodes[~streak], spread.reshape(-1, 3)])
    return index, nodes, weight


def _domain_spots(structure, orientation_lab, beta_lab, sources_mm, weights, depths, detector, beam, image,
                  faults=()):
    """Splat the spots of one orientation domain's voxels onto `image`; return per reflection
    (hkl, Σw, Σw·E, Σw·x, Σw·y). `beta_lab`: (n, 3, 3) distortions; `weights`: beam × volume;
    `faults`: FaultedStacking in the lab frame, which streak the nodes (:func:`_rod_nodes`)."""
    spectrum = beam.spectrum
    hkl, f2 = _candidates(structure, orientation_lab, detector, spectrum)
    sums = np.zeros((len(hkl), 4))
    if not len(hkl):
        return hkl, sums
    normal = beam.sample_to_lab[:, 0]
    sin_in = np.sin(np.radians(beam.incidence))
    reflection, g0, share = _rod_nodes(structure.g_vectors(hkl) @ orientation_lab.T, faults)
    chunk = max(1, 400_000 // len(g0))
    for start in range(0, len(weights), chunk):
        part = slice(start, start + chunk)
        transform = np.linalg.inv(np.eye(3) + beta_lab[part]).transpose(0, 2, 1)
        g = np.einsum("vij,mj->vmi", transform, g0)
        energy, uf, _, _ = _kinematics(g)
        x, y = detector.project(uf, sources_mm[part, None, :])
        cos_out = uf @ normal
        ok = (energy >= spectrum.emin) & (energy <= spectrum.emax) & detector.on_frame(x, y) & (cos_out > 0)
        v, n = np.nonzero(ok)
        m = reflection[n]
        e, u = energy[v, n], uf[v, n]
        path = depths[part][v] * (1 / sin_in + 1 / cos_out[v, n])
        w = (weights[part][v] * share[n] * np.exp(-structure.linear_attenuation(e) * path)
             * spot_intensity(structure, hkl[m], e, u, spectrum, f2=f2[m]))
        _splat(image, x[v, n], y[v, n], w)
        for col, value in enumerate((w, w * e, w * x[v, n], w * y[v, n])):
            sums[:, col] += np.bincount(m, value, minlength=len(hkl))
    return hkl, sums


def _seen_strain(beta, profile, depth, structure, beam):
    """Mean symmetric distortion (3, 3) of voxels with distortions `beta` (n, 3, 3), weighted as
    the spots weight them: beam `profile` × absorption at 15 keV over `depth` [nm] in and out
    (exit at 90° − incidence to the surface, the detector above)."""
    a = np.radians(beam.incidence)
    path = depth * (1 / np.sin(a) + 1 / np.cos(a))
    w = profile * np.exp(-float(structure.linear_attenuation(15.0)) * path)
    return np.tensordot(w / w.sum(), 0.5 * (beta + np.swapaxes(beta, -1, -2)), axes=1)


def laue_pattern(polycrystal, detector: LaueDetector, beam: Beam | None = None) -> LauePattern:
    """The noiseless Laue pattern of the illuminated part of `polycrystal`.

    Every voxel in the beam is a small crystal with its grain's (or twin domain's) orientation
    and its own distortion β = ∇u (the grain's strain plus the fields of its defects, sampled at
    the voxel centre); each sends its reflections to where its local lattice puts them, from its
    own place in the sample, weighted by the beam profile, the voxel volume, the absorption on
    the way in and out, and the reflection's intensity (:func:`spot_intensity`). The spots'
    shapes are the sum: rotations spread them, curvature (geometrically necessary dislocations)
    streaks them, a twin adds the twin's own spots."""
    beam = beam or Beam()
    to_lab = beam.sample_to_lab
    points = polycrystal.points.reshape(3, -1)
    grain_of = polycrystal.grain_map.reshape(-1)
    r_lab = to_lab @ points
    off_axis = r_lab[1:]  # distance from the beam axis (x̂): the y and z lab components
    sigma = beam.fwhm / FWHM_PER_SIGMA
    profile = np.exp(-np.sum(off_axis**2, axis=0) / (2 * sigma**2))
    lit = (profile > 1e-3) & (grain_of >= 0)
    image = np.zeros(detector.shape)
    spots, grains = [], []
    volume = polycrystal.voxel_size**3
    box = np.array(polycrystal.grain_map.shape) * polycrystal.voxel_size
    for gi, grain in enumerate(polycrystal.grains):
        sel = np.flatnonzero(lit & (grain_of == gi))
        truth = grain.describe() | {"grain": gi, "illuminated_volume_nm3": float(profile[sel].sum() * volume),
                                    "dislocation_density_m2": dislocation_density(grain.defects, box)}
        grains.append(truth)
        if not len(sel):
            continue
        pts = points[:, sel]
        beta = grain.distortion(pts)
        truth["mean_strain"] = _seen_strain(beta, profile[sel], -pts[0], grain.structure, beam).tolist()
        beta_lab = to_lab @ beta @ to_lab.T
        domain_of = grain.domains(pts)
        for domain in np.unique(domain_of):
            d = domain_of == domain
            u_lab = to_lab @ grain.domain_orientation(int(domain))
            hkl, sums = _domain_spots(grain.structure, u_lab, beta_lab[d], r_lab[:, sel][:, d].T * 1e-6,
                                      profile[sel][d] * volume, -pts[0, d], detector, beam, image,
                                      faults=[f.rotated(to_lab) for f in grain.faults])
            for h, (w, we, wx, wy) in zip(hkl, sums):
                if w > 0:
                    spots.append({"grain": gi, "domain": int(domain), "hkl": [int(v) for v in h],
                                  "energy_kev": we / w, "x": wx / w, "y": wy / w, "intensity": w})
    return LauePattern(image, spots, grains)


@dataclass(frozen=True)
class LaueFrame:
    """A recorded Laue frame: ``counts`` (rows, cols) uint16, ``saturated`` (bool, the pixels at
    the detector's ceiling) and the ``expected`` counts (float) before noise."""

    counts: np.ndarray
    saturated: np.ndarray
    expected: np.ndarray


def record(pattern: LauePattern, *, peak_counts=20000.0, background=50.0, read_noise=2.0, psf=0.8,
           saturation=65535, seed=0) -> LaueFrame:
    """Record `pattern` on the detector: the point-spread function (Gaussian, `psf` [pixel] σ),
    intensities scaled so that the brightest pixel expects `peak_counts`, a smooth `background`
    [counts] (fluorescence and Compton scattering: a random tilted plane within ±30 % of it),
    Poisson noise, Gaussian read noise of `read_noise` [counts] and the ceiling `saturation`."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    blurred = gaussian_filter(pattern.image, psf) if psf > 0 else pattern.image
    peak = blurred.max()
    if not peak > 0:
        raise ConfigError("the pattern is empty: no reflection of the illuminated grains reaches the detector")
    rows, cols = pattern.image.shape
    yy, xx = np.mgrid[0:rows, 0:cols]
    tilt = rng.uniform(-0.3, 0.3, 2)
    smooth = background * (1 + tilt[0] * (2 * yy / rows - 1) + tilt[1] * (2 * xx / cols - 1))
    expected = blurred * (peak_counts / peak) + smooth
    counts = rng.poisson(expected) + rng.normal(0, read_noise, expected.shape)
    counts = np.clip(np.rint(counts), 0, saturation)
    return LaueFrame(counts.astype(np.uint16), counts >= saturation, expected)


def atomistic_spot(atoms, structure, orientation, hkl, detector: LaueDetector, beam: Beam | None = None, *,
                   half_width=None, samples=96, eps=1e-6):
    """The Laue spot `hkl` of a small crystal from the kinematical sum over its atoms.

    Each pixel of a (2·`half_width` + 1)² window around the spot (by default 8 widths λ/D of the
    spot of a crystal of extent D, 8 to 64 pixels) sees one direction k̂f, so over
    the white beam it collects q = k (k̂f − x̂) along a line through reciprocal space; the
    amplitude A(q) = Σ_j f_j e^{-i q·r_j} is summed on `samples` points of each pixel's line
    across the node (±4 widths 2π/D of a crystal of extent D), every pixel at once by a type-3
    NUFFT (finufft), and I = Σ_k |A|² Φ(E) ΔE P ΔΩ. Shape broadening, stacking-fault and
    twin streaks come out of the atoms themselves.

    Parameters
    ----------
    atoms : (3, M) ndarray
        [nm] Atom positions in the sample frame ((z, y, x), e.g. :func:`~braggscope.simulate.fcc_atoms`).
    structure : CrystalStructure or str
        Gives the atoms' form factor (one element) at the spot's energy.
    orientation : (3, 3) ndarray
        Crystal → sample frame, that of the lattice the atoms were cut from.
    hkl : (3,) Miller indices.
    detector : LaueDetector
    beam : Beam, optional
        Its sample tilt maps the atoms to the lab frame, its spectrum weights the wavelengths.

    Returns
    -------
    window : (2·half_width + 1, 2·half_width + 1) ndarray
        Intensity per pixel [electrons² × relative flux × sr].
    origin : (int, int)
        Pixel (x, y) of the window's first column and row.
    """
    import finufft

    beam = beam or Beam()
    structure = get_structure(structure)
    to_lab = beam.sample_to_lab
    r = to_lab @ np.asarray(atoms, dtype=float)
    r = r - r.mean(axis=1, keepdims=True)
    g = structure.g_vectors(np.asarray(hkl, dtype=float)) @ (to_lab @ np.asarray(orientation, dtype=float)).T
    energy0, uf0, _, _ = _kinematics(g)
    if not np.isfinite(energy0):
        raise ConfigError(f"reflection {tuple(hkl)} cannot diffract in this orientation (G points downstream)")
    x0, y0 = (int(round(float(v))) for v in detector.project(uf0))
    extent = float(np.max(np.linalg.norm(r, axis=0))) * 2
    if half_width is None:
        width = HC_KEV_NM / energy0 / extent * detector.distance / detector.pixel_size
        half_width = int(np.clip(np.ceil(8 * width), 8, 64))
    ys, xs = np.mgrid[y0 - half_width:y0 + half_width + 1, x0 - half_width:x0 + half_width + 1]
    uf = detector.directions(xs, ys)
    path = uf - BEAM  # q = k · path
    k_node = np.sum(path * g, axis=-1) / np.sum(path * path, axis=-1)  # closest approach to G
    dk = 8 * np.pi / (extent * np.linalg.norm(path, axis=-1))  # ±4 widths of the node
    steps = np.linspace(-1, 1, samples)
    k = k_node[..., None] + dk[..., None] * steps
    q = k[..., None] * path[..., None, :]
    f = structure.structure_factor(np.asarray(hkl)[None], energy0)[0] / len(structure.basis)
    amp = finufft.nufft3d3(r[0], r[1], r[2], np.full(r.shape[1], f, dtype=np.complex128),
                           *(np.ascontiguousarray(q[..., i].ravel()) for i in range(3)), isign=-1, eps=eps)
    energy = HC_KEV_NM * k / (2 * np.pi)
    d_energy = HC_KEV_NM * dk / (2 * np.pi) * (steps[1] - steps[0])
    normal = detector.axes[0]
    reach = detector.distance / (uf @ normal)
    solid_angle = detector.pixel_size**2 * (uf @ normal) / reach**2
    polarisation = 1 - (uf @ POLARISATION) ** 2
    per_pixel = np.sum(np.abs(amp.reshape(k.shape)) ** 2 * beam.spectrum(energy), axis=-1)
    return per_pixel * d_energy * polarisation * solid_angle, (x0 - half_width, y0 - half_width)
