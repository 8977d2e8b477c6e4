"""Transmission electron micrographs of defects: two-beam diffraction contrast in the column
approximation, Fresnel contrast, the microscope's transfer function and the camera.

The same displacement fields that give the BCDI phase G·u (dislocation loops, dilatation
centres) give the electron image. A parallel beam enters a foil of thickness t along +z; in the
two-beam condition with reflection g (in the foil plane) and excitation error s, every column
(x, y) is integrated through the foil by the Howie–Whelan equations

    dφ₀/dz = -π/ξ₀' φ₀ + π (i/ξ_g - 1/ξ_g') φ_g
    dφ_g/dz = π (i/ξ_g - 1/ξ_g') φ₀ + (-π/ξ₀' + i (2π s + G·∂u/∂z)) φ_g ,

(G = 2π g, the convention of :mod:`braggscope.physics`), slice by slice with the exact 2 × 2
matrix exponential. A void is a run of slices without crystal (no coupling, no absorption) and
lacks the mean-inner-potential phase σV₀ per nm, which the defocused lens turns into Fresnel
contrast. Units: nm, nm⁻¹, kV, degrees at the interface.

>>> round(electron_wavelength(200.0) * 1e3, 3)   # pm
2.508
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .._validate import check_positive
from ..errors import ConfigError
from ..materials import get_material
from .dislocations import DislocationLoop, circular_loop_vertices
from .fields import DilatationCentre

__all__ = ["electron_wavelength", "interaction_constant", "extinction_distance", "foil_frame", "howie_whelan",
           "lens_transfer", "camera", "Microscope", "Foil", "Micrograph", "TEM_CLASSES", "micrograph", "random_micrograph",
           "MEAN_INNER_POTENTIAL", "MIN_CONTRAST", "LOOP_RIM_NM"]

_H, _M0, _E, _C = 6.62607015e-34, 9.1093837015e-31, 1.602176634e-19, 299792458.0

TEM_CLASSES = ("background", "loop", "precipitate", "cavity")

#: Least contrast |ΔI| / I (noiseless) at which an object counts as visible in the ground truth.
MIN_CONTRAST = 0.1
#: [nm] A loop's outline is its projection grown by this much (its line's contrast has a width).
LOOP_RIM_NM = 2.0

#: [V] mean inner potential of the metals (electron holography values, rounded).
MEAN_INNER_POTENTIAL = {"Cu": 20.0, "Ni": 21.0, "Au": 30.0, "Pt": 29.0, "Ag": 21.0, "Pd": 25.0}


def electron_wavelength(voltage_kv) -> float:
    """[nm] Relativistic electron wavelength λ = h / sqrt(2 m₀ e V (1 + eV / 2m₀c²))."""
    v = check_positive(voltage_kv, "voltage", "kV") * 1e3
    return float(_H / np.sqrt(2 * _M0 * _E * v * (1 + _E * v / (2 * _M0 * _C**2))) * 1e9)


def _gamma(voltage_kv):
    return 1 + _E * voltage_kv * 1e3 / (_M0 * _C**2)


def interaction_constant(voltage_kv) -> float:
    """[rad / (V nm)] σ = 2π γ m₀ e λ / h²: the phase a fast electron gains per volt and nm."""
    lam = electron_wavelength(voltage_kv) * 1e-9
    return 2 * np.pi * _gamma(voltage_kv) * _M0 * _E * lam / _H**2 * 1e-9


def extinction_distance(element, lattice_parameter, hkl, voltage_kv=200.0) -> float:
    """[nm] Two-beam extinction distance ξ_g = π V_c / (λ γ |F_g|) of an fcc metal.

    F_g = 4 f_e(s) with the electron scattering factor from the X-ray one by the Mott–Bethe
    formula, f_e(s) = 0.023934 Å (Z - f_x(s)) / s² (s = 1/2d in Å⁻¹, f_x from xraydb); no
    Debye–Waller factor. Al 111 at 100 kV gives 55.6 nm as tabulated (Hirsch et al.); the
    transition and noble metals come out 6–20 % longer than those old tables.
    """
    import xraydb

    h = np.asarray(hkl, dtype=int)
    if len(set(h % 2)) != 1:
        raise ConfigError(f"reflection {tuple(h)} is forbidden in fcc (h, k, l must be all odd or all even)")
    a = check_positive(lattice_parameter, "lattice parameter", "nm") * 10  # Å
    s = np.sqrt(h @ h) / (2 * a)
    z = xraydb.atomic_number(element)
    f_e = 0.023934 * (z - float(xraydb.f0(element, s)[0])) / s**2
    lam = electron_wavelength(voltage_kv) * 10
    return float(np.pi * a**3 / (lam * _gamma(voltage_kv) * 4 * f_e) / 10)


def foil_frame(zone, g_hkl) -> np.ndarray:
    """Rotation (3, 3) from crystal to foil coordinates: x along g, z along the beam (the zone
    axis `zone`, [uvw]). g must lie in the plane normal to the beam."""
    b = np.asarray(zone, dtype=float)
    g = np.asarray(g_hkl, dtype=float)
    if abs(b @ g) > 1e-9 * np.linalg.norm(b) * np.linalg.norm(g):
        raise ConfigError(f"g = {tuple(g_hkl)} is not perpendicular to the beam [{' '.join(map(str, zone))}]")
    x, z = g / np.linalg.norm(g), b / np.linalg.norm(b)
    return np.stack([x, np.cross(z, x), z])


def _slice_matrix_step(phi0, phig, coupling, w, dz):
    """One slice of exp(dz [[0, c], [c, i w]]) applied to (φ₀, φ_g), exact for constant c, w."""
    half = 0.5j * w
    omega = np.sqrt(coupling**2 + half**2)
    ch = np.cosh(omega * dz)
    small = np.abs(omega * dz) < 1e-6
    sh = np.where(small, dz, np.sinh(omega * dz) / np.where(small, 1, omega))
    phase = np.exp(half * dz)
    new0 = phase * (ch * phi0 + sh * (-half * phi0 + coupling * phig))
    newg = phase * (ch * phig + sh * (coupling * phi0 + half * phig))
    return new0, newg


def howie_whelan(phase_step, crystal, *, dz, xi_g, s, xi_g_abs=None, xi_0_abs=None):
    """Bright- and dark-field exit amplitudes (φ₀, φ_g) of every column.

    Parameters
    ----------
    phase_step : (ny, nx, nz) ndarray
        [rad] Increase of G·u across each slice (G·∂u/∂z · dz), wrapped to (-π, π] so that a
        stacking fault's jump G·R enters as itself.
    crystal : (ny, nx, nz) bool ndarray
        True where the slice holds crystal (False: vacuum below the foil, or a void).
    dz : float
        [nm] Slice thickness.
    xi_g : float
        [nm] Extinction distance.
    s : float or (ny, nx) ndarray
        [nm⁻¹] Excitation error (a map for bend contours).
    xi_g_abs, xi_0_abs : float
        [nm] Anomalous and normal absorption lengths ξ_g', ξ₀' (default 10 ξ_g, the usual ratio).

    Returns
    -------
    phi0, phig : (ny, nx) complex128
    """
    dz = check_positive(dz, "slice thickness", "nm")
    xi_g_abs = 10 * xi_g if xi_g_abs is None else xi_g_abs
    xi_0_abs = 10 * xi_g if xi_0_abs is None else xi_0_abs
    ny, nx, nz = phase_step.shape
    c_crystal = np.pi * (1j / xi_g - 1 / xi_g_abs)
    s = np.broadcast_to(np.asarray(s, dtype=float), (ny, nx))
    phi0 = np.ones((ny, nx), complex)
    phig = np.zeros((ny, nx), complex)
    for k in range(nz):
        inside = crystal[:, :, k]
        coupling = np.where(inside, c_crystal, 0)
        w = 2 * np.pi * s + np.where(inside, phase_step[:, :, k] / dz, 0)
        phi0, phig = _slice_matrix_step(phi0, phig, coupling, w, dz)
        damp = np.where(inside, np.exp(-np.pi * dz / xi_0_abs), 1.0)
        phi0, phig = phi0 * damp, phig * damp
    return phi0, phig


def lens_transfer(wave, pixel_nm, *, wavelength, defocus, cs_mm=1.2, aperture_mrad=None, convergence_mrad=0.1):
    """The image wave of `wave` (ny, nx) through the objective lens: Fresnel propagation by the
    defocus `defocus` [nm] (negative: under-focus) and spherical aberration Cs [mm],
    W(q) = π λ Δf q² + π/2 C_s λ³ q⁴, damped by the spatial-coherence envelope of a beam
    convergence [mrad], cut by an objective aperture [mrad] if given."""
    ny, nx = wave.shape
    qy = np.fft.fftfreq(ny, pixel_nm)[:, None]
    qx = np.fft.fftfreq(nx, pixel_nm)[None, :]
    q2 = qx**2 + qy**2
    cs = cs_mm * 1e6
    w = np.pi * wavelength * defocus * q2 + 0.5 * np.pi * cs * wavelength**3 * q2**2
    grad = 2 * np.pi * (defocus * wavelength * np.sqrt(q2) + cs * wavelength**3 * q2 ** 1.5)
    envelope = np.exp(-(convergence_mrad * 1e-3 * grad) ** 2 / 4)
    transfer = envelope * np.exp(-1j * w)
    if aperture_mrad is not None:
        transfer = transfer * (np.sqrt(q2) * wavelength <= aperture_mrad * 1e-3)
    return np.fft.ifft2(np.fft.fft2(wave) * transfer)


@dataclass(frozen=True, kw_only=True)
class Microscope:
    """Imaging conditions.

    Attributes: voltage [kV]; mode 'bright' or 'dark' field; defocus [nm] (negative: under);
    cs_mm [mm]; convergence_mrad [mrad]; dose [electrons per pixel]; psf_px [pixel] the camera's
    Gaussian blur; read_noise [electrons]; illumination_tilt, the fractional change of the
    illumination across the field (a background gradient).
    """

    voltage: float = 200.0
    mode: str = "bright"
    defocus: float = -800.0
    cs_mm: float = 1.2
    convergence_mrad: float = 0.1
    dose: float = 300.0
    psf_px: float = 0.7
    read_noise: float = 2.0
    illumination_tilt: tuple = (0.0, 0.0)


@dataclass(frozen=True, kw_only=True)
class Foil:
    """The specimen: a wedge-shaped foil of `material` in a two-beam condition.

    Attributes: material; zone [uvw] (beam direction); g (hkl, in the foil plane);
    thickness (top-left, gradient per pixel along y and x) [nm]; s0 [nm⁻¹] the excitation error
    and bend [nm⁻¹], the amplitude of its slow variation across the field (bend contours);
    bend_seed draws that variation.
    """

    material: str = "Cu"
    zone: tuple = (0, 1, 1)
    g: tuple = (2, 0, 0)
    thickness: tuple = (80.0, 0.0, 0.0)
    s0: float = 0.005
    bend: float = 0.0
    bend_seed: int = 0

    def thickness_map(self, shape):
        """[nm] Foil thickness per column."""
        t0, ty, tx = self.thickness
        y, x = np.mgrid[:shape[0], :shape[1]]
        return np.clip(t0 + ty * y + tx * x, 5.0, None)

    def excitation_error(self, shape):
        """[nm⁻¹] s per column: s0 plus a smooth random bend of amplitude `bend`."""
        if self.bend == 0:
            return np.full(shape, self.s0)
        rng = np.random.default_rng(self.bend_seed)
        y, x = np.mgrid[:shape[0], :shape[1]] / max(shape)
        ky, kx = rng.normal(0, 1.5, (2, 3))
        phase = rng.uniform(0, 2 * np.pi, 3)
        waves = sum(np.cos(2 * np.pi * (a * y + b * x) + p) for a, b, p in zip(ky, kx, phase)) / np.sqrt(1.5)
        return self.s0 + self.bend * waves


@dataclass
class Micrograph:
    """A synthetic micrograph and its ground truth.

    image : (ny, nx) float32, electrons per pixel. intensity : (ny, nx) float32, the noiseless
    image intensity (1 = the incident beam) before the camera. pixel_nm : [nm]. labels : (ny, nx) int32,
    0 background, i + 1 inside objects[i]. objects : list of dicts with 'class' (one of
    TEM_CLASSES[1:]), 'centre_px' (row, column), 'diameter_nm', 'depth_nm', 'contrast' (the object's
    own: the largest |I - I₀| / B on its outline grown by 1 nm, I the noiseless image of the foil
    holding it alone, I₀ of the foil without objects, B the median of I₀ there), 'visible'
    (contrast ≥ MIN_CONTRAST: False for instance for a loop with g·b = 0 and little residual
    contrast) and the object's own parameters (loops: g·b and the inclination of the loop plane
    to the image plane, degrees).
    conditions : the microscope and foil (JSON-able).
    """

    image: np.ndarray
    intensity: np.ndarray
    pixel_nm: float
    labels: np.ndarray
    objects: list
    conditions: dict = field(default_factory=dict)

    def class_map(self) -> np.ndarray:
        """(ny, nx) uint8: the index in TEM_CLASSES of every pixel; 255 on invisible objects."""
        lut = np.array([0] + [255 if not o["visible"] else TEM_CLASSES.index(o["class"]) for o in self.objects],
                       np.uint8)
        return lut[self.labels]


# --- objects -------------------------------------------------------------------------------

def _loop(material, frame, centre, radius, kind, variant):
    """A Frank (b = a/3<111>, on that {111}) or perfect prismatic (b = a/2<110>) loop, in foil coordinates."""
    a = material.lattice_parameter
    if kind == "frank":
        normal = np.array(variant, float)
        burgers = a / 3 * normal
    else:
        burgers = a / 2 * np.array(variant, float)
        normal = np.array(variant, float)
    n_foil, b_foil = frame @ normal, frame @ burgers
    vertices = circular_loop_vertices(centre, n_foil, radius, sides=16)
    return DislocationLoop(burgers=b_foil, vertices=vertices), burgers


def _box(centre, half_nm, pixel_nm, shape, dz, nz):
    """Index ranges (rows, columns, slices) of a box reaching `half_nm` [nm] around `centre`
    (row, column [px], depth [nm]), cut to the grid."""
    reach = (half_nm / pixel_nm, half_nm / pixel_nm, half_nm / dz)
    middle = (centre[0], centre[1], centre[2] / dz)
    lo = [max(int(np.floor(m - r)), 0) for m, r in zip(middle, reach)]
    hi = [min(int(np.ceil(m + r)) + 1, n) for m, r, n in zip(middle, reach, (*shape, nz))]
    return lo, hi


@dataclass
class _Part:
    """One object's share of the specimen in the box `box` (rows, columns, slices): G·Δu per
    slice [rad], the slices a void empties and the void's chord per column [nm]."""

    box: tuple
    phase_step: np.ndarray | None = None
    emptied: np.ndarray | None = None
    void_chord: np.ndarray | None = None


@dataclass
class _Specimen:
    """The arrays a micrograph is integrated from: G·Δu per slice, where crystal is, the void
    chord per column [nm], and the ground-truth labels (None in a window around one object)."""

    phase_step: np.ndarray
    crystal: np.ndarray
    void_chord: np.ndarray
    labels: np.ndarray | None

    def add(self, part: _Part, origin=(0, 0)) -> None:
        """Put `part` in, its box shifted by -`origin` (rows, columns) and cut to the arrays."""
        target, source = [], []
        for b, o, n in zip(part.box, (*origin, 0), self.phase_step.shape):
            lo, hi = max(b.start - o, 0), min(b.stop - o, n)
            if hi <= lo:
                return
            target.append(slice(lo, hi))
            source.append(slice(lo + o - b.start, hi + o - b.start))
        target, source = tuple(target), tuple(source)
        if part.phase_step is not None:
            self.phase_step[target] += part.phase_step[source]
        if part.emptied is not None:
            self.crystal[target] &= ~part.emptied[source]
        if part.void_chord is not None:
            self.void_chord[target[:2]] += part.void_chord[source[:2]]


def _strain_part(defect, centre, half_nm, G, pixel_nm, dz, nu, shape) -> _Part | None:
    """G·Δu across every slice of a box reaching `half_nm` around `centre` (row, column [px],
    depth [nm]) in a specimen of `shape` (rows, columns, slices); the field beyond it is left out."""
    lo, hi = _box(centre, half_nm, pixel_nm, shape[:2], dz, shape[2])
    if any(h <= l for l, h in zip(lo, hi)):
        return None
    y = np.arange(lo[0], hi[0]) * pixel_nm
    x = np.arange(lo[1], hi[1]) * pixel_nm
    z = np.arange(lo[2], hi[2] + 1) * dz
    rows, cols, depth = np.meshgrid(y, x, z, indexing="ij")
    pts = np.stack([cols, rows, depth])  # (3, rows, columns, slices + 1): foil x, y, z
    u = defect.displacement(pts, poisson_ratio=nu)
    gu = np.tensordot(G, u, axes=1)
    return _Part(box=tuple(slice(l, h) for l, h in zip(lo, hi)), phase_step=np.angle(np.exp(1j * np.diff(gu, axis=-1))))


def _fill_projected_loop(labels, loop, pixel_nm, index):
    """Label the loop's projection along the beam grown by LOOP_RIM_NM: a loop's contrast is a
    band around its line, and a loop seen edge-on, whose projection is a line, stays an area."""
    from scipy.ndimage import binary_dilation
    from skimage.draw import polygon, polygon_perimeter
    from skimage.morphology import disk

    rows, cols = loop.vertices[:, 1] / pixel_nm, loop.vertices[:, 0] / pixel_nm
    grow = max(int(round(LOOP_RIM_NM / pixel_nm)), 1)
    r0, c0 = int(max(rows.min() - grow - 1, 0)), int(max(cols.min() - grow - 1, 0))
    r1, c1 = int(min(rows.max() + grow + 2, labels.shape[0])), int(min(cols.max() + grow + 2, labels.shape[1]))
    local = np.zeros((r1 - r0, c1 - c0), bool)
    for rr, cc in (polygon(rows - r0, cols - c0, local.shape), polygon_perimeter(rows - r0, cols - c0, local.shape)):
        local[rr, cc] = True
    local = binary_dilation(local, disk(grow))
    labels[r0:r1, c0:c1][local] = index


def _fill_disc(labels, centre_px, radius_px, index):
    from skimage.draw import disk

    rr, cc = disk(centre_px, max(radius_px, 0.7), shape=labels.shape)
    labels[rr, cc] = index


def _put_loop(spec, obj, index, mat, frame, g_hkl, G, pixel_nm, dz) -> _Part | None:
    """Label a loop's outline and return its strain; adds g·b and the inclination to `obj`."""
    row, col = obj["centre_px"]
    centre_nm = np.array([col * pixel_nm, row * pixel_nm, obj["depth_nm"]])
    loop, burgers = _loop(mat, frame, centre_nm, obj["diameter_nm"] / 2, obj["kind"], obj["variant"])
    tilt = np.degrees(np.arccos(min(abs(float(loop.normal[2])), 1.0)))
    obj.update(g_dot_b=round(float(np.asarray(g_hkl) @ burgers / mat.lattice_parameter), 4),
               inclination_deg=round(float(tilt), 2))
    _fill_projected_loop(spec.labels, loop, pixel_nm, index)
    reach = obj["diameter_nm"] / 2 + 12  # [nm] beyond, the loop's contrast is weak
    return _strain_part(loop, (row, col, obj["depth_nm"]), reach, G, pixel_nm, dz, mat.poisson_ratio,
                        spec.phase_step.shape)


def _put_precipitate(spec, obj, index, mat, G, pixel_nm, dz, misfit) -> _Part | None:
    """Label a coherent precipitate's disc and return its strain (a dilatation centre)."""
    row, col = obj["centre_px"]
    radius = obj["diameter_nm"] / 2
    centre = DilatationCentre(position=[col * pixel_nm, row * pixel_nm, obj["depth_nm"]], radius=radius,
                              volume_change=4 * np.pi * misfit * radius**3)
    obj.update(misfit=misfit)
    _fill_disc(spec.labels, (row, col), radius / pixel_nm, index)
    return _strain_part(centre, (row, col, obj["depth_nm"]), 2 * (radius + 12), G, pixel_nm, dz,
                        mat.poisson_ratio, spec.phase_step.shape)


def _put_cavity(spec, obj, index, pixel_nm, dz) -> _Part | None:
    """Label a spherical void's disc and return the slices it empties and its chord."""
    row, col = obj["centre_px"]
    radius = obj["diameter_nm"] / 2
    _fill_disc(spec.labels, (row, col), radius / pixel_nm, index)
    lo, hi = _box((row, col, obj["depth_nm"]), radius + 1, pixel_nm, spec.labels.shape, dz, spec.crystal.shape[2])
    if any(h <= l for l, h in zip(lo, hi)):
        return None
    y = (np.arange(lo[0], hi[0]) - row)[:, None] * pixel_nm
    x = (np.arange(lo[1], hi[1]) - col)[None, :] * pixel_nm
    half_chord = np.sqrt(np.clip(radius**2 - x**2 - y**2, 0, None))
    depth = (np.arange(lo[2], hi[2]) + 0.5) * dz
    return _Part(box=tuple(slice(l, h) for l, h in zip(lo, hi)), void_chord=2 * half_chord,
                 emptied=np.abs(depth - obj["depth_nm"]) < half_chord[:, :, None])


def _image_intensity(spec, s, microscope, mat, xi_g, pixel_nm, dz):
    """The noiseless image (1 = the incident beam) of `spec` at the excitation errors `s`
    [nm⁻¹] per column: Howie–Whelan through every column, the voids' missing inner-potential
    phase, the objective lens."""
    phi0, phig = howie_whelan(spec.phase_step, spec.crystal, dz=dz, xi_g=xi_g, s=s)
    wave = phi0 if microscope.mode == "bright" else phig
    sigma_v0 = interaction_constant(microscope.voltage) * MEAN_INNER_POTENTIAL.get(mat.name, 20.0)
    wave = wave * np.exp(-1j * sigma_v0 * spec.void_chord)
    pad = 32
    padded = np.pad(wave, pad, mode="reflect")  # no wrap-around of the wedge and bend at the borders
    image = lens_transfer(padded, pixel_nm, wavelength=electron_wavelength(microscope.voltage),
                          defocus=microscope.defocus, cs_mm=microscope.cs_mm,
                          convergence_mrad=microscope.convergence_mrad)[pad:-pad, pad:-pad]
    return np.abs(image) ** 2


def micrograph(foil: Foil, microscope: Microscope, objects, *, shape=(256, 256), pixel_nm=0.5, dz=1.0,
               misfit=0.01, seed=0) -> Micrograph:
    """Simulate the micrograph of `foil` holding `objects` (dicts as in :class:`Micrograph`:
    'class', 'centre_px', 'diameter_nm', 'depth_nm', and for loops 'kind' ('frank' or
    'perfect') and 'variant' (the <111> normal or <110> Burgers direction, crystal axes)).

    Precipitates are coherent spheres with constrained misfit `misfit` (a dilatation centre:
    u = ε r₀³ r̂ / r² outside, the Ashby–Brown strain contrast). `seed` draws the camera noise.
    """
    if microscope.mode not in ("bright", "dark"):
        raise ConfigError(f"mode must be 'bright' or 'dark', got {microscope.mode!r}")
    mat = get_material(foil.material)
    frame = foil_frame(foil.zone, foil.g)
    G = 2 * np.pi / mat.d_spacing(foil.g) * np.array([1.0, 0, 0])
    xi_g = extinction_distance(mat.name, mat.lattice_parameter, foil.g, microscope.voltage)
    thickness = foil.thickness_map(shape)
    nz = int(np.ceil(thickness.max() / dz))
    depth = (np.arange(nz) + 0.5) * dz
    free_crystal = depth < thickness[:, :, None]
    spec = _Specimen(phase_step=np.zeros(shape + (nz,)), crystal=free_crystal.copy(),
                     void_chord=np.zeros(shape), labels=np.zeros(shape, np.int32))
    s = foil.excitation_error(shape)

    def render(window_spec, window):
        return _image_intensity(window_spec, s[window], microscope, mat, xi_g, pixel_nm, dz)

    out = []
    for i, obj in enumerate(objects, start=1):
        obj = dict(obj)
        if obj["class"] == "loop":
            part = _put_loop(spec, obj, i, mat, frame, foil.g, G, pixel_nm, dz)
        elif obj["class"] == "precipitate":
            part = _put_precipitate(spec, obj, i, mat, G, pixel_nm, dz, misfit)
        elif obj["class"] == "cavity":
            part = _put_cavity(spec, obj, i, pixel_nm, dz)
        else:
            raise ConfigError(f"unknown TEM object class {obj['class']!r}; choose one of {TEM_CLASSES[1:]}")
        if part is not None:
            spec.add(part)
        obj["contrast"] = round(_own_contrast(part, spec.labels == i, free_crystal, render, pixel_nm), 4)
        obj["visible"] = obj["contrast"] >= MIN_CONTRAST
        out.append(obj)
    image = _image_intensity(spec, s, microscope, mat, xi_g, pixel_nm, dz)
    conditions = {"material": mat.name, "zone": list(foil.zone), "g": list(foil.g), "thickness_nm": list(foil.thickness),
                  "s0_per_nm": foil.s0, "bend_per_nm": foil.bend, "extinction_distance_nm": xi_g,
                  "voltage_kv": microscope.voltage, "mode": microscope.mode, "defocus_nm": microscope.defocus,
                  "dose_e_per_px": microscope.dose, "pixel_nm": pixel_nm}
    return Micrograph(image=camera(image, microscope, np.random.default_rng(seed)), intensity=image.astype(np.float32),
                      pixel_nm=pixel_nm, labels=spec.labels, objects=out, conditions=conditions)


def _own_contrast(part, outline, free_crystal, render, pixel_nm, *, margin_nm=8.0) -> float:
    """The largest |I - I₀| / B of one object on its outline grown by 1 nm, I the noiseless
    image of the foil holding this object alone, I₀ that of the foil without objects and B the
    median of I₀ there: how strongly the object itself shows (g·b, depth, focus), not the bend
    contours, thickness fringes or neighbours that lie on it.

    Both images are rendered in a window around the object reaching `margin_nm` [nm] beyond
    it (wider than the lens spreads the image); `part` is the object's share of the specimen,
    `outline` (ny, nx) bool its labelled pixels, `free_crystal` (ny, nx, nz) the foil without
    objects, and `render(window_spec, window)` the image of a window's specimen."""
    from scipy.ndimage import binary_dilation

    if part is None or not outline.any():
        return 0.0
    near = binary_dilation(outline, iterations=max(int(round(1 / pixel_nm)), 1))
    rows, cols = np.nonzero(near)
    grow = int(np.ceil(margin_nm / pixel_nm))
    window = (slice(max(rows.min() - grow, 0), rows.max() + grow + 1),
              slice(max(cols.min() - grow, 0), cols.max() + grow + 1))
    crystal = free_crystal[window]

    def specimen():
        return _Specimen(phase_step=np.zeros(crystal.shape), crystal=crystal.copy(),
                         void_chord=np.zeros(crystal.shape[:2]), labels=None)

    alone = specimen()
    alone.add(part, origin=(window[0].start, window[1].start))
    free = render(specimen(), window)
    on = near[window]
    return float(np.abs(render(alone, window) - free)[on].max() / max(float(np.median(free[on])), 1e-6))


def camera(intensity, microscope, rng):
    """Electrons per pixel (float32) of the image `intensity` (1 = incident beam): the
    illumination gradient, the camera's blur, Poisson shot noise at the dose, read noise."""
    from scipy.ndimage import gaussian_filter

    ny, nx = intensity.shape
    ty, tx = microscope.illumination_tilt
    y, x = np.mgrid[:ny, :nx]
    illumination = 1 + ty * (y / ny - 0.5) + tx * (x / nx - 0.5)
    mean = gaussian_filter(intensity * illumination * microscope.dose, microscope.psf_px)
    counts = rng.poisson(np.clip(mean, 0, None)) + rng.normal(0, microscope.read_noise, mean.shape)
    return counts.astype(np.float32)


# --- random micrographs for training and benchmarks -----------------------------------------

_ZONES = {(0, 1, 1): [(2, 0, 0), (1, 1, -1), (0, 2, -2), (1, -1, 1)],
          (0, 0, 1): [(2, 0, 0), (0, 2, 0), (2, 2, 0)],
          (1, 1, 2): [(1, 1, -1), (2, -2, 0)]}
_FRANK = [(1, 1, 1), (-1, 1, 1), (1, -1, 1), (1, 1, -1)]
_PERFECT = [(1, 1, 0), (1, -1, 0), (1, 0, 1), (1, 0, -1), (0, 1, 1), (0, 1, -1)]
_SIZES = {"loop": (6.0, 30.0), "precipitate": (6.0, 20.0), "cavity": (4.0, 16.0)}


def _place(rng, shape, pixel_nm, thickness_min, count, classes):
    """Non-overlapping random objects: class, diameter, centre and a depth inside the foil."""
    objects, taken = [], []
    for _ in range(count * 20):
        if len(objects) == count:
            break
        cls = classes[rng.integers(len(classes))]
        lo, hi = _SIZES[cls]
        d = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
        d = min(d, 0.8 * thickness_min)
        r_px = d / 2 / pixel_nm
        margin = r_px + 3
        centre = rng.uniform(margin, np.array(shape) - margin)
        if any(np.hypot(*(centre - c)) < r_px + rr + 6 for c, rr in taken):
            continue
        depth = float(rng.uniform(d / 2 + 2, max(thickness_min - d / 2 - 2, d / 2 + 2.5)))
        obj = {"class": cls, "centre_px": [float(centre[0]), float(centre[1])], "diameter_nm": d, "depth_nm": depth}
        if cls == "loop":
            kind = "frank" if rng.random() < 0.6 else "perfect"
            variants = _FRANK if kind == "frank" else _PERFECT
            obj.update(kind=kind, variant=list(variants[rng.integers(len(variants))]))
        objects.append(obj)
        taken.append((centre, r_px))
    return objects


def random_micrograph(seed, *, shape=(256, 256), pixel_nm=0.5, dose=None, classes=TEM_CLASSES[1:],
                      count=None) -> Micrograph:
    """A random bright-field two-beam micrograph of a Cu, Ni, Au or Pt foil (40–150 nm, wedge,
    bend contours, uneven illumination) holding 2–14 loops (6–30 nm), precipitates (6–20 nm)
    and cavities (4–16 nm) per 256² pixels (the classes in `classes`), under-/over-focused by
    300–1500 nm, at `dose` electrons per pixel (default: log-uniform 50–3000). Same seed, same
    micrograph; a given dose changes only the noise."""
    rng = np.random.default_rng(seed)
    material = ["Cu", "Ni", "Au", "Pt"][rng.integers(4)]
    zone = list(_ZONES)[rng.integers(len(_ZONES))]
    g = _ZONES[zone][rng.integers(len(_ZONES[zone]))]
    t0 = rng.uniform(40, 150)
    grad = rng.uniform(-0.25, 0.25, 2) * 40 / max(shape)
    foil = Foil(material=material, zone=zone, g=g, thickness=(t0, grad[0], grad[1]), s0=float(rng.uniform(0, 0.02)),
                bend=float(rng.uniform(0, 0.015)), bend_seed=int(rng.integers(1 << 31)))
    drawn_dose = float(np.exp(rng.uniform(np.log(50), np.log(3000))))  # drawn always: the dose changes nothing else
    dose = drawn_dose if dose is None else dose
    defocus = float(rng.choice([-1, 1]) * rng.uniform(300, 1500))
    scope = Microscope(defocus=defocus, dose=dose, psf_px=float(rng.uniform(0.4, 1.0)),
                       illumination_tilt=tuple(rng.uniform(-0.3, 0.3, 2)), convergence_mrad=float(rng.uniform(0.05, 0.3)))
    area_scale = shape[0] * shape[1] / 256**2
    n = int(rng.integers(2, 15) * area_scale) if count is None else count
    t_min = float(foil.thickness_map(shape).min())
    objects = _place(rng, shape, pixel_nm, t_min, n, list(classes))
    misfit = float(rng.uniform(0.01, 0.02))
    return micrograph(foil, scope, objects, shape=shape, pixel_nm=pixel_nm, dz=1.0, misfit=misfit,
                      seed=int(rng.integers(1 << 31)))
