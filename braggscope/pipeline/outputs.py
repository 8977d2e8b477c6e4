"""The files each pipeline step leaves in a scan's folder (every one written atomically):

========================  =============================================================
data.cxi                  the prepared intensity and mask, the geometry, the preparation report
diffraction.png           its three central slices
pattern.json              the pattern classifier's verdict
result.cxi                the combined reconstruction (PyNX layout), LLKs, PRTF, runs, the grid
object.png                its amplitude and phase
strain.h5, strain.vti     displacement and strain (HDF5; VTK image for ParaView, with pyvista)
strain.png                the standard strain figure
defects.json              the defect list
defects.png, defects.html the PyVista picture and its interactive view (with pyvista)
report.html, thumb.png    the scan's self-contained page; a strain thumbnail for the summary
summary.json              the summary row, timings, versions, configuration (written last)
========================  =============================================================

Every file records the pipeline's configuration, and the CXI/HDF5 files the versions and seed.
"""
from __future__ import annotations

import json


from ..io.cxi import atomic_path

__all__ = ["grid_layout", "write_data", "classify", "write_result", "write_strain", "identify", "write_report"]


def _provenance(config):
    from .scan import versions

    return {"pipeline_config": json.dumps(config.as_dict()), "versions": json.dumps(versions())}


_SCAN = ("energy", "detector_distance", "pixel_size")  # the data file stores these in its instrument group


def grid_layout(config, raw, grid, hkl) -> dict:
    """What a data or result file says of its grid (:func:`~braggscope.pipeline.scan.scan_grid`),
    so that `braggscope strain` reads the file alone: frame, q_basis, G at the peak, the scan's
    angles and sample rotation, and the reflection and material (the file's own, else the scan's
    `hkl` and [sample]'s material)."""
    geo = grid.get("geometry") or {}
    sample = {k: v for k, v in (("hkl", hkl), ("material", config.sample.material)) if v is not None}
    layout = sample | {k: v for k, v in raw.config.items() if k in ("hkl", "material")}
    layout |= {k: grid[k] for k in ("frame", "q_basis", "g_vector")}
    layout |= {k: geo[k] for k in ("rocking_step", "delta", "gamma", "rocking_axis", *_SCAN) if geo.get(k) is not None}
    return layout | {k: raw.metadata[k] for k in ("sample_rotation",) if k in raw.metadata}


def write_data(folder, config, raw, prepared, grid, hkl):
    """data.cxi (readable by `braggscope reconstruct` and `strain`, and by PyNX) and diffraction.png
    of the prepared data, with its `grid` (:func:`~braggscope.pipeline.scan.scan_grid`) and the
    scan's reflection `hkl`."""
    from ..io import write_cxi_data
    from ..viz import diffraction_figure, save_png

    geo = grid.get("geometry") or {}
    layout = {k: v for k, v in grid_layout(config, raw, grid, hkl).items() if k not in _SCAN}
    meta = {k: v for k, v in raw.metadata.items() if k in ("beamline", "file", "scan", "detector", "entry")}
    notes = {k: v for k, v in grid.items() if k in ("peak_pixel", "beam_centre")}
    write_cxi_data(folder / "data.cxi", prepared.intensity, mask=prepared.mask, energy=geo.get("energy"),
                   detector_distance=geo.get("detector_distance"), pixel_size=geo.get("pixel_size"),
                   config=layout | {"prepare": json.dumps(prepared.report), "source": json.dumps(meta),
                                    "peak": json.dumps(notes)} | _provenance(config),
                   sample_name=f"{meta.get('beamline')} scan {meta.get('scan', '')}")
    save_png(diffraction_figure(prepared.intensity, prepared.mask, title="prepared data"), folder / "diffraction.png")


def classify(folder, config, prepared, device, hkl) -> dict:
    """pattern.json: the 3-D pattern classifier's verdict on the prepared data, with the defects the
    scan's reflection `hkl` cannot show (when it is given)."""
    from ..identify.classifier import PatternClassifier

    verdict = PatternClassifier.load(dims=3, device=device).classify(prepared.intensity, prepared.mask,
                                                                     hkl=hkl).to_dict()
    with atomic_path(folder / "pattern.json") as tmp:
        tmp.write_text(json.dumps(verdict, indent=1, default=float))
    return verdict


def write_result(folder, config, solution, result, seeded, layout):
    """result.cxi (PyNX layout, with the data's grid `layout`: :func:`grid_layout`, which
    `braggscope strain` reads, alone or with other reflections of the crystal) and object.png."""
    from ..retrieval import write_solution
    from ..viz import object_figure, save_png

    write_solution(folder / "result.cxi", solution, result,
                   config=layout | {"seed": config.reconstruct.seed, "seed_net": seeded, "combine": solution.method}
                   | _provenance(config))
    save_png(object_figure(solution.obj, solution.support, title="reconstruction (on the data's grid)"),
             folder / "object.png")


def write_strain(folder, config, field, g_vector):
    """strain.h5, strain.vti (where pyvista is installed) and strain.png."""
    from .. import strain as st
    from ..viz import save_png, strain_figure

    st.write_strain(folder / "strain.h5", field, config={"g_vector": list(map(float, g_vector)),
                                                         **config.as_dict()["strain"], **_provenance(config)})
    if config.strain.vti:
        try:
            st.write_vti(folder / "strain.vti", field)
        except ImportError:
            pass  # pyvista is optional (the `viz` extra); the HDF5 file has everything
    save_png(strain_figure(field, title="strain along G"), folder / "strain.png")


def identify(folder, config, field, device):
    """defects.json, and where pyvista is installed defects.png and the interactive defects.html."""
    from ..identify import find_defects

    report = find_defects(field, method=config.identify.method, device=device)
    report.metadata["pipeline_config"] = config.as_dict()
    report.to_json(folder / "defects.json")
    if config.identify.render:
        try:
            from ..identify.render import export_html, render_png

            render_png(folder / "defects.png", field, report.defects)
            export_html(folder / "defects.html", field, report.defects)
        except ImportError:
            pass  # the pictures need the `viz` extra; the report says so
    return report


def write_report(folder, config, row, timings, field, report):
    """report.html, the scan's self-contained page, and thumb.png, its picture in the summary table."""
    from .report import scan_page, thumbnail

    thumbnail(field, folder / "thumb.png")
    with atomic_path(folder / "report.html") as tmp:
        tmp.write_text(scan_page(folder, config, row, timings, report), encoding="utf-8")
