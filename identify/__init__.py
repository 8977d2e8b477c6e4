"""Defect identification in reconstructed crystals (issue: physics baseline and 3-D U-Net).

Nothing is exported yet.
"""
__all__: list[str] = []
