"""Write a simulated BCDI data set with its ground truth to one CXI file (read it with
:func:`braggscope.io.read_data`: the truth comes back as its `ground_truth`)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .cxi import write_cxi_data

__all__ = ["write_simulation"]


def write_simulation(path, data, *, seed=None) -> Path:
    """Write a :class:`~braggscope.simulate.BCDIData` to `path`: data, mask, geometry, the
    configuration and /entry_1/ground_truth (object, support, displacement, strain, masks,
    defect list, and the truth of the detector's gaps, hot pixels and aliens)."""
    s, g = data.sample, data.geometry
    config = {"frame": data.frame, "model": data.model, "q_basis": data.q_basis, "hkl": np.asarray(s.hkl),
              "g_vector": s.g_vector, "material": s.material, "voxel_size": s.voxel_size, "seed": seed}
    if g is not None:
        config.update({"rocking_step": g.rocking_step, "delta": g.delta, "gamma": g.gamma,
                       "rocking_axis": g.rocking_axis})
    if "sample_rotation" in s.metadata:  # the goniometer's turn of the sample (a beamline file's, simulated)
        config["sample_rotation"] = s.metadata["sample_rotation"]
    truth = {"object": s.obj, "amplitude": s.amplitude, "support": s.support, "displacement": s.displacement,
             "phase": s.phase, "strain": s.strain, "dislocation_mask": s.dislocation_mask,
             "fault_mask": s.fault_mask, "twin_mask": s.twin_mask, "defects": s.defects,
             "g_vector": s.g_vector, "hkl": np.asarray(s.hkl), "voxel_size": s.voxel_size,
             "material": s.material, "orientation": s.orientation, "noiseless_intensity": data.noiseless,
             **{f"detector_{k}": v for k, v in data.measurement.truth.items()}, **s.metadata}
    return write_cxi_data(path, data.intensity, mask=data.mask,
                          energy=None if g is None else g.energy,
                          detector_distance=None if g is None else g.detector_distance,
                          pixel_size=None if g is None else g.pixel_size,
                          config=config, ground_truth=truth, sample_name=f"simulated {s.material} {s.hkl}")

