"""The pipeline's configuration: a TOML file with one table per step, defaults per beamline,
validated before any scan is touched (an unknown key is an error that names the closest known one).

>>> cfg = config_from_dict({"beamline": "34idc", "output": "out", "data": {"path": "s.spec", "frames": "f/{scan}",
...                         "scans": [54]}, "geometry": {"detector_distance": 0.5}})
>>> cfg.data.format, cfg.geometry.pixel_size, cfg.prepare.shape
('34idc', 55.0, (128, 128, 128))
>>> config_from_dict({"output": "out", "data": {"path": "x.cxi", "scans": [1]}, "reconstruct": {"run": 4}})
Traceback (most recent call last):
...
braggscope.errors.ConfigError: unknown key 'run' in [reconstruct]; did you mean 'runs'?
"""
from __future__ import annotations

import difflib
import hashlib
import json
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from .._validate import check_choice
from ..errors import ConfigError, FileFormatError

__all__ = ["PipelineConfig", "load_config", "config_from_dict", "BEAMLINE_DEFAULTS"]

FORMATS = {"id01", "id01_spec", "p10", "nanomax", "34idc", "npz", "cxi"}


@dataclass(frozen=True)
class DataConfig:
    """[data]: where the scans are. `path`, `frames`, `dark`, `whitefield` and `bad_pixels` may hold
    ``{scan}`` (formatted with the scan number, e.g. ``{scan:04d}``); relative paths are relative
    to the config file."""

    path: str
    scans: tuple
    format: str = "cxi"
    frames: str | None = None  # 34idc: the folder of TIFF frames; id01_spec: the EDF template (%d = frame number);
    # p10: the Eiger master file where not <detector>/<FIO name>_master.h5 beside the FIO file
    detector: str | None = None
    sample: str | None = None  # id01: the sample name of the BLISS entries ({sample}_{scan}.1)
    rocking_motor: str | None = None
    dark: str | None = None
    whitefield: str | None = None
    bad_pixels: str | None = None
    columns: str | None = None  # nanomax: 'inboard' or 'outboard', which way the detector's columns run

    def __post_init__(self):
        check_choice(self.format, "data.format", FORMATS)
        if self.format == "nanomax" and self.columns not in ("inboard", "outboard"):
            raise ConfigError("[data] columns must say which way the NanoMAX detector's columns run, 'inboard' or "
                              "'outboard': bcdi and cdiutils disagree, and it decides the crystal's mirror image")
        if not self.scans:
            raise ConfigError("[data] scans is empty: list the scan numbers to process")


@dataclass(frozen=True)
class GeometryConfig:
    """[geometry]: what the files do not record, or corrections to it (keV, m, µm, degrees)."""

    energy: float | None = None
    detector_distance: float | None = None
    pixel_size: float | None = None
    rocking_step: float | None = None
    delta: float | None = None
    gamma: float | None = None
    rocking_axis: str | None = None
    beam_centre: tuple | None = None  # (row, column) [pixels] of the direct beam with the detector arm at 0


@dataclass(frozen=True)
class SampleConfig:
    """[sample]: the material and reflection (for the report's d-spacing check and the strain);
    `reflections` names the reflection of scans measured at another one ({"13" = [-1, 1, 1]})."""

    material: str | None = None
    hkl: tuple | None = None
    reflections: dict | None = None

    def __post_init__(self):
        for scan, hkl in (self.reflections or {}).items():
            if not str(scan).isdigit() or len(hkl) != 3 or not all(isinstance(v, int) for v in hkl) or not any(hkl):
                raise ConfigError(f"[sample] reflections maps scan numbers to three integers (not 0 0 0), e.g. "
                                  f'"13" = [-1, 1, 1]; got {scan!r} = {hkl!r}')

    def hkl_of(self, scan) -> tuple | None:
        """The reflection of `scan`: its own in `reflections`, else `hkl`."""
        hkl = (self.reflections or {}).get(str(scan), self.hkl)
        return None if hkl is None else tuple(int(v) for v in hkl)


@dataclass(frozen=True)
class PrepareConfig:
    """[prepare]: :func:`braggscope.retrieval.prepare` after the dark and flat-field correction."""

    shape: tuple | None = (128, 128, 128)
    bin: tuple = (1, 1, 1)
    saturation: float | None = None
    remove_hot_pixels: bool = True
    remove_aliens: bool = True


@dataclass(frozen=True)
class ReconstructConfig:
    """[reconstruct]: the engine (torch or PyNX), runs, the network's seed, the recipe."""

    backend: str = "torch"
    runs: int = 4
    keep: int | None = None
    seed_net: bool | None = None  # None: where the weights are installed
    recipe: str | None = None
    psf: bool = False  # partial coherence in the default chain (default_chain(..., psf=True))
    combine: str = "mode"
    seed: int = 0
    device: str = "auto"

    def __post_init__(self):
        check_choice(self.backend, "reconstruct.backend", {"torch", "pynx"})
        if self.runs < 1 or (self.keep is not None and not 1 <= self.keep <= self.runs):
            raise ConfigError(f"[reconstruct] needs runs ≥ 1 and 1 ≤ keep ≤ runs, got runs {self.runs}, "
                              f"keep {self.keep}")
        if self.psf and self.recipe:
            raise ConfigError("[reconstruct] psf shapes the default chain; with a recipe, put PSF into it")


@dataclass(frozen=True)
class StrainConfig:
    """[strain]: the isosurface of the support, the derivative's order, the phase reference, and
    whether the beams' refraction and absorption in the crystal are undone first (needs the scan's
    geometry and [sample] material)."""

    isosurface: float = 0.3
    order: int = 4
    reference: str = "mean"
    vti: bool = True
    refraction: bool = False


@dataclass(frozen=True)
class TensorConfig:
    """[tensor]: groups of scans of one crystal at three or more reflections whose G are not
    coplanar (each scan's reflection from [sample]), combined after their scans into the full
    strain tensor (:func:`braggscope.strain.tensor_from_results`), in the sample frame or the
    crystal's cubic axes."""

    crystals: tuple = ()
    frame: str = "crystal"

    def __post_init__(self):
        check_choice(self.frame, "[tensor] frame", {"sample", "crystal"})
        for group in self.crystals:
            if not isinstance(group, (list, tuple)) or len(group) < 3 or not all(isinstance(s, int) for s in group):
                raise ConfigError(f"[tensor] crystals lists groups of three or more scan numbers, e.g. [[12, 13, 14]]; "
                                  f"got {group!r}")


@dataclass(frozen=True)
class IdentifyConfig:
    """[identify]: the defect finder and the pattern classifier."""

    method: str = "unet"
    classify: bool = True
    render: bool = True  # the PyVista picture and its interactive view (where pyvista is installed)

    def __post_init__(self):
        check_choice(self.method, "identify.method", {"unet", "baseline"})


@dataclass(frozen=True)
class ClusterConfig:
    """[cluster]: serial, a Dask LocalCluster, or dask-jobqueue's SLURMCluster (one job per worker).
    A worker runs one scan at a time, with `threads_per_worker` torch threads (local) or `cores`
    (SLURM)."""

    kind: str = "serial"
    workers: int = 2
    threads_per_worker: int = 1
    queue: str | None = None
    account: str | None = None
    cores: int = 8
    memory: str = "32GB"
    walltime: str = "02:00:00"
    gpus_per_worker: int = 0
    job_extra: tuple = ()

    def __post_init__(self):
        check_choice(self.kind, "cluster.kind", {"serial", "local", "slurm"})
        if self.workers < 1 or self.threads_per_worker < 1:
            raise ConfigError("[cluster] workers and threads_per_worker must be ≥ 1")


SECTIONS = {"data": DataConfig, "geometry": GeometryConfig, "sample": SampleConfig, "prepare": PrepareConfig,
            "reconstruct": ReconstructConfig, "strain": StrainConfig, "identify": IdentifyConfig,
            "cluster": ClusterConfig, "tensor": TensorConfig}

# what each beamline's files need and do not record
BEAMLINE_DEFAULTS = {
    "id01": {"data": {"format": "id01"}},
    "id01_spec": {"data": {"format": "id01_spec", "detector": "mpx4inr"}, "geometry": {"pixel_size": 55.0}},
    "p10": {"data": {"format": "p10", "detector": "e4m"}},  # pixel size: the Eiger master file's
    "nanomax": {"data": {"format": "nanomax"}},  # pixel size: the detector's; [data] columns must be given
    "34idc": {"data": {"format": "34idc"}, "geometry": {"pixel_size": 55.0}},  # detector: the SPEC file's #UIMDET
    "cxi": {"data": {"format": "cxi"}},
}


@dataclass(frozen=True)
class PipelineConfig:
    """The whole configuration; `source` is the file it came from (None from a dict)."""

    output: str
    data: DataConfig
    beamline: str = "cxi"
    geometry: GeometryConfig = field(default_factory=GeometryConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    prepare: PrepareConfig = field(default_factory=PrepareConfig)
    reconstruct: ReconstructConfig = field(default_factory=ReconstructConfig)
    strain: StrainConfig = field(default_factory=StrainConfig)
    identify: IdentifyConfig = field(default_factory=IdentifyConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    tensor: TensorConfig = field(default_factory=TensorConfig)
    source: str | None = None

    def __post_init__(self):
        if self.strain.refraction and self.sample.material is None:
            raise ConfigError("[strain] refraction needs the crystal's index of refraction: give [sample] material")

    def as_dict(self) -> dict:
        """The configuration as plain data (what goes into every output file)."""
        return json.loads(json.dumps(asdict(self), default=list))

    def digest(self) -> str:
        """A hash of everything that changes a scan's results: not the cluster, the file's name,
        the list of scans (a beamtime's list grows, and the scans done stay done) or the crystals
        whose scans are combined afterwards."""
        d = self.as_dict()
        for k in ("cluster", "source", "tensor"):
            d.pop(k)
        d["data"].pop("scans")
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]

    def resolve(self, template, scan) -> Path | None:
        """`template` with ``{scan}`` filled in, relative to the config file's folder."""
        if template is None:
            return None
        path = Path(str(template).format(scan=scan))
        return path if path.is_absolute() or self.source is None else Path(self.source).parent / path


def _unknown(key, known, where):
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.5)
    hint = f"; did you mean '{close[0]}'?" if close else f"; known keys: {', '.join(sorted(known))}"
    return ConfigError(f"unknown key '{key}' in {where}{hint}")


def _tuples(values):
    return {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}


_TYPES = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,), "tuple": (list, tuple), "dict": (dict,)}


def _check_type(value, annotation, where):
    """`value` against a field's annotation ('int', 'float | None', ...): a TOML value of the wrong
    type is named here rather than failing later."""
    names = [t.strip() for t in annotation.split("|")]
    if value is None and "None" in names:
        return
    allowed = tuple(t for n in names if n != "None" for t in _TYPES.get(n, (object,)))
    if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
        raise ConfigError(f"{where} must be {' or '.join(names)}, got {value!r}")


def _section(cls, values, name):
    if not isinstance(values, dict):
        raise ConfigError(f"[{name}] must be a table, got {type(values).__name__}")
    known = {f.name: f.type for f in fields(cls)}
    for key, value in values.items():
        if key not in known:
            raise _unknown(key, list(known), f"[{name}]")
        _check_type(value, known[key], f"[{name}] {key}")
    try:
        return cls(**_tuples(values))
    except TypeError as err:  # a required key is missing
        raise ConfigError(f"[{name}]: {str(err).split('() ', 1)[-1]}") from None


def _merge(base, over):
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def config_from_dict(values, *, source=None) -> PipelineConfig:
    """Validate a configuration given as nested dicts (the TOML file's tables)."""
    top = {"output", "beamline", *SECTIONS}
    for key in values:
        if key not in top:
            raise _unknown(key, sorted(top), "the top level")
    beamline = check_choice(values.get("beamline", "cxi"), "beamline", set(BEAMLINE_DEFAULTS))
    values = _merge(BEAMLINE_DEFAULTS[beamline], values)
    if "output" not in values or "data" not in values:
        raise ConfigError("the configuration needs `output` (a folder) and a [data] table (path, scans)")
    sections = {name: _section(cls, values.get(name, {}), name) for name, cls in SECTIONS.items()}
    return PipelineConfig(output=str(values["output"]), beamline=beamline, source=source, **sections)


def load_config(path) -> PipelineConfig:
    """Read and validate a pipeline configuration file (TOML)."""
    path = Path(path)
    if not path.is_file():
        raise FileFormatError(f"no such configuration file: {path}")
    try:
        values = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path} is not valid TOML: {err}") from None
    cfg = config_from_dict(values, source=str(path.resolve()))
    output = Path(cfg.output)
    return cfg if output.is_absolute() else PipelineConfig(**{**cfg.__dict__, "output": str(path.parent / output)})
