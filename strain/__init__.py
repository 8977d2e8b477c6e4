"""Phase → displacement → strain and the detector-to-lab geometry (issue: strain maps).

Nothing is exported yet; the shared geometry is :mod:`braggscope.geometry`.
"""
__all__: list[str] = []
