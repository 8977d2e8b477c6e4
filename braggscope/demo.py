"""The demonstration chain on a built-in simulated crystal: files, pictures and an HTML report.

What it runs today: the simulator (a Pt truncated octahedron with an edge dislocation, a
prismatic loop and a stacking fault, measured at 111 on a Maxipix-like detector with Poisson
noise), the CXI file, the pictures and the report. Phase retrieval, strain and defect
identification join the chain as they land.
"""
from __future__ import annotations

import base64
import html
import json
import time
from pathlib import Path

import numpy as np

from .io import write_simulation
from .io.cxi import atomic_path
from .simulate import Crystal, Detector, simulate_bcdi, truncated_octahedron
from .viz import diffraction_figure, sample_figure, save_png

__all__ = ["run_demo", "demo_crystal"]


def demo_crystal():
    """The built-in crystal and defects: Pt, 180 nm truncated octahedron with [111] along z,
    an edge dislocation a/2[10-1] along [1-21], a prismatic loop a/3[111] and a stacking fault."""
    from .simulate import orientation_from_axes

    xtal = Crystal(truncated_octahedron(180.0, orientation_from_axes((1, 1, 1))), "Pt",
                   orientation_from_axes((1, 1, 1)))
    defects = [
        xtal.dislocation(burgers=(0.5, 0, -0.5), line=(1, -2, 1), position=(0.0, 20.0, -10.0)),
        xtal.loop(burgers=(1 / 3, 1 / 3, 1 / 3), plane=(1, 1, 1), center=(-35.0, -15.0, 25.0), radius=18.0, sides=6),
        xtal.stacking_fault(plane=(1, -1, 1), fault_vector=(1 / 6, 1 / 3, 1 / 6), center=(30.0, -20.0, 10.0),
                            radius=25.0),
    ]
    return xtal, defects


def _img(path):
    return f'<img src="data:image/png;base64,{base64.b64encode(Path(path).read_bytes()).decode()}" style="max-width:100%">'


def _report(path, data, timings, files):
    s = data.sample
    rows = "".join(f"<tr><td>{html.escape(d['type'])}</td><td><code>{html.escape(json.dumps(d, default=float))}</code></td></tr>"
                   for d in s.defects)
    times = "".join(f"<tr><td>{k}</td><td>{v:.2f} s</td></tr>" for k, v in timings.items())
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>braggscope demo</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:auto}}td{{padding:2px 8px;vertical-align:top}}
code{{font-size:80%}}</style></head><body>
<h1>braggscope demo: a simulated defective Pt nanocrystal</h1>
<p>{s.material}, reflection {s.hkl}, |G| = {np.linalg.norm(s.g_vector):.3f} nm⁻¹, grid {s.obj.shape} of
{s.voxel_size} nm voxels, {int(s.support.sum())} voxels in the crystal; data {data.intensity.shape}
({data.frame} frame, {data.model} model), {data.intensity.sum():.3g} photons, {int(data.mask.sum())} masked pixels.</p>
<h2>Ground truth</h2>{_img(files['sample_png'])}
<h2>Diffraction pattern</h2>{_img(files['diffraction_png'])}
<h2>Defects</h2><table>{rows}</table>
<h2>Timings</h2><table>{times}</table>
<p>Files: {', '.join(html.escape(Path(p).name) for p in files.values())}</p>
<p>Not in the chain yet: phase retrieval, strain from the reconstruction, defect identification, scan planning.</p>
</body></html>"""
    with atomic_path(path) as tmp:
        tmp.write_text(page, encoding="utf-8")


def run_demo(out_dir, *, shape=(96, 96, 96), voxel_size=3.0, photons=1e9, seed=0, progress=None) -> dict:
    """Run the demonstration chain and write its files into `out_dir`.

    Parameters
    ----------
    out_dir : str or Path
    shape : tuple of int
        Real-space grid of the simulation.
    voxel_size : float
        [nm]
    photons : float
        Photon budget of the measurement.
    seed : int
    progress : callable, optional
        Called with the name of each step as it starts.

    Returns
    -------
    dict
        Paths of the written files (data.cxi, sample.png, diffraction.png, report.html).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    step = progress or (lambda name: None)
    timings = {}
    t = time.perf_counter()
    step("simulate")
    xtal, defects = demo_crystal()
    data = simulate_bcdi(xtal, defects, hkl=(1, 1, 1), shape=shape, voxel_size=voxel_size,
                         detector=Detector(photons=photons, gaps="maxipix"), rng=seed)
    timings["simulate"] = time.perf_counter() - t
    files = {"data": out / "data.cxi", "sample_png": out / "sample.png", "diffraction_png": out / "diffraction.png"}
    t = time.perf_counter()
    step("write")
    write_simulation(files["data"], data, seed=seed)
    step("pictures")
    save_png(sample_figure(data.sample, title="simulated Pt crystal: ground truth"), files["sample_png"])
    save_png(diffraction_figure(data.intensity, data.mask, title="simulated 111 Bragg peak"), files["diffraction_png"])
    timings["files and pictures"] = time.perf_counter() - t
    files["report"] = out / "report.html"
    step("report")
    _report(files["report"], data, timings, files)
    return {k: str(v) for k, v in files.items()}
