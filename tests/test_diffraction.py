"""Diffraction: analytic form factor, Parseval, atomistic vs continuum, NUFFT vs direct sums,
detector frame, and the detector model."""
import numpy as np
import pytest

from braggscope.errors import ConfigError, ShapeError
from braggscope.geometry import Geometry
from braggscope.simulate import (Crystal, Detector, atomistic_amplitude, continuum_intensity, fcc_atoms,
                                 gap_mask, grid_points, kinematic_amplitude, measure, orthogonal_q_basis,
                                 partially_coherent, pixel_integrated, simulate_bcdi, simulate_sample, sphere,
                                 support_fraction, truncated_octahedron)


def test_sphere_pattern_matches_the_analytic_form_factor():
    n, h, radius = 96, 1.0, 10.0
    rho = support_fraction(sphere(2 * radius), grid_points((n,) * 3, h), h).astype(np.complex64)
    intensity = continuum_intensity(rho)
    profile = np.sqrt(intensity[n // 2, n // 2, n // 2:n // 2 + 20])
    q = 2 * np.pi * np.arange(20) / (n * h)
    qr = np.maximum(q * radius, 1e-9)
    analytic = 4 / 3 * np.pi * radius**3 * 3 * (np.sin(qr) - qr * np.cos(qr)) / qr**3
    analytic[0] = 4 / 3 * np.pi * radius**3
    np.testing.assert_allclose(profile, np.abs(analytic), atol=0.01 * analytic[0])
    # the first zero of the form factor (qR = 4.493) is the minimum of the measured profile
    assert np.argmin(profile[:12]) == round(4.493 / radius / (2 * np.pi / n))


def test_parseval():
    s = simulate_sample(Crystal(truncated_octahedron(60.0), "Pt"), [], shape=(32, 32, 32), voxel_size=3.0,
                        hkl=(1, 1, 1))
    intensity = continuum_intensity(s.obj, oversampling=1.5)
    assert intensity.shape == (48, 48, 48) and intensity.dtype == np.float32
    assert intensity.sum(dtype=float) == pytest.approx(48**3 * np.sum(np.abs(s.obj) ** 2, dtype=float), rel=1e-5)


def test_nufft_equals_the_direct_sum_and_the_fft(rng):
    pts = rng.uniform(-8, 8, (3, 500))
    w = np.exp(1j * rng.uniform(0, 6, 500))
    basis = orthogonal_q_basis((16, 16, 16), 1.5)
    amp = kinematic_amplitude(pts, w, q_basis=basis, shape=(16, 16, 16))
    for k in rng.integers(-8, 8, (10, 3)):
        direct = np.sum(w * np.exp(-1j * ((basis @ k) @ pts)))
        assert abs(amp[tuple(k + 8)] - direct) < 1e-5 * np.abs(w).sum()
    with pytest.raises(ConfigError, match="field of view"):
        kinematic_amplitude(pts * 10, w, q_basis=basis, shape=(16, 16, 16))


@pytest.mark.parametrize("with_dislocation", [False, True])
def test_atomistic_and_continuum_amplitudes_agree(with_dislocation):
    xtal = Crystal(truncated_octahedron(16.0), "Au")
    defects = [xtal.dislocation((0.5, 0, 0.5), (1, -1, 1), position=(0.4, 0.3, 0.0))] if with_dislocation else []
    n, h = 32, 0.8
    s = simulate_sample(xtal, defects, shape=(n,) * 3, voxel_size=h, hkl=(1, 1, 1))
    basis = orthogonal_q_basis((n,) * 3, h)
    atoms = fcc_atoms(xtal, defects)
    assert 0.9 < atoms.shape[1] / (4 * truncated_octahedron(16.0).volume / xtal.lattice_parameter**3) < 1.1
    a = np.abs(atomistic_amplitude(atoms, g_vector=s.g_vector, q_basis=basis, shape=(n,) * 3))
    c = np.sqrt(continuum_intensity(s.obj)).astype(float)
    corr = lambda x, y: np.sum(x * y) / np.linalg.norm(x) / np.linalg.norm(y)
    inner = (slice(n // 4, 3 * n // 4),) * 3
    # the voxel object (20 voxels across) undersamples the facet streaks at the window's edge
    assert corr(a, c) > 0.985
    assert corr(a[inner], c[inner]) > 0.995


def test_ase_export_keeps_positions_and_nearest_neighbour_distance():
    ase = pytest.importorskip("ase")
    from braggscope.simulate import to_ase_atoms

    xtal = Crystal(sphere(3.0), "Pt")
    atoms = fcc_atoms(xtal)
    a = to_ase_atoms(atoms, xtal)
    assert isinstance(a, ase.Atoms) and len(a) == atoms.shape[1] and a.get_chemical_symbols()[0] == "Pt"
    np.testing.assert_allclose(a.positions[:, 0], 10 * atoms[2])  # x in Å
    d = a.get_all_distances()[0]
    assert np.min(d[d > 0]) == pytest.approx(10 * xtal.lattice_parameter / np.sqrt(2))


def test_atomistic_twin_appears_as_a_mirrored_lattice():
    xtal = Crystal(sphere(8.0), "Cu")
    twin = xtal.twin((1, 1, 1), position=(0.0, 0.0, 0.0))
    atoms = fcc_atoms(xtal, [twin])
    side = twin.domain(atoms)
    mirrored_back = twin.mirror(atoms[:, side])
    # every twin-side atom is the mirror image of a site of the parent lattice
    cells = np.linalg.solve(xtal.orientation * xtal.lattice_parameter, mirrored_back) * 2
    np.testing.assert_allclose(cells, np.round(cells), atol=1e-9)
    assert side.sum() > 100 and (~side).sum() > 100


def test_detector_frame_peak_is_centred_and_q_basis_is_consistent():
    xtal = Crystal(truncated_octahedron(50.0), "Pt")
    geo = Geometry.for_reflection(d_spacing=xtal.material.d_spacing((1, 1, 1)), energy=9.0, detector_distance=1.0,
                                  pixel_size=55.0, rocking_step=0.01)
    assert np.linalg.norm(geo.q_bragg) == pytest.approx(np.linalg.norm(xtal.g_vector((1, 1, 1))))
    data = simulate_bcdi(xtal, [], hkl=(1, 1, 1), shape=(40,) * 3, voxel_size=2.0, data_shape=(32, 32, 32),
                         geometry=geo, detector=Detector(noise=False))
    assert np.unravel_index(np.argmax(data.noiseless), data.noiseless.shape) == (16, 16, 16)
    assert np.all(geo.oversampling(50.0) > 2)
    a = geo.real_space_voxel((32, 32, 32))
    np.testing.assert_allclose(a.T @ geo.q_basis() * 32, 2 * np.pi * np.eye(3), atol=1e-9)
    with pytest.raises(ConfigError, match="Bragg angle"):
        simulate_bcdi(xtal, [], hkl=(2, 0, 0), shape=(40,) * 3, voxel_size=2.0, geometry=geo)


def test_detector_frame_turns_the_defects_and_shape_with_the_crystal(tmp_path):
    """The detector-frame simulation turns the whole crystal into the Bragg condition (R, in the
    truth as 'sample_rotation'): its dislocation keeps G·b = 2π at the turned G (turning the lattice
    alone left G·b/2π at −0.85 here: a phase that did not close round the line), so the strain
    step returns the closed-form strain without a wall; the object is the unturned crystal's
    read at Rᵀr; and the file carries R into the loaded scan's metadata."""
    from scipy import ndimage

    from braggscope.io import write_simulation
    from braggscope.io.beamline import load_cxi
    from braggscope.simulate import random_orientation
    from braggscope.simulate.sample import grid_points, object_at
    from braggscope.strain import strain_field

    u = random_orientation(3)
    xtal = Crystal(truncated_octahedron(60.0, u), "Pt", u)
    line = xtal.dislocation((0.5, 0, 0.5), (1, -1, 0), (2.0, 1.0, -1.0))
    geo = Geometry.for_reflection(d_spacing=xtal.material.d_spacing((1, 1, 1)), energy=9.0, detector_distance=0.5,
                                  pixel_size=55.0, rocking_step=0.01)
    s = simulate_bcdi(xtal, [line], hkl=(1, 1, 1), shape=(32,) * 3, voxel_size=3.0, geometry=geo,
                      detector=Detector(noise=False)).sample
    turn = np.array(s.metadata["sample_rotation"])
    np.testing.assert_allclose(s.g_vector, geo.q_bragg, atol=1e-9)
    assert s.g_vector @ (turn @ line.burgers) / (2 * np.pi) == pytest.approx(1.0)
    f = strain_field(s.obj, s.support, g_vector=s.g_vector, voxel_size=3.0)
    ok = s.support & ~ndimage.binary_dilation(s.dislocation_mask, iterations=2)
    # 3e-5 as for the crystal unturned on this coarse grid; the lattice turned alone gave 9e-4 (a wall)
    assert np.sqrt(np.mean((f.strain + f.ramp_strain - s.strain)[ok] ** 2)) < 1e-4
    back = np.tensordot(turn.T, grid_points((32,) * 3, 3.0), axes=1)
    unturned = object_at(xtal, [line], back, hkl=(1, 1, 1), voxel_size=3.0)
    np.testing.assert_allclose(np.angle(s.obj * np.conj(unturned))[s.support], 0, atol=1e-5)
    path = write_simulation(tmp_path / "turned.cxi", simulate_bcdi(
        xtal, [line], hkl=(1, 1, 1), shape=(32,) * 3, voxel_size=3.0, geometry=geo, detector=Detector(noise=False)))
    np.testing.assert_allclose(load_cxi(path).metadata["sample_rotation"], turn)


def test_detector_model():
    intensity = np.exp(-np.sum((np.indices((16, 64, 64)) - np.array([8, 32, 32])[:, None, None, None]) ** 2, 0) / 20)
    det = Detector(photons=1e6, gaps="maxipix", hot_pixels=5, aliens=2, saturation=2e4, background=0.5)
    a = measure(intensity, det, rng=3)
    b = measure(intensity, det, rng=3)
    np.testing.assert_array_equal(a.intensity, b.intensity)
    assert np.all(a.intensity[a.truth["gaps"]] == 0) and a.mask[a.truth["gaps"]].all()
    hot = a.truth["hot_pixels"]
    assert hot.sum() == 5 * 16 and np.array_equal(hot[0], hot[-1])
    assert a.truth["aliens"].any() and not a.truth["aliens"][8, 30:35, 30:35].any()
    assert a.intensity.max() <= 2e4 and a.mask[a.truth["saturated"]].all()
    noiseless = measure(intensity, Detector(photons=1e6, noise=False))
    assert noiseless.intensity.sum() == pytest.approx(1e6, rel=1e-5)
    assert gap_mask((64, 64), "eiger").sum() == 2 * 2 * 64 - 4
    with pytest.raises(ConfigError):
        measure(-intensity, det)
    with pytest.raises(ShapeError):
        measure(intensity[0, 0], det)
    with pytest.raises(ConfigError, match="gap layout"):
        Detector(gaps="pilatus")


@pytest.mark.parametrize("width, shift", [(1.0, 0.0), (1.0, 0.3), (0.5, -0.25), (0.0, 0.5)])
def test_pixel_integration_is_the_pixel_mean_of_the_pattern(width, shift):
    """A slab of L voxels in N gives the Dirichlet kernel |sin(π L k/N) / sin(π k/N)|² along its
    normal; a pixel of `width` centred `shift` off the sample records its mean over the pixel,
    computed here by quadrature of the analytic kernel (width 0: the kernel at the shifted point)."""
    from scipy.integrate import quad

    n, length = 48, 16
    kernel = lambda k: length ** 2 if abs(np.sin(np.pi * k / n)) < 1e-12 else (
        np.sin(np.pi * length * k / n) / np.sin(np.pi * k / n)) ** 2
    k = np.arange(n) - n // 2
    samples = np.array([kernel(v) for v in k])
    expected = np.array([kernel(v + shift) if width == 0 else
                         quad(kernel, v + shift - width / 2, v + shift + width / 2, limit=200)[0] / width for v in k])
    np.testing.assert_allclose(pixel_integrated(samples, width, shift), expected, atol=1e-9 * length ** 2)
    slab = np.broadcast_to(samples[:, None], (n, 8))  # per axis: integrated along the first, not the second
    np.testing.assert_allclose(pixel_integrated(slab, (width, 1.0), (shift, 0.0)), np.broadcast_to(expected[:, None], (n, 8)),
                               atol=1e-9 * length ** 2)
    with pytest.raises(ConfigError, match="pixel width"):
        pixel_integrated(samples, -1.0)


@pytest.mark.parametrize("fwhm", [0.5, 1.3, 2.5])
def test_partial_coherence_is_the_patterns_convolution_with_a_gaussian(fwhm):
    """The slab's Dirichlet kernel convolved with a continuous Gaussian of `fwhm` pixels, by
    quadrature of the analytic kernel: the counts are kept, and the peak falls. A kernel sampled
    on the pixels (scipy's gaussian_filter) is close for a PSF a few pixels wide, but not for one
    narrower than a pixel, which is why the blur works on the Fourier coefficients."""
    from scipy.integrate import quad
    from scipy.ndimage import gaussian_filter

    n, length = 48, 16
    kernel = lambda k: length ** 2 if abs(np.sin(np.pi * k / n)) < 1e-12 else (
        np.sin(np.pi * length * k / n) / np.sin(np.pi * k / n)) ** 2
    sigma = fwhm / (2 * np.sqrt(2 * np.log(2)))
    gauss = lambda t: np.exp(-t ** 2 / (2 * sigma ** 2)) / (np.sqrt(2 * np.pi) * sigma)
    k = np.arange(n) - n // 2
    samples = np.array([kernel(v) for v in k])
    expected = np.array([quad(lambda t: kernel(v - t) * gauss(t), -10 * sigma, 10 * sigma, limit=400,
                              points=[0.0])[0] for v in k])
    blurred = partially_coherent(samples, fwhm)
    np.testing.assert_allclose(blurred, expected, atol=1e-8 * length ** 2)
    assert blurred.sum() == pytest.approx(samples.sum()) and blurred.max() < samples.max()
    sampled_kernel = np.abs(gaussian_filter(samples, sigma, mode="wrap") - expected).max() / length ** 2
    assert sampled_kernel > 0.01 if fwhm < 1 else sampled_kernel < 0.01
    slab = np.broadcast_to(samples[:, None], (n, 8))  # per axis: blurred along the first only
    np.testing.assert_allclose(partially_coherent(slab, (fwhm, 0.0)), np.broadcast_to(expected[:, None], (n, 8)),
                               atol=1e-8 * length ** 2)
    with pytest.raises(ConfigError, match="FWHM"):
        partially_coherent(samples, -1.0)
