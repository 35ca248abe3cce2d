"""Run the real `nerfseg leaderboard serve` / `worker` commands as subprocesses on 127.0.0.1, for live tests.

Every wait is bounded; every process started here is stopped by its own Popen handle (never by name).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

import httpx

from tests.leaderboard.helpers import FAKE_EVALUATOR, REPO_ROOT, free_port


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "nerfseg.cli", *args]


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra or {})
    return env


class LiveServer:
    """`nerfseg leaderboard serve` on a random free port of 127.0.0.1."""

    def __init__(self, db: Path, data: Path, log: Path, worker: str = "none", extra: Sequence[str] = (),
                 env: dict[str, str] | None = None, evaluator: str | None = FAKE_EVALUATOR):
        """``evaluator=None``: the standard one (nerfseg.evaluation.api:evaluate_submission)."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(log, "wb")
        self.proc = subprocess.Popen(
            _cli("leaderboard", "serve", "--db", str(db), "--data", str(data), "--host", "127.0.0.1",
                 "--port", str(self.port), "--worker", worker,
                 *(("--evaluator", evaluator) if evaluator else ()), *extra),
            cwd=REPO_ROOT, env=_env(env), stdout=self.log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}; see {self.log.name}")
            try:
                if httpx.get(self.url + "/api/health", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"server not ready after {timeout} s; see {self.log.name}")

    def stop(self) -> None:
        stop_process(self.proc)
        self.log.close()


def start_worker(db: Path, data: Path, log: Path, lease: float = 2.0, delay: float = 0.0) -> subprocess.Popen:
    """`nerfseg leaderboard worker` with the fake evaluator (``delay`` s per evaluation)."""
    out = open(log, "ab")
    return subprocess.Popen(
        _cli("leaderboard", "worker", "--db", str(db), "--data", str(data), "--evaluator", FAKE_EVALUATOR,
             "--lease", str(lease), "--poll", "0.1"),
        cwd=REPO_ROOT, env=_env({"NERFSEG_FAKE_EVAL_DELAY": str(delay)}), stdout=out, stderr=subprocess.STDOUT)


def stop_process(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)
