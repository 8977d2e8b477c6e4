"""Many scans: serially, or on Dask distributed — a LocalCluster on this machine, or
dask-jobqueue's SLURMCluster (one job per worker) where the configuration names a cluster. Each
scan is one task (:func:`~braggscope.pipeline.scan.run_scan`); its failure comes back as a row.
"""
from __future__ import annotations

from contextlib import contextmanager

from ..errors import OptionalDependencyError
from .scan import failed_row, run_scan

__all__ = ["run_batch", "slurm_cluster"]


def _distributed():
    try:
        import distributed
    except ImportError:
        raise OptionalDependencyError("distributed", "cluster") from None
    return distributed


def slurm_cluster(c):
    """dask-jobqueue's SLURMCluster for the [cluster] configuration `c`: one single-process job per
    worker, with `gpus_per_worker` GPUs requested through ``--gres`` (not yet scaled: no job runs)."""
    try:
        from dask_jobqueue import SLURMCluster
    except ImportError:
        raise OptionalDependencyError("dask_jobqueue", "cluster", hint="pip install dask-jobqueue") from None
    extra = list(c.job_extra) + ([f"--gres=gpu:{c.gpus_per_worker}"] if c.gpus_per_worker else [])
    return SLURMCluster(queue=c.queue, account=c.account, cores=c.cores, processes=1, memory=c.memory,
                        walltime=c.walltime, job_extra_directives=extra)


@contextmanager
def _cluster(c):
    """A started Dask cluster for the [cluster] configuration `c`."""
    distributed = _distributed()
    if c.kind == "local":
        import dask

        # Dask's nanny sets MALLOC_TRIM_THRESHOLD_ in its workers, which turns off glibc's adaptive
        # mmap threshold: every large temporary array of the engine is then mapped and faulted in
        # afresh: one 128³ reconstruction took 85 s in such a worker against 40 s without (one measurement)
        with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}), \
                distributed.LocalCluster(n_workers=c.workers, threads_per_worker=1, processes=True,
                                         dashboard_address=None) as cluster:
            yield cluster
        return
    with slurm_cluster(c) as cluster:
        cluster.scale(jobs=c.workers)
        yield cluster


def run_batch(config, scans, *, force=False, progress=None) -> list:
    """Summary rows of `scans` in their order: each processed (or skipped where complete, or
    'failed'), serially or on the configuration's Dask cluster."""
    c = config.cluster
    step = progress or (lambda row: None)
    if c.kind == "serial":
        rows = []
        for scan in scans:
            rows.append(run_scan(config, scan, force=force))
            step(rows[-1])
        return rows
    distributed = _distributed()
    threads = c.threads_per_worker if c.kind == "local" else c.cores
    with _cluster(c) as cluster, distributed.Client(cluster) as client:
        futures = client.map(run_scan, [config] * len(scans), scans, force=force, threads=threads, pure=False)
        scan_of, rows = {f.key: scan for f, scan in zip(futures, scans)}, {}
        for future in distributed.as_completed(futures):
            try:
                row = future.result()
            except Exception as err:  # the worker itself died (killed for memory, ...): that scan failed
                row = failed_row(config, scan_of[future.key], err)
            rows[future.key] = row
            step(row)
        return [rows[f.key] for f in futures]
