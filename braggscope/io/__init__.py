"""File formats: CXI (PyNX layout) for data and results, .npz/.npy as input."""
from .cxi import CXIData, atomic_path, read_cxi_result, read_data, read_result, validate_intensity, write_cxi_data, \
    write_cxi_result
from .simulated import write_simulation

__all__ = ["CXIData", "atomic_path", "read_data", "validate_intensity", "write_cxi_data", "write_simulation",
           "write_cxi_result", "read_cxi_result", "read_result"]
