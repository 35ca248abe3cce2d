"""``--executor ray``: fan the same per-scene function out over a Ray cluster (no home-made scheduler).

Connects to an existing cluster when ``RAY_ADDRESS`` is set (``ray start --head`` on the cluster),
otherwise starts a local Ray instance. Results come back as each scene finishes.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Iterator, Sequence

from nerfseg.errors import InputError


#: the ``--executor`` choices of :func:`map_scenes`
EXECUTORS = ("process", "ray")


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:  # the optional extra: a user's install, not a bug
        raise InputError(None, "--executor ray needs the ray extra: pip install 'nerfseg[ray]'", key="executor") from None
    return ray


def run_on_ray(fn: Callable[[Any], dict[str, Any]], jobs: Sequence[Any], num_cpus_per_job: float = 1.0) -> Iterator[dict[str, Any]]:
    """Yield ``fn(job)`` for every job as each finishes on Ray; raises :class:`InputError` at the call when
    ray is not installed (not at the first result, after other work may have started)."""
    return _ray_results(_import_ray(), fn, jobs, num_cpus_per_job)


def _ray_results(ray: Any, fn: Callable[[Any], dict[str, Any]], jobs: Sequence[Any], num_cpus_per_job: float) -> Iterator[dict[str, Any]]:
    started_here = False
    if not ray.is_initialized():
        ray.init(address=os.environ.get("RAY_ADDRESS"), include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
        started_here = True
    try:
        remote_fn = ray.remote(num_cpus=num_cpus_per_job)(fn)
        pending = [remote_fn.remote(job) for job in jobs]
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            yield ray.get(done[0])
    finally:
        if started_here:
            ray.shutdown()


def map_scenes(
    fn: Callable[[Any], dict[str, Any]], jobs: Sequence[Any], workers: int = 1, executor: str = "process", start_method: str | None = None
) -> Iterator[dict[str, Any]]:
    """Run ``fn`` on every job and yield results as they finish: in this process, on a process pool, or on Ray.

    The one fan-out every per-scene step uses (building scenes, training radiance grids), so ``--workers`` and
    ``--executor`` mean the same everywhere. ``start_method`` ("spawn", ...) overrides the platform's default
    for the pool (a parent that runs Blender cannot fork workers that use it). An unknown executor or a
    missing ray extra raises :class:`InputError` here, when called, not when the first result is awaited.
    """
    if executor not in EXECUTORS:
        raise InputError(None, f"unknown executor {executor!r}; expected one of {', '.join(EXECUTORS)}", key="executor")
    if executor == "ray":
        return run_on_ray(fn, jobs)
    return _local_results(fn, jobs, workers, start_method)


def _local_results(fn: Callable[[Any], dict[str, Any]], jobs: Sequence[Any], workers: int, start_method: str | None) -> Iterator[dict[str, Any]]:
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            yield fn(job)
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        context = None if start_method is None else multiprocessing.get_context(start_method)
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            futures = [pool.submit(fn, job) for job in jobs]
            for fut in as_completed(futures):
                yield fut.result()
