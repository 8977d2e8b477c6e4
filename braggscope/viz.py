"""Pictures: central orthogonal slices of crystals and diffraction patterns, as PNG.

matplotlib's object API (Figure + Agg canvas) is used, so nothing global (backend, pyplot state)
is touched. PyVista 3-D rendering arrives with :mod:`braggscope.identify`.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .io.cxi import atomic_path

__all__ = ["central_slices", "sample_figure", "strain_figure", "strain_tensor_figure", "diffraction_figure",
           "reconstruction_figure",
           "object_figure", "planning_figure", "laue_figure", "laue_png", "save_png"]

_AXES = ("z", "y", "x")


def central_slices(volume):
    """The three central orthogonal slices (YX at z = Z//2, ZX, ZY) of a 3-D array, or the
    2-D array itself as one slice."""
    v = np.asarray(volume)
    if v.ndim == 2:
        return [v]
    return [v[v.shape[0] // 2], v[:, v.shape[1] // 2], v[:, :, v.shape[2] // 2]]


def _figure(rows, ncols, size=3.0):
    from matplotlib.figure import Figure

    return Figure(figsize=(size * ncols + 1.2, size * len(rows)), constrained_layout=True)


def sample_figure(sample, *, title=None):
    """Figure of a simulated crystal: amplitude, phase G·u (wrapped), displacement along G
    [nm] and strain along G, one row each, the three central slices as columns; the outside of
    the support masked, diverging maps centred on zero."""
    g_hat = sample.g_vector / np.linalg.norm(sample.g_vector)
    u_g = np.tensordot(g_hat, sample.displacement, axes=1)
    wrapped = np.angle(sample.obj)
    lim_u = float(np.abs(u_g[sample.support]).max()) or 1.0
    lim_e = float(np.percentile(np.abs(sample.strain[sample.support]), 99.5)) or 1e-4
    rows = [("amplitude", sample.amplitude, "gray_r", 0, 1, ""), ("phase", wrapped, "twilight", -np.pi, np.pi, "rad"),
            ("displacement", u_g, "RdBu_r", -lim_u, lim_u, "nm"), ("strain", sample.strain, "RdBu_r", -lim_e, lim_e, "")]
    return _grid(rows, sample.support, sample.voxel_size, title)


def strain_figure(field, *, title=None):
    """The standard figure of a strain field (:class:`braggscope.strain.StrainField`), laid out as
    cdiutils users know it: one row per quantity (amplitude, phase, displacement along G [nm],
    strain along G [%]), the three central orthogonal slices as columns, one colour bar with units
    per row, the outside of the support masked, diverging maps centred on zero."""
    from scipy import ndimage

    box = ndimage.find_objects(field.support.astype(np.uint8))[0]  # the crystal and a 3-voxel margin
    box = tuple(slice(max(b.start - 3, 0), b.stop + 3) for b in box)
    support = field.support[box]
    robust = lambda v, q: float(np.nanpercentile(np.abs(v[box][support]), q))
    lim_p = min(robust(field.phase, 99.5), np.pi) or 1e-3
    lim_u = robust(field.displacement, 99.5) or 1e-3
    lim_e = robust(field.strain, 99.0) * 100 or 1e-3
    rows = [("amplitude", field.amplitude[box], "gray_r", 0, 1, ""),
            ("phase", field.phase[box], "twilight_shifted" if lim_p == np.pi else "RdBu_r", -lim_p, lim_p, "rad"),
            ("displacement", field.displacement[box], "RdBu_r", -lim_u, lim_u, "nm"),
            ("strain", field.strain[box] * 100, "RdBu_r", -lim_e, lim_e, "%")]
    h = field.voxel_size
    fig = _grid(rows, support, 1.0 if h is None else h, title)
    fig.supxlabel(f"[{'voxels' if h is None else 'nm'}], {field.frame} frame; axes z, y, x", fontsize=8)
    return fig


def strain_tensor_figure(tensor, *, title=None):
    """The figure of a strain tensor (:class:`braggscope.strain.StrainTensor`): one row per
    component ε_zz, ε_yy, ε_xx, ε_zy, ε_zx, ε_yx [%] of its frame (ε_11 ... ε_23 along [100],
    [010], [001] in the crystal frame), then the misfit of the
    reflections [%] where there are more than three, the three central slices as columns, one
    colour scale for the six components (diverging, centred on zero)."""
    from scipy import ndimage

    box = ndimage.find_objects(tensor.support.astype(np.uint8))[0]
    box = tuple(slice(max(b.start - 3, 0), b.stop + 3) for b in box)
    support = tensor.support[box]
    eps = tensor.strain[(slice(None), slice(None)) + box] * 100
    lim = float(np.nanpercentile(np.abs(eps[:, :, support]), 99.0)) or 1e-3
    names = "123" if tensor.frame == "crystal" else "zyx"
    rows = [(f"ε_{names[i]}{names[j]}", eps[i, j], "RdBu_r", -lim, lim, "%")
            for i, j in ((0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2))]
    if tensor.misfit is not None:
        misfit = tensor.misfit[box] * 100
        rows.append(("misfit", misfit, "magma_r", 0, float(np.nanpercentile(misfit[support], 99.0)) or 1e-3, "%"))
    h = abs(float(np.linalg.det(tensor.voxel))) ** (1 / 3)
    fig = _grid(rows, support, h, title, unmasked=())
    axes = "; components along [100], [010], [001]" if tensor.frame == "crystal" else ""
    fig.supxlabel(f"[nm], {tensor.frame} frame; slices along the grid's z, y, x{axes}", fontsize=8)
    return fig


def _grid(rows, support, voxel_size, title, unmasked=("amplitude",)):
    slices_support = central_slices(support)
    ncols = len(slices_support)
    fig = _figure(rows, ncols)
    axes = fig.subplots(len(rows), ncols, squeeze=False)
    for r, (name, vol, cmap, vmin, vmax, unit) in enumerate(rows):
        for c, (sl, sup) in enumerate(zip(central_slices(vol), slices_support)):
            ax = axes[r, c]
            data = sl if name in unmasked else np.ma.masked_where(~sup, sl)
            extent = (0, sl.shape[1] * voxel_size, sl.shape[0] * voxel_size, 0)
            im = ax.imshow(data, cmap=cmap, vmin=vmin, vmax=vmax, extent=extent, interpolation="nearest")
            ax.set_title(f"{name}, {'central' if ncols == 1 else ['z', 'y', 'x'][c] + ' = centre'}", fontsize=9)
            ax.tick_params(labelsize=7)
        fig.colorbar(im, ax=axes[r, :].tolist(), label=f"{name} [{unit}]" if unit else name, shrink=0.9)
    if title:
        fig.suptitle(title)
    return fig


def reconstruction_figure(obj, truth, *, voxel_size, title=None):
    """Figure comparing a reconstruction (already aligned on the truth, see
    :func:`braggscope.metrics.align_to`) with the truth: amplitude and phase rows of each."""
    support = np.abs(truth) > 0.5 * np.abs(truth).max()
    top = max(float(np.abs(truth).max()), 1e-12)
    rows = [("true amplitude", np.abs(truth) / top, "gray_r", 0, 1, ""),
            ("reconstructed amplitude", np.abs(obj) / top, "gray_r", 0, 1, ""),
            ("true phase", np.angle(truth), "twilight", -np.pi, np.pi, "rad"),
            ("reconstructed phase", np.angle(obj), "twilight", -np.pi, np.pi, "rad")]
    return _grid(rows, support, voxel_size, title, unmasked=("true amplitude", "reconstructed amplitude"))


def object_figure(obj, support, *, voxel_size=1.0, title=None):
    """Figure of a reconstruction without a truth: amplitude and phase (inside the support)
    through the support's centre. `voxel_size` in nm (1 gives voxel units)."""
    top = max(float(np.abs(obj).max()), 1e-12)
    unit = "nm" if voxel_size != 1.0 else "voxels"
    rows = [("amplitude", np.abs(obj) / top, "gray_r", 0, 1, ""),
            ("phase", np.angle(obj), "twilight", -np.pi, np.pi, "rad")]
    fig = _grid(rows, np.asarray(support, bool), voxel_size, title)
    fig.supxlabel(f"[{unit}]", fontsize=8)
    return fig


def diffraction_figure(intensity, mask=None, *, title=None):
    """Figure of a diffraction pattern: log10 of the three central slices, masked pixels grey."""
    i = np.asarray(intensity, dtype=float)
    m = np.zeros(i.shape, bool) if mask is None else np.asarray(mask, bool)
    fig = _figure([0], len(central_slices(i)))
    axes = fig.subplots(1, len(central_slices(i)), squeeze=False)[0]
    vmax = np.log10(max(i.max(), 1.0))
    for ax, sl, ms, name in zip(axes, central_slices(i), central_slices(m), ("frame (z) = centre", "y = centre", "x = centre")):
        im = ax.imshow(np.ma.masked_where(ms, np.log10(np.maximum(sl, 0) + 1)), cmap="turbo", vmin=0, vmax=vmax,
                       interpolation="nearest")
        ax.set_facecolor("0.6")
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=7)
    fig.colorbar(im, ax=list(axes), label="log10(counts + 1)", shrink=0.9)
    if title:
        fig.suptitle(title)
    return fig


def planning_figure(observations, *, references=None, title=None):
    """Figure of a planning session: the efficiency J = log10(error² × beam time) of every scan
    and the best so far against the simulator calls, and every scan's error [pm] against its beam
    time [s] with the Pareto front; `references` maps a name to a J drawn as a level line."""
    fig = _figure([0], 2, size=4.0)
    ax_j, ax_front = fig.subplots(1, 2)
    j = np.array([o.efficiency for o in observations])
    calls = np.arange(1, len(j) + 1)
    ax_j.plot(calls, j, "o", color="0.6", label="scan")
    ax_j.plot(calls, np.minimum.accumulate(j), "-", color="C0", label="best so far")
    for k, (name, value) in enumerate((references or {}).items()):
        ax_j.axhline(value, ls="--", color=f"C{k + 1}", label=name)
    ax_j.set(xlabel="simulator calls", ylabel="J = log10(error² [nm²] × time [s])")
    ax_j.legend(fontsize=8)
    times = np.array([o.beam_time for o in observations])
    errors = np.array([o.error for o in observations]) * 1e3
    order = np.argsort(times)
    front = order[np.asarray(errors[order]) <= np.minimum.accumulate(errors[order])]
    ax_front.plot(times, errors, "o", color="0.6")
    ax_front.step(times[front], errors[front], "-", where="post", color="C0", label="Pareto front")
    ax_front.set(xscale="log", yscale="log", xlabel="beam time [s]", ylabel="displacement error [pm]")
    ax_front.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return fig


def laue_figure(counts, spots=(), *, label=12, title=None):
    """A Laue frame (log counts) with the `spots` (dicts with x, y, hkl, grain, intensity) circled
    in one colour per grain and the `label` brightest ones marked with their hkl."""
    from matplotlib import colormaps

    fig = _figure([None], 1, size=7.0)
    ax = fig.add_subplot(1, 1, 1)
    c = np.asarray(counts, dtype=float)
    ax.imshow(np.log1p(np.maximum(c - np.median(c), 0)), cmap="gray_r", origin="upper")
    colours = colormaps["tab10"]
    for s in spots:
        ax.plot(s["x"], s["y"], "o", mfc="none", mec=colours(s["grain"] % 10), ms=6, mew=0.8)
    for s in sorted(spots, key=lambda s: -s["intensity"])[:label]:
        ax.annotate(" ".join(str(v) for v in s["hkl"]), (s["x"], s["y"]), xytext=(5, 5),
                    textcoords="offset points", fontsize=7, color=colours(s["grain"] % 10))
    ax.set_xlabel("x [pixel]")
    ax.set_ylabel("y [pixel]")
    ax.set_title(title or f"{len(spots)} spots (circles coloured by grain)")
    return fig


def laue_png(path, counts, spots=(), **kwargs) -> Path:
    """Write :func:`laue_figure` as PNG."""
    return save_png(laue_figure(counts, spots, **kwargs), path)


def save_png(fig, path, *, dpi=110) -> Path:
    """Save a matplotlib Figure as PNG atomically (Agg canvas, no global backend)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    return Path(path)
