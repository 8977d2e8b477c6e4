"""braggscope: Bragg coherent X-ray diffraction imaging from the detector to a defect list.

Subpackages: :mod:`braggscope.simulate` (defective nanocrystals and their diffraction),
:mod:`braggscope.io` (CXI files), :mod:`braggscope.retrieval`, :mod:`braggscope.strain`,
:mod:`braggscope.identify`, :mod:`braggscope.acquisition`. Conventions: :mod:`braggscope.physics`.
"""
__version__ = "0.1.0"
