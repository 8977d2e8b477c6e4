"""Dislocation fields against closed forms and independent computations."""
import numpy as np
import pytest

from braggscope.simulate import Crystal, DislocationLoop, StraightDislocation, sphere, truncated_octahedron
from braggscope.simulate.sample import grid_points
from braggscope.physics import wrap_phase
from conftest import hirth_lothe_edge_strain


def _gradient(field, points, eps=1e-4):
    """∂u_i/∂x_j by central differences, shape (3, 3, N)."""
    out = np.zeros((3, 3, points.shape[1]))
    for j in range(3):
        step = np.zeros((3, 1))
        step[j] = eps
        out[:, j] = (field(points + step) - field(points - step)) / (2 * eps)
    return out


def test_screw_displacement_is_b_theta_over_2pi(rng):
    b = 0.25
    disl = StraightDislocation(burgers=[b, 0, 0], line=[1, 0, 0], position=[0, 0, 0])
    pts = rng.uniform(-20, 20, (3, 500))
    u = disl.displacement(pts, poisson_ratio=0.3)
    # line along z (axis 0): u_z = b θ/2π with θ measured in the plane (y, x) ⊥ line, right-handed
    e1, e2, _ = disl.local_frame()
    theta = np.arctan2(e2 @ pts, e1 @ pts)
    np.testing.assert_allclose(u[0], b * theta / (2 * np.pi), atol=1e-12)
    np.testing.assert_allclose(u[1:], 0, atol=1e-12)


@pytest.mark.parametrize("nu", [0.28, 0.42])
def test_edge_strain_matches_hirth_lothe(rng, nu):
    b = 0.28
    disl = StraightDislocation(burgers=[0, 0, b], line=[1, 0, 0], position=[0, 0, 0])  # b along x, line along z
    e1, e2, t = disl.local_frame()
    pts = rng.uniform(-30, 30, (3, 400))
    x, y = e1 @ pts, e2 @ pts
    keep = (np.hypot(x, y) > 2) & (np.abs(y) > 0.05)  # away from the core and the cut
    pts, x, y = pts[:, keep], x[keep], y[keep]
    grad = _gradient(lambda p: disl.displacement(p, poisson_ratio=nu), pts)
    strain = 0.5 * (grad + grad.transpose(1, 0, 2))
    exx, eyy, exy = hirth_lothe_edge_strain(x, y, burgers=b, poisson_ratio=nu)
    proj = lambda a, c: np.einsum("i,ijn,j->n", a, strain, c)
    scale = np.abs(exx).max()
    np.testing.assert_allclose(proj(e1, e1), exx, atol=1e-6 * scale / 1e-3)
    np.testing.assert_allclose(proj(e2, e2), eyy, atol=1e-6 * scale / 1e-3)
    np.testing.assert_allclose(proj(e1, e2), exy, atol=1e-6 * scale / 1e-3)
    np.testing.assert_allclose(proj(t, t), 0, atol=1e-9)


@pytest.mark.parametrize("nu", [0.3, 0.4])
@pytest.mark.parametrize("b", [[0, 0.2, 0], [0, 0, 0.2], [0.2, 0, 0], [0.1, 0.15, 0.05]])
def test_large_loop_matches_straight_dislocation_near_a_side(rng, nu, b):
    half = 5000.0  # [nm] a 10 µm square loop: near a side the others are far away
    verts = np.array([[0, -half, -half], [0, -half, half], [0, half, half], [0, half, -half]])
    loop = DislocationLoop(burgers=b, vertices=verts)
    straight = StraightDislocation(burgers=b, line=verts[1] - verts[0], position=verts[0])
    pts = np.array([0, -half, 0])[:, None] + rng.uniform(-20, 20, (3, 60))
    g_loop = _gradient(lambda p: loop.displacement(p, poisson_ratio=nu), pts)
    g_line = _gradient(lambda p: straight.displacement(p, poisson_ratio=nu), pts)
    assert np.abs(g_loop - g_line).max() < 2e-3 * np.abs(g_line).max()


def test_loop_displacement_jumps_by_b_across_its_surface():
    b = np.array([0.1, -0.05, 0.2])
    loop = DislocationLoop(burgers=b, vertices=np.array([[0, -10, -10], [0, -10, 10], [0, 10, 10], [0, 10, -10.0]]))
    n = loop.normal
    above = loop.displacement((2e-4 * n)[:, None] + np.array([[0, 3, -2.0]]).T, poisson_ratio=0.35)
    below = loop.displacement((-2e-4 * n)[:, None] + np.array([[0, 3, -2.0]]).T, poisson_ratio=0.35)
    np.testing.assert_allclose((below - above).ravel(), b, atol=1e-5)
    # outside the loop (same plane) there is no jump
    out_a = loop.displacement((2e-4 * n + [0, 30, 0])[:, None], poisson_ratio=0.35)
    out_b = loop.displacement((-2e-4 * n + [0, 30, 0])[:, None], poisson_ratio=0.35)
    np.testing.assert_allclose(out_a, out_b, atol=1e-5)


@pytest.mark.parametrize("kind", ["straight", "loop"])
def test_closed_form_derivative_matches_finite_differences(rng, kind):
    if kind == "straight":
        d = StraightDislocation(burgers=[0.1, 0.2, -0.1], line=[1, 0.3, 0.2], position=[1, 2, 3])
    else:
        verts = np.array([[1, 2, 3]]) + 20 * np.array([[np.cos(a), np.sin(a), 0.3] for a in np.linspace(0, 6, 7)])
        d = DislocationLoop(burgers=[0.1, 0.2, -0.1], vertices=verts)
    pts = rng.uniform(-40, 40, (3, 1500))
    g = np.array([0.3, -0.5, 0.8]) / np.linalg.norm([0.3, -0.5, 0.8])
    h = 1e-4
    numeric = (d.displacement(pts + h * g[:, None], poisson_ratio=0.33)
               - d.displacement(pts - h * g[:, None], poisson_ratio=0.33)) / (2 * h)
    exact = d.directional_derivative(pts, g, poisson_ratio=0.33)
    smooth = np.all(np.abs(numeric) < 1, axis=0)  # pairs that straddle a cut are left out
    assert smooth.mean() > 0.95
    np.testing.assert_allclose(exact[:, smooth], numeric[:, smooth], atol=1e-7)


def _winding(obj_phase_fn, center, axis, radius=6.0, n=720):
    """Winding number of exp(iφ) on a circle about `axis` through `center`."""
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    e1 = np.cross(axis, [1.0, 0, 0]) if abs(axis[0]) < 0.9 else np.cross(axis, [0, 1.0, 0])
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(axis, e1)
    phi = np.linspace(0, 2 * np.pi, n, endpoint=False)
    pts = (np.asarray(center)[:, None] + radius * (np.outer(e1, np.cos(phi)) + np.outer(e2, np.sin(phi))))
    phase = obj_phase_fn(pts)
    return np.sum(wrap_phase(np.diff(np.append(phase, phase[0])))) / (2 * np.pi)


@pytest.mark.parametrize("burgers, hkl, winding", [
    ((0.5, 0, 0.5), (1, 1, 1), 1),     # G·b = 2π
    ((0.5, 0.5, 0), (1, 1, 1), 1),
    ((0.5, -0.5, 0), (1, 1, 1), 0),    # G·b = 0: invisible
    ((0.5, 0, 0.5), (2, 0, 0), 1),
    ((0.5, 0, 0.5), (2, 2, 0), 1),
    ((0.5, 0.5, 0), (2, 2, 0), 2),
])
def test_phase_winds_by_g_dot_b_around_a_dislocation(burgers, hkl, winding):
    xtal = Crystal(sphere(100.0), "Au")
    line = np.cross(burgers, (1, 1, 1)) if np.linalg.norm(np.cross(burgers, (1, 1, 1))) > 0 else (1, 0, 0)
    disl = xtal.dislocation(burgers, line, position=(3.0, -2.0, 1.0))
    g = xtal.g_vector(hkl)
    fn = lambda p: g @ disl.displacement(p, poisson_ratio=xtal.material.poisson_ratio)
    assert round(_winding(fn, disl.position, disl.line), 6) == winding


def test_phase_winds_around_a_loop_side():
    xtal = Crystal(sphere(100.0), "Pt")
    loop = xtal.loop((1 / 3, 1 / 3, 1 / 3), (1, 1, 1), radius=20.0, sides=6)  # Frank loop, G·b = 2π at 111
    g = xtal.g_vector((1, 1, 1))
    a, b = loop.vertices[0], loop.vertices[1]
    fn = lambda p: g @ loop.displacement(p, poisson_ratio=0.39)
    assert abs(round(_winding(fn, (a + b) / 2, b - a, radius=3.0), 6)) == 1
    # at 200, G·b = 4π/3: the smooth part turns by 4π/3 and the jump at the loop surface wraps to
    # +2π/3, so exp(iφ) still winds once while the surface itself shows as a phase step
    g200 = xtal.g_vector((2, 0, 0))
    fn200 = lambda p: g200 @ loop.displacement(p, poisson_ratio=0.39)
    assert abs(round(_winding(fn200, (a + b) / 2, b - a, radius=3.0), 6)) == 1


def test_dislocation_validation():
    with pytest.raises(ValueError, match="burgers"):
        StraightDislocation(burgers=[0, 0, 0], line=[1, 0, 0], position=[0, 0, 0])
    with pytest.raises(ValueError, match="line"):
        StraightDislocation(burgers=[0.1, 0, 0], line=[np.nan, 0, 0], position=[0, 0, 0])
    with pytest.raises(ValueError, match="3 vertices"):
        DislocationLoop(burgers=[0.1, 0, 0], vertices=np.zeros((2, 3)))


def _stiffness_of(name, rotation):
    from braggscope.materials import get_material
    from braggscope.simulate import cubic_stiffness, rotate_stiffness

    m = get_material(name)
    return rotate_stiffness(cubic_stiffness(m.c11, m.c12, m.c44), rotation)


def test_anisotropic_dislocation_tends_to_volterra_in_an_isotropic_crystal(rng):
    """Stroh's field of a mixed dislocation in a cubic crystal made nearly isotropic (Zener ratio
    1.001, ν = C12 / (C11 + C12)) is the Volterra field of the isotropic one, up to a rigid
    translation (the logarithm's constant); exactly isotropic, it is refused (Stroh's eigenvalues
    coincide)."""
    from braggscope.errors import ConfigError
    from braggscope.simulate import AnisotropicDislocation, cubic_stiffness, random_orientation, rotate_stiffness

    c11, c12 = 250.0, 150.0
    keys = dict(burgers=[0.1, 0.2, -0.15], line=[1, 0.3, 0.2], position=[1, 2, 3])
    stiffness = rotate_stiffness(cubic_stiffness(c11, c12, 1.001 * (c11 - c12) / 2), random_orientation(4))
    pts = np.array([1, 2, 3])[:, None] + rng.uniform(-30, 30, (3, 2000))
    stroh = AnisotropicDislocation(**keys, stiffness=stiffness)
    volterra = StraightDislocation(**keys)
    nu = c12 / (c11 + c12)
    du = stroh.displacement(pts) - volterra.displacement(pts, poisson_ratio=nu)
    far = stroh.distance(pts) > 1.0
    du = du[:, far] - du[:, far].mean(axis=1, keepdims=True)  # the fields differ by a rigid translation
    assert np.abs(du).max() < 2e-3 * np.linalg.norm(keys["burgers"])
    g = np.array([0.3, -0.5, 0.8]) / np.linalg.norm([0.3, -0.5, 0.8])
    np.testing.assert_allclose(stroh.directional_derivative(pts, g)[:, far],
                               volterra.directional_derivative(pts, g, poisson_ratio=nu)[:, far], atol=1e-4)
    with pytest.raises(ConfigError, match="isotropic"):
        AnisotropicDislocation(**keys, stiffness=cubic_stiffness(c11, c12, (c11 - c12) / 2))


@pytest.mark.parametrize("metal", ["Au", "Cu"])
def test_anisotropic_dislocation_is_in_equilibrium_and_closes_on_b(rng, metal):
    """In gold and copper (Zener ratios 2.9 and 3.2): the stress C:∇u of Stroh's field has no
    divergence (finite differences of the closed-form gradient), the closed-form derivative
    matches finite differences of u, and a circuit around the line picks up b."""
    from braggscope.simulate import AnisotropicDislocation, random_orientation

    u_rot = random_orientation(7)
    c = _stiffness_of(metal, u_rot)
    d = AnisotropicDislocation(burgers=u_rot @ [0, 0.2, 0.2], line=u_rot @ [1, -1, 2], position=[0.5, -1, 2],
                               stiffness=c)
    pts = d.position[:, None] + rng.uniform(-20, 20, (3, 400))
    pts = pts[:, d.distance(pts) > 3.0]
    grad = lambda p: np.stack([d.directional_derivative(p, e) for e in np.eye(3)], axis=1)  # ∂u_k/∂x_l
    stress = lambda p: np.einsum("ijkl,klp->ijp", c, grad(p))
    h = 1e-3
    div = sum((stress(pts + h * e[:, None])[:, j] - stress(pts - h * e[:, None])[:, j]) / (2 * h)
              for j, e in enumerate(np.eye(3)))
    scale = np.abs(stress(pts)).max(axis=(0, 1)) / d.distance(pts)  # |σ| / r, the size of each term
    assert np.all(np.abs(div).max(axis=0) < 1e-5 * scale)
    numeric = _gradient(d.displacement, pts)
    smooth = np.all(np.abs(numeric) < 1, axis=(0, 1))  # pairs that straddle the cut are left out
    np.testing.assert_allclose(grad(pts)[:, :, smooth], numeric[:, :, smooth], atol=1e-6)
    e1, e2, _ = d.local_frame()
    theta = np.linspace(-np.pi + 1e-9, np.pi - 1e-9, 4001)
    circuit = d.position[:, None] + 5.0 * (np.outer(e1, np.cos(theta)) + np.outer(e2, np.sin(theta)))
    np.testing.assert_allclose(np.diff(d.displacement(circuit), axis=1).sum(axis=1), d.burgers, atol=1e-6)


def test_crystal_dislocation_in_anisotropic_elasticity_through_the_simulator():
    """Crystal.dislocation(elasticity="anisotropic") in a Au crystal: the simulator's phase and
    closed-form strain agree (the strain step on its object returns its strain away from the core),
    the phase still winds by G·b, and its field differs from the isotropic one by up to a few tenths
    of a radian of G·u."""
    from braggscope.simulate import AnisotropicDislocation, random_orientation, simulate_sample, truncated_octahedron
    from braggscope.strain import strain_field
    from scipy import ndimage

    u = random_orientation(5)
    xtal = Crystal(truncated_octahedron(60.0, u), "Au", u)
    aniso = xtal.dislocation((0, 0.5, 0.5), (2, -1, 1), (1.0, -2.0, 0.5), elasticity="anisotropic")
    iso = xtal.dislocation((0, 0.5, 0.5), (2, -1, 1), (1.0, -2.0, 0.5))
    assert isinstance(aniso, AnisotropicDislocation) and aniso.describe()["elasticity"] == "anisotropic"
    s = simulate_sample(xtal, [aniso], shape=(48,) * 3, voxel_size=2.0, hkl=(1, 1, 1))
    f = strain_field(s.obj, s.support, g_vector=s.g_vector, voxel_size=2.0)
    ok = s.support & ~ndimage.binary_dilation(s.dislocation_mask, iterations=2)
    err = (f.strain + f.ramp_strain - s.strain)[ok]
    assert np.sqrt(np.mean(err ** 2)) < 2e-5 < np.sqrt(np.mean(s.strain[ok] ** 2)) / 10
    g = xtal.g_vector((1, 1, 1))
    assert round(_winding(lambda p: g @ aniso.displacement(p), aniso.position, aniso.line), 6) == 1
    pts = aniso.position[:, None] + np.random.default_rng(0).uniform(-25, 25, (3, 3000))
    pts = pts[:, aniso.distance(pts) > 2.0]
    gap = np.abs(wrap_phase(g @ (aniso.displacement(pts) - iso.displacement(pts, poisson_ratio=xtal.material.poisson_ratio))))
    assert 0.05 < gap.max() < 1.0
    with pytest.raises(ValueError, match="elasticity"):
        xtal.dislocation((0, 0.5, 0.5), (2, -1, 1), elasticity="cubic")


def test_anisotropic_loop_is_the_closed_form_in_an_isotropic_crystal_and_a_straight_line_near_a_side():
    """AnisotropicLoop is Burgers' closed form plus the FFT difference of Mura's eigenstrain
    solutions: with an isotropic stiffness that difference vanishes to rounding. In Au, near the
    middle of one side of a large square shear loop, the anisotropic correction (anisotropic minus
    isotropic field) is the straight Stroh dislocation's correction along that side, to within
    what the other sides and the grid add (about a fifth); with the stiffness turned the wrong way
    it misses by more than the correction itself."""
    from braggscope.simulate import AnisotropicDislocation, AnisotropicLoop, random_orientation
    from braggscope.simulate.anisotropic import cubic_stiffness, isotropic_stiffness, rotate_stiffness

    u = random_orientation(3)
    xtal = Crystal(truncated_octahedron(120.0, u), "Au", u)
    nu = xtal.material.poisson_ratio
    small = xtal.loop((0.5, 0.5, 0), (1, 1, 1), radius=15.0)
    points = grid_points((24,) * 3, 2.0)
    same = AnisotropicLoop(burgers=small.burgers, vertices=small.vertices, stiffness=isotropic_stiffness(nu))
    np.testing.assert_allclose(same.displacement(points), small.displacement(points, poisson_ratio=nu), atol=1e-12)
    n, b = xtal.direction((1, 1, 1)), xtal.to_sample((0.5, -0.5, 0)) * xtal.lattice_parameter
    e1 = xtal.direction((1, -1, 0))
    e2 = np.cross(n, e1)
    corners = 50.0 * np.array([s1 * e1 + s2 * e2 for s1, s2 in ((-1, -1), (1, -1), (1, 1), (-1, 1))])
    middle, side = 50.0 * e1, e2  # the side from corner 1 to corner 2
    angle = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    ring = middle[:, None] + 10.0 * (np.outer(n, np.cos(angle)) + np.outer(np.cross(side, n), np.sin(angle)))
    line = AnisotropicDislocation(burgers=b, line=side, position=middle, stiffness=xtal.stiffness())
    straight = line.displacement(ring) - StraightDislocation(burgers=b, line=side, position=middle).displacement(
        ring, poisson_ratio=nu)
    straight -= straight.mean(axis=1, keepdims=True)  # each field's cut adds its own constant
    isotropic = DislocationLoop(burgers=b, vertices=corners).displacement(ring, poisson_ratio=nu)
    for stiffness, within in ((xtal.stiffness(), True), (rotate_stiffness(cubic_stiffness(
            xtal.material.c11, xtal.material.c12, xtal.material.c44), u.T), False)):
        loop = AnisotropicLoop(burgers=b, vertices=corners, stiffness=stiffness, spacing=2.5)
        correction = loop.displacement(ring) - isotropic
        correction -= correction.mean(axis=1, keepdims=True)
        miss = np.sqrt(np.mean((correction - straight) ** 2)) / np.sqrt(np.mean(straight ** 2))
        assert (miss < 0.3) if within else (miss > 1.0), miss


def test_crystal_loop_in_anisotropic_elasticity_through_the_simulator():
    """Crystal.loop(elasticity="anisotropic") in a Au crystal: the simulator's phase and its strain
    (the spectral derivative of the same FFT field) agree away from the loop line and plane; the
    field differs from the isotropic loop's by a visible fraction of a radian of G·u, and random
    defects draw such loops on request."""
    from braggscope.simulate import AnisotropicLoop, random_defects, random_orientation, simulate_sample
    from braggscope.strain import strain_field
    from scipy import ndimage

    u = random_orientation(5)
    xtal = Crystal(truncated_octahedron(60.0, u), "Au", u)
    aniso = xtal.loop((1 / 3, 1 / 3, 1 / 3), (1, 1, 1), (2.0, -1.0, 1.0), radius=10.0, sides=8,
                      elasticity="anisotropic")
    assert isinstance(aniso, AnisotropicLoop) and aniso.describe()["elasticity"] == "anisotropic"
    s = simulate_sample(xtal, [aniso], shape=(40,) * 3, voxel_size=2.0, hkl=(1, 1, 1))
    f = strain_field(s.obj, s.support, g_vector=s.g_vector, voxel_size=2.0)
    points = grid_points((40,) * 3, 2.0)
    across = np.abs(np.tensordot(aniso.normal, points - aniso.center.reshape(3, 1, 1, 1), axes=1))
    ok = s.support & ~ndimage.binary_dilation(s.dislocation_mask, iterations=2) & (across > 4.0)
    err = (f.strain + f.ramp_strain - s.strain)[ok]
    assert np.sqrt(np.mean(err ** 2)) < np.sqrt(np.mean(s.strain[ok] ** 2)) / 10
    iso = xtal.loop((1 / 3, 1 / 3, 1 / 3), (1, 1, 1), (2.0, -1.0, 1.0), radius=10.0, sides=8)
    g = s.g_vector
    far = aniso.distance(points) > 4.0
    gap = np.abs(wrap_phase(np.tensordot(g, aniso.displacement(points) - iso.displacement(
        points, poisson_ratio=xtal.material.poisson_ratio), axes=1)))[far & s.support]
    assert 0.02 < gap.max() < 1.0
    drawn = random_defects(xtal, 4, kinds=("loop",), count=(2, 2), elasticity="anisotropic")
    assert all(isinstance(d, AnisotropicLoop) for d in drawn)
