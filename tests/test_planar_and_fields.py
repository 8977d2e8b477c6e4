"""Stacking faults, twins, dilatation centres and smooth fields."""
import numpy as np
import pytest

from braggscope.errors import ConfigError
from braggscope.physics import wrap_phase
from braggscope.simulate import Crystal, DilatationCentre, SmoothStrain, StraightDislocation, simulate_sample, \
    sphere, twin_shares_reflection, truncated_octahedron


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


# --- Shockley-split dislocations -------------------------------------------------------------

def _split(separation=12.0):
    xtal = Crystal(sphere(120.0), "Au")
    return xtal, xtal.split_dislocation((0.5, 0.5, 0), (1, -1, 0), (1, -1, 1), (1.0, -2.0, 0.5), separation)


def test_split_dislocation_partials_add_up_to_b_and_are_shockley():
    xtal, split = _split()
    a = xtal.lattice_parameter
    b1, b2 = split.leading.burgers / a, split.trailing.burgers / a
    assert np.allclose(b1 + b2, xtal.to_sample((0.5, 0.5, 0)))
    for b in (b1, b2):
        assert np.linalg.norm(b) == pytest.approx(np.sqrt(6) / 6)              # |a/6<112>|
        assert abs(b @ split.normal) < 1e-12                                    # in the glide plane
        assert np.degrees(np.arccos(b @ (b1 + b2) / np.linalg.norm(b) / np.linalg.norm(b1 + b2))) \
            == pytest.approx(30.0)


def test_split_dislocation_phase_jumps_by_g_dot_b1_on_the_ribbon_only():
    xtal, split = _split(12.0)
    g = xtal.g_vector((1, 1, 1))
    n, s = split.normal, split.across
    p0 = split.leading.position
    for along, expected in ((6.0, g @ split.leading.burgers), (20.0, 0.0), (-8.0, 0.0)):
        point = p0 + along * s + 3.0 * split.leading.line
        plus = g @ split.displacement((point + 1e-4 * n)[:, None], poisson_ratio=0.4)
        minus = g @ split.displacement((point - 1e-4 * n)[:, None], poisson_ratio=0.4)
        assert abs(wrap_phase(minus - plus - expected)[0]) < 1e-3, along   # the fault's sign convention
    assert abs(wrap_phase(g @ split.leading.burgers)) == pytest.approx(2 * np.pi / 3)


def test_split_dislocation_far_field_is_the_perfect_one():
    """Far from the pair (r ≫ separation) the strain is the undissociated dislocation's, to
    order separation / r."""
    xtal, split = _split(4.0)
    perfect = StraightDislocation(burgers=split.leading.burgers + split.trailing.burgers, line=split.leading.line,
                            position=split.leading.position + 2.0 * split.across)
    g = xtal.g_vector((1, 1, 1))
    ghat = g / np.linalg.norm(g)
    rng = np.random.default_rng(0)
    d = rng.normal(size=(3, 50))
    d -= np.outer(split.leading.line, split.leading.line @ d)
    d *= 200.0 / np.linalg.norm(d, axis=0)
    points = (split.leading.position + 2.0 * split.across)[:, None] + d
    e_split = ghat @ split.directional_derivative(points, ghat, poisson_ratio=0.4)
    e_perf = ghat @ perfect.directional_derivative(points, ghat, poisson_ratio=0.4)
    scale = np.abs(e_perf).max()
    assert np.max(np.abs(e_split - e_perf)) < 0.05 * scale


def test_equilibrium_separation_edge_over_screw_is_the_closed_form():
    from braggscope.simulate.planar import equilibrium_separation

    nu, mu, bp, gamma = 0.42, 30.7, 0.1665, 32.0
    edge = equilibrium_separation(bp, 90.0, shear_modulus=mu, poisson_ratio=nu, fault_energy=gamma)
    screw = equilibrium_separation(bp, 0.0, shear_modulus=mu, poisson_ratio=nu, fault_energy=gamma)
    assert edge / screw == pytest.approx((2 + nu) / (2 - 3 * nu))
    # Hirth & Lothe: d_screw = μ b_p² (2 - 3ν) / (8π γ (1 - ν)); GPa·nm²/(mJ/m²) = 1e3 nm
    assert screw == pytest.approx(1e3 * mu * bp**2 * (2 - 3 * nu) / (8 * np.pi * gamma * (1 - nu)))
    xtal = Crystal(sphere(120.0), "Au")
    assert 1.0 < xtal.split_dislocation((0.5, 0.5, 0), (1, 1, 0), (1, -1, 1)).separation < 2.0   # screw, Au
    assert xtal.split_dislocation((0.5, 0.5, 0), (1, -1, 0), (1, -1, 1)).separation == pytest.approx(4.4, abs=0.05)
    assert Crystal(sphere(120.0), "Pt").split_dislocation((0.5, 0.5, 0), (1, 1, 0), (1, -1, 1)).separation < 0.5


def test_cut_moves_the_jump_not_the_gradient():
    xtal = Crystal(sphere(120.0), "Pt")
    default = xtal.dislocation((0.5, 0.5, 0), (1, -1, 0))
    e1, e2, _ = default.local_frame()
    moved = StraightDislocation(burgers=default.burgers, line=default.line, position=default.position, cut=e2)
    pts = np.random.default_rng(1).normal(size=(3, 40)) * 10
    du_a = default.directional_derivative(pts, e1, poisson_ratio=0.4)
    du_b = moved.directional_derivative(pts, e1, poisson_ratio=0.4)
    assert np.allclose(du_a, du_b)
    jump = lambda d, p, n: d.displacement((p + 1e-6 * n)[:, None], poisson_ratio=0.4)[:, 0] - \
        d.displacement((p - 1e-6 * n)[:, None], poisson_ratio=0.4)[:, 0]
    assert np.allclose(np.abs(jump(moved, 5 * e2, e1)), np.abs(default.burgers @ np.eye(3)), atol=1e-6)
    assert np.allclose(jump(moved, -5 * e1, e2), 0, atol=1e-6)


def test_invisible_defects_leave_the_masks_with_min_contrast():
    xtal = Crystal(sphere(60.0), "Pt")
    disl = xtal.dislocation((0.5, -0.5, 0), (1, 1, 1))     # G·b = 0 at 111
    kw = dict(shape=(24,) * 3, voxel_size=3.0, hkl=(1, 1, 1))
    assert simulate_sample(xtal, [disl], **kw).dislocation_mask.any()
    assert not simulate_sample(xtal, [disl], min_contrast=0.5, **kw).dislocation_mask.any()
    seen = xtal.dislocation((0.5, 0.5, 0), (1, -1, 0))
    assert simulate_sample(xtal, [seen], min_contrast=0.5, **kw).dislocation_mask.any()
