"""From a beamtime's raw scans to a defect report: ``Pipeline(config).run()`` (or
``braggscope run CONFIG.toml``) loads each scan, prepares it, classifies its pattern, reconstructs
it (the network's seed and our engine or PyNX), computes its strain, finds its defects and writes
a folder per scan and a summary page, serially or on Dask distributed.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..io.cxi import atomic_path
from .batch import run_batch
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
        if isinstance(config, PipelineConfig):
            self.config = config
        elif isinstance(config, dict):
            self.config = config_from_dict(config)
        else:
            self.config = load_config(config)

    def run(self, scans=None, *, force=False, progress=None) -> list:
        """Process `scans` (default: the config's), write ``summary.html`` and ``summary.json`` in
        the output folder, and return the rows (status 'done', 'skipped' or 'failed')."""
        scans = list(self.config.data.scans if scans is None else scans)
        rows = run_batch(self.config, scans, force=force, progress=progress)
        out = Path(self.config.output)
        with atomic_path(out / "summary.json") as tmp:
            tmp.write_text(json.dumps([{k: v for k, v in r.items() if k != "config"} for r in rows], indent=1,
                                      default=str))
        with atomic_path(out / "summary.html") as tmp:
            tmp.write_text(summary_page(rows, out), encoding="utf-8")
        return rows
