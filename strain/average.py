"""Average several reconstructions of one crystal into one strain map with an uncertainty map."""
from __future__ import annotations

import dataclasses
import warnings

import numpy as np
from scipy import ndimage

from braggscope.errors import ConfigError
from braggscope.metrics import align_to

from .field import StrainField, strain_field

__all__ = ["average_strain"]


def _aligned_support(support, info):
    s = np.flip(support) if info["twin"] else support
    return ndimage.shift(s.astype(np.float32), info["shift"], order=1) > 0.5


def average_strain(objects, supports, *, g_vector, voxel_size, **options) -> StrainField:
    """Strain of several reconstructions of the same data (runs, or independent retrievals),
    aligned on the first in twin, sub-voxel position and global phase, then averaged.

    Parameters
    ----------
    objects : sequence of ndarray of complex
        Reconstructions of the same shape.
    supports : sequence of ndarray of bool
    g_vector, voxel_size, **options
        As for :func:`strain_field`.

    Returns
    -------
    StrainField
        Amplitude, phase and displacement of the mean aligned object; `strain` the mean of the
        runs' strains on the voxels that at least half of the runs hold, `strain_spread` their
        standard deviation (the uncertainty map); metadata['runs'] the number averaged.
    """
    objects = [np.asarray(o) for o in objects]
    if len(objects) < 2 or len(objects) != len(supports):
        raise ConfigError(f"averaging needs two or more reconstructions, each with its support; got "
                          f"{len(objects)} objects and {len(supports)} supports")
    reference = objects[0]
    aligned, masks = [reference], [np.asarray(supports[0], bool)]
    for obj, sup in zip(objects[1:], supports[1:]):
        if obj.shape != reference.shape:
            raise ConfigError(f"reconstructions differ in shape: {obj.shape} and {reference.shape}")
        moved, info = align_to(obj, reference)
        aligned.append(moved)
        masks.append(_aligned_support(np.asarray(sup, bool), info))
    common = np.mean(masks, axis=0) >= 0.5
    fields = [strain_field(o, m & common, g_vector=g_vector, voxel_size=voxel_size, **options)
              for o, m in zip(aligned, masks)]
    stack = np.stack([f.strain for f in fields])
    mean_obj = np.mean([o / np.abs(o).max() for o in aligned], axis=0)
    base = strain_field(mean_obj, common, g_vector=g_vector, voxel_size=voxel_size, **options)
    with warnings.catch_warnings():  # voxels no run holds give NaN by design
        warnings.simplefilter("ignore", RuntimeWarning)
        strain = np.where(common, np.nanmean(stack, axis=0), np.nan).astype(np.float32)
        spread = np.where(common, np.nanstd(stack, axis=0), np.nan).astype(np.float32)
    return dataclasses.replace(base, strain=strain, strain_spread=spread,
                               metadata=base.metadata | {"runs": len(objects)})
