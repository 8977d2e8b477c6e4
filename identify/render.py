"""3-D pictures of a crystal and its defects with PyVista.

The crystal is a translucent amplitude isosurface coloured by strain (not by phase: interpolating
a wrapped phase leaves a seam at ±π), dislocation lines are tubes, faults and twin boundaries
surfaces. Off screen (no display) the plain vtk wheel renders through EGL with Mesa
(``VTK_DEFAULT_OPENGL_WINDOW=vtkEGLRenderWindow``, set here before vtk is imported); an HTML
export (vtk.js, through trame) shares an interactive view.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from braggscope.errors import OptionalDependencyError
from braggscope.io.cxi import atomic_path

__all__ = ["defect_scene", "render_png", "export_html", "show"]

_COLOURS = {"dislocation": "crimson", "dislocation_loop": "darkorange", "stacking_fault": "royalblue",
            "twin_boundary": "seagreen"}


def _pyvista(off_screen):
    if off_screen and not os.environ.get("DISPLAY"):
        os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
    try:
        import pyvista
    except ImportError:
        raise OptionalDependencyError("pyvista", "viz") from None
    return pyvista


def _points_nm(indices, voxel, shape):
    return (np.asarray(indices, float) - np.array(shape) // 2) @ np.asarray(voxel).T


def defect_scene(pv, field, defects, *, isosurface=0.3, off_screen=True):
    """A pyvista Plotter with the crystal and its defects (axes in nm; z, y, x array axes drawn
    as the plot's z, y, x)."""
    amp = np.nan_to_num(np.asarray(field.amplitude, np.float32))
    voxel = np.asarray(field.voxel, float)
    shape = amp.shape
    plotter = pv.Plotter(off_screen=off_screen, window_size=(900, 800))
    plotter.set_background("white")
    grid = pv.StructuredGrid(*_grid_xyz(shape, voxel))
    grid.point_data["amplitude"] = (amp / max(amp.max(), 1e-12)).transpose(2, 1, 0).ravel(order="F")
    strain = np.nan_to_num(np.asarray(field.strain, np.float32)) * np.asarray(field.support, bool)
    grid.point_data["strain"] = strain.transpose(2, 1, 0).ravel(order="F")
    surface = grid.contour([isosurface], scalars="amplitude")
    if surface.n_points:
        limit = float(np.percentile(np.abs(strain[np.asarray(field.support, bool)]), 99)) or 1e-4
        plotter.add_mesh(surface, scalars="strain", cmap="coolwarm", clim=(-limit, limit), opacity=0.35,
                         scalar_bar_args={"title": "strain"})
    for d in defects:
        pts = _points_nm(d["voxels"], voxel, shape)[:, ::-1]  # pyvista wants x, y, z
        colour = _COLOURS.get(d["type"], "black")
        if "polyline_nm" in d and len(pts) >= 2:
            line = np.asarray(d["polyline_nm"])[:, ::-1]
            plotter.add_mesh(pv.Spline(line, max(len(line) * 2, 10)).tube(radius=0.8 * np.abs(voxel).max()),
                             color=colour)
        elif len(pts) >= 3:
            cloud = pv.PolyData(pts)
            plotter.add_mesh(cloud.delaunay_2d(alpha=2.0 * np.abs(voxel).max()), color=colour, opacity=0.8)
    plotter.add_axes(xlabel="x", ylabel="y", zlabel="z")
    plotter.camera_position = "iso"
    return plotter


def _grid_xyz(shape, voxel):
    """x, y, z [nm] of every voxel (pyvista order) for a grid of edges `voxel` (columns z, y, x)."""
    idx = np.indices(shape).reshape(3, -1).T - np.array(shape) // 2
    pos = idx @ voxel.T  # (M, 3) in z, y, x
    to_grid = lambda c: pos[:, c].reshape(shape).transpose(2, 1, 0)
    return to_grid(2), to_grid(1), to_grid(0)


def render_png(path, field, defects, *, isosurface=0.3):
    """Write a PNG picture of the crystal and its defects, off screen, atomically."""
    pv = _pyvista(True)
    plotter = defect_scene(pv, field, defects, isosurface=isosurface)
    with atomic_path(path) as tmp:
        staged = tmp.with_name(tmp.name + ".png")
        plotter.screenshot(str(staged))
        os.replace(staged, tmp)
    plotter.close()
    return Path(path)


def export_html(path, field, defects, *, isosurface=0.3):
    """Write an interactive HTML view (vtk.js, offline, through trame-vtk; needs the `viz`
    extra: trame-pyvista and nest_asyncio2)."""
    pv = _pyvista(True)
    plotter = defect_scene(pv, field, defects, isosurface=isosurface)
    try:
        with atomic_path(path) as tmp:
            staged = tmp.with_name(tmp.name + ".html")
            with warnings.catch_warnings():  # its successor, plotter.trame.export_html, goes on line
                warnings.simplefilter("ignore")
                plotter.export_html(str(staged))
            os.replace(staged, tmp)
    except ImportError as err:
        raise OptionalDependencyError(str(err.name or "trame"), "viz") from None
    finally:
        plotter.close()
    return Path(path)


def show(field, defects, *, isosurface=0.3):
    """Open an interactive window (needs a display)."""
    pv = _pyvista(False)
    defect_scene(pv, field, defects, isosurface=isosurface, off_screen=False).show()
