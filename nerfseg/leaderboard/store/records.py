"""The store's records (teams, submissions, method pages, benchmarks), its errors and constants.

Why a module of their own: the server, the worker and the CLI use these plain values without needing SQL.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from nerfseg.errors import NerfsegError

STATUSES = ("queued", "running", "evaluated", "rejected")
DAY_SECONDS = 86400.0
DEFAULT_LEASE_SECONDS = 60.0
DEFAULT_MAX_ATTEMPTS = 3
SUBMISSIONS_DIRNAME = "submissions"


class StoreError(NerfsegError):
    """The store cannot do what was asked (unknown team, name taken, database newer than this code...)."""


class SchemaTooNewError(StoreError):
    """The database was migrated by a newer nerfseg: refuse to touch it rather than corrupt it."""


class DailyLimitExceeded(StoreError):
    """A team reached its submissions-per-24-hours limit."""

    def __init__(self, limit: int, retry_after_s: float):
        self.limit = limit
        self.retry_after_s = max(0.0, retry_after_s)
        hours = self.retry_after_s / 3600.0
        super().__init__(f"daily submission limit reached ({limit} per 24 h); try again in {hours:.1f} h")


@dataclass(frozen=True)
class Team:
    id: int
    name: str
    daily_limit: int | None
    created_at: float


@dataclass(frozen=True)
class Submission:
    id: int
    key: str
    team_id: int
    team: str
    method_id: int
    method: str
    content_hash: str
    size_bytes: int
    filename: str | None
    stored_path: str | None
    split: str
    protocol: str
    protocol_version: str | None
    spec_version: str | None
    status: str
    reasons: list[str]
    attempts: int
    worker_id: str | None
    lease_until: float | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    meta: dict[str, Any] | None = None
    benchmark: str | None = None  # GT fingerprint of the benchmark it is for (None: recorded before identities)
    benchmark_name: str | None = None

    def to_dict(self, public: bool = True) -> dict[str, Any]:
        """JSON-able view; ``public`` leaves out server paths and worker ids."""
        d = {
            "id": self.id,
            "key": self.key,
            "team": self.team,
            "method": self.method,
            "method_id": self.method_id,
            "content_hash": self.content_hash,
            "size_bytes": self.size_bytes,
            "filename": self.filename,
            "split": self.split,
            "protocol": self.protocol,
            "protocol_version": self.protocol_version,
            "spec_version": self.spec_version,
            "status": self.status,
            "reasons": list(self.reasons),
            "attempts": self.attempts,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "meta": self.meta,
            "benchmark": None if self.benchmark is None else {"name": self.benchmark_name, "fingerprint": self.benchmark},
        }
        if not public:
            d.update(stored_path=self.stored_path, worker_id=self.worker_id, lease_until=self.lease_until)
        return d


@dataclass
class MethodDetail:
    """Everything the per-method page shows."""

    method_id: int
    name: str
    team: str
    description: str | None
    url: str | None
    uses_gt_masks: bool
    semantic_only: bool
    prior: str | None
    protocol: str
    split: str
    submission: Submission | None  # the latest evaluated submission for protocol/split (and benchmark)
    benchmark: str | None = None  # the benchmark shown (GT fingerprint)
    benchmark_name: str | None = None
    summary: dict[str, float | None] = field(default_factory=dict)
    per_scene: dict[str, dict[str, float | None]] = field(default_factory=dict)
    per_class: dict[str, dict[str, float | None]] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)


#: the board of submissions recorded before benchmarks had identities (their benchmark is unknown)
UNRECORDED = "unrecorded"


@dataclass(frozen=True)
class BenchmarkSummary:
    """A benchmark as the store knows it: from the submissions evaluated on it."""

    fingerprint: str | None  # None: submissions recorded before benchmark identities
    name: str | None
    evaluated: int
    last_finished: float | None

    @property
    def label(self) -> str:
        if self.fingerprint is None:
            return f"{UNRECORDED} (benchmark not recorded)"
        return f"{self.name or 'unnamed'} [GT {self.fingerprint[:12]}]"


def hash_token(token: str) -> str:
    """Tokens are stored only as their sha256: a leaked database does not leak working tokens."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
