"""After the scans: the crystals measured at several reflections ([tensor] crystals), each
combined from its scans' result files into the full strain tensor,
``crystal_<scans>.h5`` in the output folder, and a row of ``crystals.json``."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import BraggscopeError
from .scan import scan_folder

__all__ = ["crystal_tensor", "write_crystals"]


def crystal_tensor(config, scans) -> dict:
    """The row of the crystal measured by `scans`: 'done' with its tensor file and figures,
    'waiting' while a scan has no result yet, or 'failed' with the reason."""
    from .. import strain as st
    from .outputs import _provenance

    name = "crystal_" + "_".join(str(s) for s in scans)
    row = {"crystal": name, "scans": list(scans)}
    paths = [scan_folder(config, s) / "result.cxi" for s in scans]
    missing = [s for s, p in zip(scans, paths) if not p.is_file()]
    if missing:
        return row | {"status": "waiting", "missing": missing}
    try:
        found = st.tensor_from_results(paths, hkls=[config.sample.hkl_of(s) for s in scans],
                                       material=config.sample.material, isosurface=config.strain.isosurface,
                                       order=config.strain.order, frame=config.tensor.frame)
    except BraggscopeError as err:
        return row | {"status": "failed", "error": f"{type(err).__name__}: {err}"}
    from ..viz import save_png, strain_tensor_figure

    out = Path(config.output) / f"{name}.h5"
    tensor = found.tensor
    st.write_strain_tensor(out, tensor, config=found.config | _provenance(config))
    reflections = ", ".join(" ".join(map(str, k)) for k in found.config["hkls"])
    save_png(strain_tensor_figure(tensor, title=f"{name}: {reflections}"), out.with_suffix(".png"))
    eps = tensor.strain[:, :, tensor.support]
    return row | {"status": "done", "file": str(out), "frame": tensor.frame, "voxels": int(tensor.support.sum()),
                  "hkls": found.config["hkls"], "strain_rms": float(np.sqrt(np.mean(eps ** 2))),
                  "dilatation_mean": float(np.mean(np.trace(eps))),
                  "misfit_median": None if tensor.misfit is None else float(np.median(tensor.misfit[tensor.support])),
                  "orientation": found.config["orientation"],
                  "orientation_misfit_deg": max(found.config["orientation_misfit_deg"]),
                  "twins_taken": sum(i["twin"] for i in found.config["alignment"]),
                  "twins_undecided": [s for s, i in zip(scans, found.config["alignment"]) if i["twin_undecided"]],
                  "dislocations": [{"burgers": d["nearest"], "off_a": d["nearest_distance"], "windings": d["windings"],
                                    "agreement": d["agreement"]} for d in found.config["dislocations"]]}


def write_crystals(config, rows):
    """crystals.json: the rows of every [tensor] crystal."""
    from ..io.cxi import atomic_path

    with atomic_path(Path(config.output) / "crystals.json") as tmp:
        tmp.write_text(json.dumps(rows, indent=1, default=str))
