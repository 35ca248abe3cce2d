"""The evaluation worker: takes queued submissions from the store, evaluates them and records the outcome.

Why a worker and not the web request: an evaluation takes seconds to minutes and must survive a closed browser.
The worker runs as a thread of the server or as its own process (``nerfseg leaderboard worker``), polling the
database, so several workers (or a restarted one) cooperate through the store's leases:

- claim: the oldest queued submission becomes ``running`` with a lease (``lease_seconds``);
- heartbeat: while the evaluator runs, a side thread renews the lease every third of it;
- outcome: ``evaluated`` (with the report) or ``rejected`` (with the validator's reasons), written only while
  the lease is still ours; a worker killed mid-evaluation simply stops renewing, and the next claim by any
  worker puts the submission back in the queue.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from pathlib import Path

from nerfseg.leaderboard.evaluate import Evaluator, internal_error_reason, rejection_reasons, validated_meta
from nerfseg.leaderboard.store import DEFAULT_LEASE_SECONDS, DEFAULT_MAX_ATTEMPTS, ResultsStore, StoreError, Submission
from nerfseg.errors import InputError
from nerfseg.spec import BENCHMARK_JSON

logger = logging.getLogger(__name__)


def new_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


class _Heartbeat(threading.Thread):
    """Renews a lease until stopped; notes when the lease was lost (then the result will be dropped)."""

    def __init__(self, store: ResultsStore, submission_id: int, worker_id: str, lease_seconds: float):
        super().__init__(name=f"heartbeat-{submission_id}", daemon=True)
        self.store, self.submission_id, self.worker_id = store, submission_id, worker_id
        self.lease_seconds = lease_seconds
        self.stop_event = threading.Event()
        self.lost = False

    def run(self) -> None:
        every = max(0.05, self.lease_seconds / 3.0)
        while not self.stop_event.wait(every):
            try:
                if not self.store.heartbeat(self.submission_id, self.worker_id, self.lease_seconds):
                    self.lost = True
                    logger.warning("lost the lease on submission %s", self.submission_id)
                    return
            except Exception:  # a busy database: try again at the next beat, the lease has slack
                logger.exception("heartbeat for submission %s failed", self.submission_id)

    def stop(self) -> None:
        self.stop_event.set()
        self.join(timeout=5)


class Worker:
    """Evaluates queued submissions one at a time. ``evaluate`` has nerfseg.evaluation.api.evaluate_submission's signature."""

    def __init__(
        self,
        store: ResultsStore,
        data_root: str | Path,
        evaluate: Evaluator,
        *,
        worker_id: str | None = None,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        poll_seconds: float = 1.0,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        eval_workers: int = 1,
    ):
        self.data_root = Path(data_root).resolve()
        if not (self.data_root / BENCHMARK_JSON).is_file():
            raise InputError(self.data_root, f"not a benchmark folder (no {BENCHMARK_JSON}); give --data")
        self.store = store
        self.evaluate = evaluate
        self.worker_id = worker_id or new_worker_id()
        self.lease_seconds = float(lease_seconds)
        self.poll_seconds = float(poll_seconds)
        self.max_attempts = int(max_attempts)
        self.eval_workers = int(eval_workers)
        self.processed = 0
        from nerfseg.identity import benchmark_identity

        # only submissions queued for this benchmark (or for none) are taken: a worker never files numbers of
        # its ground truth under another benchmark sharing the database
        self.benchmark = benchmark_identity(self.data_root)

    def _reasons_for(self, exc: BaseException, sub: Submission) -> list[str]:
        reasons = rejection_reasons(exc)
        # An input error about the benchmark's own files is the server's problem, not the submitter's.
        path = getattr(exc, "path", None)
        if reasons is not None and isinstance(exc, InputError) and path is not None:
            try:
                Path(path).resolve().relative_to(self.data_root)
                reasons = None
            except ValueError:
                pass
        if reasons is None:
            ref = f"{self.worker_id}/submission-{sub.id}"
            logger.error("internal error evaluating submission %s (%s)", sub.id, ref, exc_info=exc)
            reasons = [internal_error_reason(exc, ref)]
        return reasons

    def process(self, sub: Submission) -> str:
        """Evaluate one claimed submission; returns 'evaluated', 'rejected' or 'lost' (lease taken over)."""
        path = self.store.resolve_stored_path(sub)
        if path is None or not path.exists():
            ok = self.store.reject(sub.id, self.worker_id, ["the uploaded file is missing on the server; upload again"])
            return "rejected" if ok else "lost"
        beat = _Heartbeat(self.store, sub.id, self.worker_id, self.lease_seconds)
        beat.start()
        try:
            try:
                report = self.evaluate(self.data_root, path, split=sub.split, protocol=sub.protocol,
                                       workers=self.eval_workers)
            except Exception as exc:
                ok = self.store.reject(sub.id, self.worker_id, self._reasons_for(exc, sub), validated_meta(exc=exc))
                status = "rejected"
            else:
                meta = validated_meta(report)
                if meta is None:
                    logger.warning("submission %s: the evaluator's report has no 'meta' (the meta.json its validation "
                                "read); recording it without description and flags", sub.id)
                try:
                    ok = self.store.complete(sub.id, self.worker_id, report, meta)
                    status = "evaluated"
                except StoreError as exc:  # the evaluator returned something that is not a report
                    ok = self.store.reject(sub.id, self.worker_id, self._reasons_for(exc, sub))
                    status = "rejected"
        finally:
            beat.stop()
            self.sweep_temp()
        self.processed += 1
        logger.info("submission %s: %s", sub.id, status if ok else "lost (lease expired)")
        return status if ok else "lost"

    @staticmethod
    def sweep_temp() -> None:
        """Remove extraction folders that killed evaluations left in the temp folder (at start-up and after
        each evaluation): a worker killed mid-extraction would otherwise leak up to the size limit each time."""
        try:
            from nerfseg.evaluation.archive import clean_stale_extractions
        except ImportError:  # an external evaluator without the evaluation package: nothing of ours to clean
            return
        try:
            removed, freed = clean_stale_extractions()
        except Exception:  # never let housekeeping stop the queue
            logger.exception("cleaning stale extraction folders failed")
            return
        if removed:
            logger.warning("removed %d stale extraction folder(s), %d bytes", removed, freed)

    def run_once(self) -> Submission | None:
        """Claim and process one submission; returns it (as claimed) or None when the queue is empty."""
        sub = self.store.claim_next(self.worker_id, self.lease_seconds, self.max_attempts,
                                    benchmark=self.benchmark.fingerprint)
        if sub is None:
            return None
        self.process(sub)
        return sub

    def run(self, stop: threading.Event | None = None, max_jobs: int | None = None,
            exit_when_idle: float | None = None) -> int:
        """Poll until ``stop`` is set (or ``max_jobs`` done, or idle for ``exit_when_idle`` s); returns jobs done."""
        stop = stop or threading.Event()
        self.sweep_temp()
        done = 0
        idle_since = time.monotonic()
        while not stop.is_set():
            try:
                sub = self.run_once()
            except Exception:  # e.g. the database is briefly unavailable: keep the worker alive
                logger.exception("worker loop error")
                sub = None
            if sub is not None:
                done += 1
                idle_since = time.monotonic()
                if max_jobs is not None and done >= max_jobs:
                    break
                continue
            if exit_when_idle is not None and time.monotonic() - idle_since >= exit_when_idle:
                break
            stop.wait(self.poll_seconds)
        return done

    def start_thread(self) -> tuple[threading.Thread, threading.Event]:
        """Run the loop in a daemon thread (the server's default); set the returned event to stop it."""
        stop = threading.Event()
        thread = threading.Thread(target=self.run, kwargs={"stop": stop}, name="nerfseg-worker", daemon=True)
        thread.start()
        return thread, stop
