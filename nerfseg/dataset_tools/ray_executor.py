"""``--executor ray``: fan the same per-scene function out over a Ray cluster (no home-made scheduler).

Connects to an existing cluster when ``RAY_ADDRESS`` is set (``ray start --head`` on the cluster),
otherwise starts a local Ray instance. Results come back as each scene finishes.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Iterator, Sequence


def run_on_ray(fn: Callable[[Any], dict[str, Any]], jobs: Sequence[Any], num_cpus_per_job: float = 1.0) -> Iterator[dict[str, Any]]:
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - depends on the optional extra
        raise RuntimeError("--executor ray needs the ray extra: pip install 'nerfseg[ray]'") from exc

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
    for the pool (a parent that runs Blender cannot fork workers that use it).
    """
    if executor == "ray":
        yield from run_on_ray(fn, jobs)
    elif executor != "process":
        raise ValueError(f"unknown executor {executor!r}; expected 'process' or 'ray'")
    elif workers <= 1 or len(jobs) <= 1:
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
