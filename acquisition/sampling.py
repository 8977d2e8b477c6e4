"""The physics of a BCDI scan design: how many photons a crystal sends into one detector pixel,
the sampling conditions of the detector plane and of the rocking curve, the photons that the
edge of the measured window needs, saturation, beam time and dose, and the visibility rule
that picks a reflection. These give the planner its hard constraints and its first design.

Units: lengths in nm, angles in deg, energy in keV, detector distance in m, pixel size in µm,
times in s. Atomic form factors f0(q) (Waasmaier & Kirfel 1995), the anomalous terms f', f''
(Chantler) and the photo-absorption coefficient (Elam) come from xraydb.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
from scipy import integrate

from braggscope._validate import check_choice, check_positive, check_vector
from braggscope.errors import ConfigError
from braggscope.geometry import Geometry, wavelength_nm
from braggscope.materials import get_material

__all__ = ["Instrument", "Scan", "Design", "R_E", "structure_factor", "debye_waller", "scattering_strength",
           "sphere_volume", "two_theta", "scan_geometry", "reference_scan", "pixel_rate", "peak_count_rate",
           "edge_count_rate", "oversampling", "distance_for_oversampling", "step_for_oversampling",
           "min_distance_for_count_rate", "beam_time", "fluence", "dose", "efficiency", "reflection_problem",
           "violations", "MIN_OVERSAMPLING", "MIN_EDGE_PHOTONS", "visible", "rank_reflections", "formula_design",
           "DEFAULT_SCAN"]

R_E = 2.8179403262e-6  # [nm] classical electron radius
_H_PLANCK = 6.62607015e-34  # [J s]
_K_BOLTZMANN = 1.380649e-23  # [J/K]
_ATOMIC_MASS_UNIT = 1.66053906660e-27  # [kg]
_KEV = 1.602176634e-16  # [J]
MIN_OVERSAMPLING = 2.0  # Sayre/Miao: the pattern must be sampled at least twice its Nyquist rate
# [photons per pixel and frame] the least mean count at the detector window's edge: below it the outer
# window is noise and the resolution it promises is not measured. The value is a choice (a quarter of the
# formula design's one photon), set after a few trials on the simulated beamline where scans with a tenth of
# a photon there reconstructed differently from one noise draw to the next; no benchmark measures it.
MIN_EDGE_PHOTONS = 0.25


@dataclass(frozen=True, kw_only=True)
class Instrument:
    """The beamline and detector a scan is planned for (defaults: a coherent undulator beam
    focused on the crystal and a Maxipix-like photon-counting detector).

    Attributes
    ----------
    energy : float
        [keV] Photon energy.
    pixel_size : float
        [µm] Detector pixel size.
    flux_density : float
        [photons/s/nm²] Coherent flux density on the crystal (1e9 ph/s on 1 µm² is 1e3).
    max_count_rate : float
        [photons/s/pixel] Count rate above which a pixel loses counts (saturation).
    counter_depth : float or None
        [counts] Most counts one pixel holds in one frame (None: the detector sums internally).
    frame_overhead : float
        [s] Dead time per rocking point (motor move, settling, read-out).
    scan_overhead : float
        [s] Fixed time per scan (alignment on the peak, start-up).
    reflection_change : float
        [s] Time to move to another reflection and find its peak.
    crop : int
        [pixels] Detector pixels reconstructed along each detector axis (the region of interest).
    rocking_axis : {'x', 'y'}
        'x': vertical scattering plane (σ polarisation); 'y': horizontal (π polarisation).
    max_two_theta : float
        [deg] Largest scattering angle the detector arm reaches.
    temperature : float
        [K] Sample temperature (thermal vibration).
    """

    energy: float = 9.0
    pixel_size: float = 55.0
    flux_density: float = 100.0
    max_count_rate: float = 2e5
    counter_depth: float | None = None
    frame_overhead: float = 0.2
    scan_overhead: float = 5.0
    reflection_change: float = 300.0
    crop: int = 48
    rocking_axis: str = "x"
    max_two_theta: float = 120.0
    temperature: float = 295.0

    def __post_init__(self):
        for name in ("energy", "pixel_size", "flux_density", "max_count_rate", "max_two_theta", "temperature"):
            check_positive(getattr(self, name), name)
        if min(self.frame_overhead, self.scan_overhead, self.reflection_change) < 0:
            raise ConfigError("overheads must be ≥ 0 s")
        if int(self.crop) < 8:
            raise ConfigError(f"`crop` must be at least 8 pixels, got {self.crop}")
        check_choice(self.rocking_axis, "rocking_axis", {"x", "y"})

    def saturation_counts(self, count_time) -> float:
        """[counts] Most counts one pixel records in a frame of `count_time` [s] before it
        saturates: the count-rate limit over the frame, or the counter depth if smaller."""
        limit = self.max_count_rate * count_time
        return limit if self.counter_depth is None else min(limit, self.counter_depth)


@dataclass(frozen=True, kw_only=True)
class Scan:
    """One rocking scan.

    Attributes
    ----------
    rocking_range : float
        [deg] Total rocking range (frames × step).
    rocking_step : float
        [deg] Angle between frames.
    count_time : float
        [s] Exposure per frame.
    detector_distance : float
        [m] Sample to detector.
    hkl : tuple of int
        Reflection.
    """

    rocking_range: float
    rocking_step: float
    count_time: float
    detector_distance: float
    hkl: tuple = (1, 1, 1)

    def __post_init__(self):
        for name in ("rocking_range", "rocking_step", "count_time", "detector_distance"):
            check_positive(getattr(self, name), name)
        object.__setattr__(self, "hkl", tuple(int(v) for v in check_vector(self.hkl, "hkl", nonzero=True)))

    @property
    def frames(self) -> int:
        """Number of rocking points (even, at least 8)."""
        return max(8, 2 * int(round(self.rocking_range / self.rocking_step / 2)))

    def as_dict(self) -> dict:
        return {**dataclasses.asdict(self), "hkl": list(self.hkl), "frames": self.frames}


# a typical beamline default: 1° over 64 frames, 1 s per frame, detector at 0.5 m
DEFAULT_SCAN = Scan(rocking_range=1.0, rocking_step=1.0 / 64, count_time=1.0, detector_distance=0.5)


@dataclass(frozen=True)
class Design:
    """A scan and, for each of its parameters, the condition that set it."""

    scan: Scan
    reasons: dict = field(default_factory=dict)


def _s(material, hkl) -> float:
    """[1/nm] sin θ / λ = |G| / 4π of reflection hkl."""
    return 1.0 / (2 * get_material(material).d_spacing(hkl))


def two_theta(material, hkl, energy) -> float:
    """[deg] Scattering angle of reflection hkl at `energy` [keV] (180° if unreachable)."""
    sin_theta = _s(material, hkl) * wavelength_nm(energy)
    return float(2 * np.degrees(np.arcsin(sin_theta))) if sin_theta < 1 else 180.0


def structure_factor(material, hkl, energy) -> complex:
    """[electrons] Structure factor of the fcc cell, 4 (f0 + f' + i f'') for unmixed hkl, 0 for
    mixed (forbidden) ones, at `energy` [keV]."""
    import xraydb

    mat = get_material(material)
    h = np.abs(np.asarray(check_vector(hkl, "hkl", nonzero=True), dtype=int)) % 2
    if not (np.all(h == 0) or np.all(h == 1)):
        return 0j
    f0 = float(xraydb.f0(mat.name, _s(mat, hkl) / 10)[0])  # xraydb takes sin θ/λ in 1/Å
    ev = check_positive(energy, "energy", "keV") * 1e3
    return 4 * complex(f0 + xraydb.f1_chantler(mat.name, ev), xraydb.f2_chantler(mat.name, ev))


def debye_waller(material, hkl, temperature=295.0) -> float:
    """Thermal attenuation of the intensity, exp(-2 B s²) with s = sin θ/λ and the Debye-model
    B = 6h²T/(m k_B Θ²) [φ(x) + x/4], x = Θ/T, φ(x) = (1/x) ∫₀ˣ t/(eᵗ - 1) dt."""
    import xraydb

    mat = get_material(material)
    t = check_positive(temperature, "temperature", "K")
    x = mat.debye_temperature / t
    phi = integrate.quad(lambda u: u / np.expm1(u) if u > 0 else 1.0, 0, x)[0] / x
    mass = xraydb.atomic_mass(mat.name) * _ATOMIC_MASS_UNIT
    b = 6 * _H_PLANCK**2 * t / (mass * _K_BOLTZMANN * mat.debye_temperature**2) * (phi + x / 4) * 1e18  # [nm²]
    return float(np.exp(-2 * b * _s(mat, hkl) ** 2))


def scattering_strength(material, hkl, instrument: Instrument) -> float:
    """[1/nm⁴] r_e² |F|² e^{-2M} P / V_cell²: the photons per second per steradian per unit of
    flux density are this times |∫ρ|², ρ the crystal's shape function in nm³ (V² at the peak)."""
    mat = get_material(material)
    polarisation = 1.0 if instrument.rocking_axis == "x" else \
        float(np.cos(np.radians(two_theta(mat, hkl, instrument.energy))) ** 2)
    f = structure_factor(mat, hkl, instrument.energy)
    cell = mat.lattice_parameter**3
    return R_E**2 * abs(f) ** 2 * debye_waller(mat, hkl, instrument.temperature) * polarisation / cell**2


def sphere_volume(size) -> float:
    """[nm³] Volume of the sphere of diameter `size` [nm], an upper bound of a crystal's volume
    whose largest extent is `size`."""
    return float(np.pi / 6 * check_positive(size, "crystal size", "nm") ** 3)


def scan_geometry(scan: Scan, instrument: Instrument, material) -> Geometry:
    """The rocking-scan geometry of `scan` at the Bragg angle of its reflection."""
    return Geometry.for_reflection(d_spacing=get_material(material).d_spacing(scan.hkl), energy=instrument.energy,
                                   detector_distance=scan.detector_distance, pixel_size=instrument.pixel_size,
                                   rocking_step=scan.rocking_step, rocking_axis=instrument.rocking_axis)


def reference_scan(hkl) -> Scan:
    """The scan the scaling laws start from: detector at 1 m, 0.01° steps, 1 s per frame."""
    return Scan(rocking_range=1.0, rocking_step=0.01, count_time=1.0, detector_distance=1.0, hkl=hkl)


def pixel_rate(scan: Scan, instrument: Instrument, material) -> float:
    """[photons/s per nm⁶] Count rate of a pixel per |∫ρ e^{-iq·r} d³r|² (ρ the crystal's shape
    function): Φ r_e² |F|² e^{-2M} P ΔΩ / V_cell², ΔΩ the pixel's solid angle."""
    solid_angle = (instrument.pixel_size * 1e-6 / scan.detector_distance) ** 2
    return instrument.flux_density * scattering_strength(material, scan.hkl, instrument) * solid_angle


def peak_count_rate(scan: Scan, instrument: Instrument, material, volume) -> float:
    """[photons/s] Count rate of the pixel at the Bragg peak for a crystal of `volume` [nm³]:
    Φ r_e² |F|² e^{-2M} P V² ΔΩ / V_cell² (kinematical, the whole crystal in the coherent beam)."""
    return pixel_rate(scan, instrument, material) * check_positive(volume, "volume", "nm³") ** 2


def edge_count_rate(scan: Scan, instrument: Instrument, material, size, volume) -> float:
    """[photons/s] Mean count rate at the edge of the detector window (crop/2 pixels from the
    peak), from Porod's envelope of a compact crystal of diameter D: ⟨|F(q)|²⟩/|F(0)|² ≈
    9/(2 (qD/2)⁴) for qD ≫ 1 (the sphere's envelope)."""
    geo = scan_geometry(scan, instrument, material)
    q_edge = instrument.crop / 2 * np.linalg.norm(geo.q_basis()[:, 1])
    x = max(q_edge * check_positive(size, "crystal size", "nm") / 2, 1.0)
    return peak_count_rate(scan, instrument, material, volume) * 4.5 / x**4


def oversampling(scan: Scan, instrument: Instrument, material, size) -> np.ndarray:
    """Oversampling ratio (rocking, detector row, detector column) of a crystal of largest
    extent `size` [nm]: each axis's real-space period over the size (≥ 2 needed)."""
    return scan_geometry(scan, instrument, material).oversampling(size)


def distance_for_oversampling(sigma, instrument: Instrument, material, hkl, size) -> float:
    """[m] Detector distance at which the detector plane (the worse of rows and columns) is
    oversampled `sigma` times (σ grows in proportion to the distance)."""
    return float(sigma / oversampling(reference_scan(hkl), instrument, material, size)[1:].min())


def step_for_oversampling(sigma, instrument: Instrument, material, hkl, size) -> float:
    """[deg] Rocking step at which the rocking direction is oversampled `sigma` times (σ falls
    in inverse proportion to the step: Δq = |Q| Δω)."""
    return float(0.01 * oversampling(reference_scan(hkl), instrument, material, size)[0] / sigma)


def min_distance_for_count_rate(instrument: Instrument, material, hkl, volume, *, margin=0.8) -> float:
    """[m] Shortest distance at which the Bragg peak stays below `margin` × the detector's
    maximum count rate (the rate falls as 1/distance²)."""
    rate = peak_count_rate(reference_scan(hkl), instrument, material, volume)
    return float(np.sqrt(rate / (margin * instrument.max_count_rate)))


def beam_time(scan: Scan, instrument: Instrument, *, current_hkl=None) -> float:
    """[s] Frames × (count time + frame overhead) + scan overhead, plus the reflection change
    when `scan.hkl` is not the reflection the crystal is aligned on (`current_hkl`)."""
    change = current_hkl is not None and tuple(current_hkl) != tuple(scan.hkl)
    return scan.frames * (scan.count_time + instrument.frame_overhead) + instrument.scan_overhead + \
        (instrument.reflection_change if change else 0.0)


def fluence(scan: Scan, instrument: Instrument) -> float:
    """[photons/nm²] Photons that hit the crystal per unit area while counting."""
    return instrument.flux_density * scan.frames * scan.count_time


def dose(scan: Scan, instrument: Instrument, material) -> float:
    """[Gy] Absorbed dose of the scan: fluence × photon energy × μ_photo/ρ (Elam's tables)."""
    import xraydb

    mu_rho = xraydb.mu_elam(get_material(material).name, instrument.energy * 1e3, kind="photo")  # [cm²/g]
    return float(fluence(scan, instrument) * 1e14 * instrument.energy * _KEV * mu_rho * 1e3)


def efficiency(error, time) -> float:
    """J = log10(error² × beam time) with the error in nm and the time in s: lower is better, and
    in the shot-noise limit counting longer does not change it."""
    return float(np.log10(max(error, 1e-12) ** 2 * time))


def reflection_problem(material, hkl, instrument: Instrument) -> str | None:
    """Why reflection hkl cannot be measured (forbidden in fcc, or beyond the detector arm), or None."""
    if abs(structure_factor(material, hkl, instrument.energy)) == 0:
        return f"reflection {tuple(hkl)} is forbidden in fcc (mixed indices)"
    angle = two_theta(material, hkl, instrument.energy)
    if angle > instrument.max_two_theta:
        return f"2θ = {angle:.1f}° of {tuple(hkl)} is beyond the detector arm's {instrument.max_two_theta}°"
    return None


def violations(scan: Scan, instrument: Instrument, material, size, *, volume=None, budget=None,
               current_hkl=None) -> list[str]:
    """The hard constraints `scan` breaks for a crystal of largest extent `size` [nm] and
    `volume` [nm³] (default: the sphere of that size, an upper bound): oversampling < 2 along
    any axis, a peak above the count-rate limit or the counter depth, fewer than
    MIN_EDGE_PHOTONS photons per pixel at the window's edge, a beam time over `budget` [s], a
    forbidden or unreachable reflection. Empty if none."""
    volume = sphere_volume(size) if volume is None else volume
    mat = get_material(material)
    problem = reflection_problem(mat, scan.hkl, instrument)
    if problem:
        return [problem]
    out = []
    sigma = oversampling(scan, instrument, mat, size)
    for axis, s in zip(("rocking", "detector rows", "detector columns"), sigma):
        if s < MIN_OVERSAMPLING:
            out.append(f"oversampling {s:.2f} < 2 along the {axis}")
    rate = peak_count_rate(scan, instrument, mat, volume)
    if rate > instrument.max_count_rate:
        out.append(f"peak count rate {rate:.3g} ph/s above the detector's {instrument.max_count_rate:.3g}")
    if instrument.counter_depth is not None and rate * scan.count_time > instrument.counter_depth:
        out.append(f"peak {rate * scan.count_time:.3g} counts per frame above the counter depth "
                   f"{instrument.counter_depth:.3g}")
    edge = edge_count_rate(scan, instrument, mat, size, volume) * scan.count_time
    if edge < MIN_EDGE_PHOTONS:
        out.append(f"{edge:.2g} photons per pixel at the window's edge, under {MIN_EDGE_PHOTONS}: the photon "
                   "budget does not reach the window's resolution")
    if budget is not None and beam_time(scan, instrument, current_hkl=current_hkl) > budget:
        out.append(f"beam time {beam_time(scan, instrument, current_hkl=current_hkl):.0f} s over the budget "
                   f"{budget:.0f} s")
    return out


def visible(hkl, *, burgers=None, fault=None, tolerance=1e-6) -> bool:
    """The visibility rule: a dislocation of Burgers vector `burgers` [a, crystal frame] shows
    no phase winding where G·b = 0; a planar fault of vector `fault` [a] shows no phase jump
    where G·R is a multiple of 2π (h·R an integer)."""
    h = np.asarray(check_vector(hkl, "hkl", nonzero=True), dtype=float)
    if burgers is not None and abs(h @ np.asarray(burgers, float)) < tolerance:
        return False
    if fault is not None:
        n = h @ np.asarray(fault, float)
        if abs(n - np.round(n)) < tolerance:
            return False
    return burgers is not None or fault is not None


def rank_reflections(candidates, *, burgers=(), faults=(), material="Pt", energy=9.0) -> list[dict]:
    """Order `candidates` (hkl) by how many of the suspected defects they show (dislocations of
    Burgers vectors `burgers`, faults of vectors `faults`, in units of a), then by |G| (smaller
    |G| scatters more: form factor, Debye–Waller). Each entry: hkl, shows (count), hidden
    (the defects with G·b = 0 or G·R ∈ 2πℤ), g_norm [1/nm], strength [relative]."""
    mat = get_material(material)
    out = []
    for hkl in candidates:
        hidden = [("b", tuple(b)) for b in burgers if not visible(hkl, burgers=b)] + \
                 [("R", tuple(r)) for r in faults if not visible(hkl, fault=r)]
        strength = abs(structure_factor(mat, hkl, energy)) ** 2 * debye_waller(mat, hkl)
        out.append({"hkl": tuple(int(v) for v in hkl), "shows": len(burgers) + len(faults) - len(hidden),
                    "hidden": hidden, "g_norm": float(2 * np.pi / mat.d_spacing(hkl)), "strength": strength})
    top = max((o["strength"] for o in out), default=1.0) or 1.0
    for o in out:
        o["strength"] = o["strength"] / top
    return sorted(out, key=lambda o: (-o["shows"], o["g_norm"]))


def formula_design(size, material, hkl, instrument: Instrument = Instrument(), *, volume=None, sigma=3.0,
                   edge_photons=1.0, budget=None, current_hkl=None, count_time_range=(0.01, 10.0)) -> Design:
    """The scan the sampling formulas give with no search.

    The detector distance oversamples the detector plane `sigma` times, or more where the peak
    would saturate the detector; the rocking step oversamples the rocking curve `sigma` times;
    the rocking range gives the rocking direction the resolution of the detector window; the
    count time puts `edge_photons` photons per pixel at the window's edge (Porod's envelope),
    within `count_time_range` [s] and the `budget` [s] of beam time.

    Parameters
    ----------
    size : float
        [nm] Largest extent of the crystal.
    material, hkl
        The crystal and the reflection to measure.
    volume : float, optional
        [nm³] Crystal volume (default: the sphere of diameter `size`, an upper bound).

    Returns
    -------
    Design
        The scan and, per parameter, the condition that set it.
    """
    volume = sphere_volume(size) if volume is None else check_positive(volume, "volume", "nm³")
    reasons = {}
    d_sigma = distance_for_oversampling(sigma, instrument, material, hkl, size)
    d_rate = min_distance_for_count_rate(instrument, material, hkl, volume)
    distance = max(d_sigma, d_rate)
    reasons["detector_distance"] = (f"oversampling {sigma:g} of the detector plane" if d_sigma >= d_rate else
                                    f"saturation: the peak stays under 80 % of {instrument.max_count_rate:.3g} ph/s "
                                    f"(oversampling {sigma * distance / d_sigma:.1f})")
    step = step_for_oversampling(sigma, instrument, material, hkl, size)
    reasons["rocking_step"] = f"oversampling {sigma:g} of the rocking curve"
    sigma_detector = sigma * distance / d_sigma
    frames = max(8, 2 * int(round(instrument.crop * sigma / sigma_detector / 2)))
    reasons["rocking_range"] = (f"resolution: {frames} frames reach the q-range of the {instrument.crop}-pixel "
                                "detector window")
    probe = Scan(rocking_range=frames * step, rocking_step=step, count_time=1.0, detector_distance=distance, hkl=hkl)
    t = edge_photons / edge_count_rate(probe, instrument, material, size, volume)
    reasons["count_time"] = f"{edge_photons:g} photon per pixel at the window's edge (Porod's q⁻⁴ envelope)"
    lo, hi = count_time_range
    if not lo <= t <= hi:
        reasons["count_time"] = f"the count-time limit {'min' if t < lo else 'max'} ({lo if t < lo else hi} s)"
    t = float(np.clip(t, lo, hi))
    if instrument.counter_depth is not None:
        depth_time = instrument.counter_depth / peak_count_rate(probe, instrument, material, volume)
        if t > depth_time:
            t, reasons["count_time"] = depth_time, "the counter depth at the peak"
    scan = dataclasses.replace(probe, count_time=t)
    if budget is not None and beam_time(scan, instrument, current_hkl=current_hkl) > budget:
        fixed = beam_time(dataclasses.replace(scan, count_time=0.0 + 1e-9), instrument, current_hkl=current_hkl)
        t = (budget - fixed) / scan.frames
        if t < lo:
            raise ConfigError(f"a budget of {budget:.0f} s cannot pay for {scan.frames} frames with their overheads "
                              f"({fixed:.0f} s); raise the budget")
        scan, reasons["count_time"] = dataclasses.replace(scan, count_time=float(t)), f"the budget of {budget:.0f} s"
    return Design(scan=scan, reasons=reasons)
