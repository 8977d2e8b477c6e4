"""Stacking faults, twins, dilatation centres and smooth fields."""
import numpy as np
import pytest

from braggscope.errors import ConfigError
from braggscope.physics import wrap_phase
from braggscope.simulate import Crystal, DilatationCentre, SmoothStrain, simulate_sample, sphere, \
    twin_shares_reflection, truncated_octahedron


@pytest.mark.parametrize("hkl, expected", [
    ((1, 1, 1), 0.0),                # G·R = 2π(1 + 1 - 2)/6 = 0: invisible fault
    ((2, 0, 0), 2 * np.pi / 3),
    ((0, 2, 0), 2 * np.pi / 3),
    ((0, 0, 2), -4 * np.pi / 3),
    ((2, 2, 0), 4 * np.pi / 3),
    ((1, 1, -1), 4 * np.pi / 3),
])
def test_stacking_fault_phase_jump_is_g_dot_r(hkl, expected):
    xtal = Crystal(sphere(120.0), "Ni")
    fault = xtal.stacking_fault((1, 1, 1), (1 / 6, 1 / 6, -1 / 3), center=(2.0, 1.0, -3.0), radius=25.0)
    g = xtal.g_vector(hkl)
    n = fault.loop.normal
    inside = fault.loop.center + np.array([0.0, 4.0, -3.0]) - n * (n @ np.array([0.0, 4.0, -3.0]))
    plus = g @ fault.displacement((inside + 1e-4 * n)[:, None], poisson_ratio=0.28)
    minus = g @ fault.displacement((inside - 1e-4 * n)[:, None], poisson_ratio=0.28)
    assert wrap_phase(minus - plus)[0] == pytest.approx(wrap_phase(expected), abs=1e-4)


def test_stacking_fault_vector_must_be_in_or_along_the_plane():
    xtal = Crystal(sphere(100.0), "Cu")
    with pytest.raises(ConfigError, match="Shockley"):
        xtal.stacking_fault((1, 1, 1), (1 / 2, 0, 0))
    with pytest.raises(ConfigError, match="111"):
        xtal.stacking_fault((1, 1, 0))
    frank = xtal.stacking_fault((1, 1, 1), (-1 / 3, -1 / 3, -1 / 3), radius=10.0)
    assert frank.kind == "intrinsic" and frank.describe()["type"] == "stacking_fault"


@pytest.mark.parametrize("hkl, plane, shared", [
    ((1, 1, 1), (1, 1, 1), True),     # G along the twin normal: shared
    ((2, 2, 2), (1, 1, 1), True),
    ((2, 0, 0), (1, 1, 1), False),
    ((1, 1, -1), (1, 1, 1), False),
    ((3, 1, -1), (1, 1, 1), True),    # mirror: (1, -1, -3), an fcc reflection
    ((2, 2, 0), (1, 1, 1), False),
])
def test_twin_shares_reflection(hkl, plane, shared):
    assert twin_shares_reflection(hkl, plane) is shared


def test_twinned_domain_is_dark_at_unshared_reflections_and_bright_at_shared():
    xtal = Crystal(sphere(60.0), "Au")
    twin = xtal.twin((1, 1, 1), position=(5.0, 5.0, 5.0))
    grid = dict(shape=(24,) * 3, voxel_size=3.0)
    perfect = simulate_sample(xtal, [], hkl=(1, 1, 1), **grid)
    shared = simulate_sample(xtal, [twin], hkl=(1, 1, 1), **grid)
    dark = simulate_sample(xtal, [twin], hkl=(2, 0, 0), **grid)
    pts = np.stack(np.meshgrid(*[(np.arange(24) - 12) * 3.0] * 3, indexing="ij"))
    deep = twin.domain(pts) & (np.abs(twin.plane_distance(pts)) > 4) & perfect.support
    parent = ~twin.domain(pts) & (np.abs(twin.plane_distance(pts)) > 4) & perfect.support
    assert deep.sum() > 100
    np.testing.assert_allclose(shared.amplitude[deep], perfect.amplitude[deep])
    np.testing.assert_allclose(dark.amplitude[deep], 0.0)
    np.testing.assert_allclose(dark.amplitude[parent], perfect.amplitude[parent])
    assert shared.twin_mask.any() and np.array_equal(shared.twin_mask, dark.twin_mask)
    # the plane is on an atomic {111} plane: its distance from the centre is a multiple of d111
    d111 = xtal.material.d_spacing((1, 1, 1))
    offset = twin.normal @ twin.point / d111
    assert offset == pytest.approx(round(offset), abs=1e-9)


def test_dilatation_centre_flux_and_zero_divergence(rng):
    dc = DilatationCentre(position=[1.0, -2.0, 0.5], radius=2.0, volume_change=3.0)
    # flux of u through a sphere of radius 7 nm = ΔV
    n = 400
    golden = np.pi * (3 - 5**0.5) * np.arange(n)
    z = 1 - 2 * (np.arange(n) + 0.5) / n
    normals = np.stack([z, np.sqrt(1 - z * z) * np.cos(golden), np.sqrt(1 - z * z) * np.sin(golden)])
    u = dc.displacement(dc.position[:, None] + 7.0 * normals)
    flux = np.mean(np.sum(u * normals, axis=0)) * 4 * np.pi * 49
    assert flux == pytest.approx(3.0, rel=1e-3)
    # ∇·u = 0 outside the cluster (trace of the analytic gradient)
    pts = dc.position[:, None] + rng.uniform(3, 10, (1, 50)) * normals[:, :50]
    div = sum(dc.directional_derivative(pts, np.eye(3)[i])[i] for i in range(3))
    np.testing.assert_allclose(div, 0, atol=1e-12)
    inside = sum(dc.directional_derivative(dc.position[:, None], np.eye(3)[i])[i] for i in range(3))
    assert inside[0] == pytest.approx(3 * 3.0 / (4 * np.pi * 8.0))


def test_smooth_strain_is_seeded_and_has_the_asked_rms(rng):
    a = SmoothStrain(amplitude=0.02, wavelength=50.0, modes=24, rng=3)
    b = SmoothStrain(amplitude=0.02, wavelength=50.0, modes=24, rng=3)
    pts = rng.uniform(-300, 300, (3, 20000))
    ua, ub = a.displacement(pts), b.displacement(pts)
    np.testing.assert_array_equal(ua, ub)
    assert np.sqrt(np.mean(np.sum(ua * ua, axis=0))) == pytest.approx(0.02, rel=0.35)


def test_surface_relaxation_is_largest_at_the_surface():
    xtal = Crystal(truncated_octahedron(100.0), "Pt")
    relax = xtal.surface_relaxation(amplitude=0.02, decay_length=3.0)
    r_surface = float(xtal.shape.radial_extent(np.array([[1.0], [0], [0]]))[0])
    on_surface = relax.displacement(np.array([[r_surface], [0], [0]]))
    deep = relax.displacement(np.array([[r_surface - 20], [0], [0]]))
    assert on_surface[0, 0] == pytest.approx(0.02)
    assert abs(deep[0, 0]) < 0.02 * np.exp(-6)
