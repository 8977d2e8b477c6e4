"""From a beamtime's raw scans to a defect report: ``Pipeline(config).run()`` (or
``braggscope run CONFIG.toml``) loads each scan, prepares it, classifies its pattern, reconstructs
it (the network's seed and our engine or PyNX), computes its strain, finds its defects and writes
a folder per scan and a summary page, serially or on Dask distributed; then combines the scans of
each crystal measured at several reflections ([tensor]) into its full strain tensor.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..io.cxi import atomic_path
from .batch import run_batch
from .crystals import crystal_tensor, write_crystals
from .config import BEAMLINE_DEFAULTS, PipelineConfig, config_from_dict, load_config
from .report import summary_page
from .scan import STEPS, is_complete, load_scan, run_scan, scan_folder

__all__ = ["Pipeline", "PipelineConfig", "load_config", "config_from_dict", "BEAMLINE_DEFAULTS", "run_scan",
           "run_batch", "load_scan", "scan_folder", "is_complete", "STEPS"]


class Pipeline:
    """The configured chain over a batch of scans.

    Parameters
    ----------
    config : PipelineConfig, dict or path
        A validated configuration, its tables as a dict, or a TOML file.
    """

    def __init__(self, config):
        self.crystals = []
        if isinstance(config, PipelineConfig):
            self.config = config
        elif isinstance(config, dict):
            self.config = config_from_dict(config)
        else:
            self.config = load_config(config)

    def run(self, scans=None, *, force=False, progress=None) -> list:
        """Process `scans` (default: the config's) and return their rows (status 'done', 'skipped'
        or 'failed'); ``summary.html`` and ``summary.json`` in the output folder list these and
        every other scan of the configuration that has a result or an error there. The crystals
        of [tensor] whose scans all have results are then combined (``crystals.json``, kept as
        `self.crystals`)."""
        scans = list(self.config.data.scans if scans is None else scans)
        rows = run_batch(self.config, scans, force=force, progress=progress)
        table = rows + [row for scan in self.config.data.scans if scan not in scans
                        and (row := self._earlier(scan)) is not None]
        out = Path(self.config.output)
        with atomic_path(out / "summary.json") as tmp:
            tmp.write_text(json.dumps([{k: v for k, v in r.items() if k != "config"} for r in table], indent=1,
                                      default=str))
        if self.config.tensor.crystals:
            self.crystals = [crystal_tensor(self.config, group) for group in self.config.tensor.crystals]
            write_crystals(self.config, self.crystals)
        with atomic_path(out / "summary.html") as tmp:
            tmp.write_text(summary_page(table, out, self.crystals), encoding="utf-8")
        return rows

    def _earlier(self, scan):
        """The row an earlier run left for `scan`: its complete result, or its error; None if neither."""
        if (row := is_complete(self.config, scan)) is not None:
            return row | {"status": "skipped"}
        error = scan_folder(self.config, scan) / "error.json"
        return json.loads(error.read_text()) if error.is_file() else None
