"""What ``nerfseg leaderboard serve`` configures; apart from the app so the routes can name it without a cycle."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from nerfseg.spec import DEFAULT_PROTOCOL

FALLBACK_PROTOCOLS = ("nerfseg-v1", "instance-nerf", "panoptic-lifting")


def known_protocols() -> tuple[str, ...]:
    """The evaluator's protocols (nerfseg.evaluation.protocols), so an upload cannot name one that does not exist."""
    try:
        from nerfseg.evaluation.protocols import list_protocols
    except ImportError:
        return FALLBACK_PROTOCOLS
    return tuple(sorted(list_protocols(), key=lambda p: (p != DEFAULT_PROTOCOL, p)))  # the default first


@dataclass
class ServerSettings:
    """What ``nerfseg leaderboard serve`` configures."""

    data_root: Path
    max_upload_bytes: int = 512 * 1024 * 1024
    daily_limit: int | None = 5  # per team and rolling 24 hours; a team's own limit overrides it
    worker: str = "thread"  # "thread": evaluate in this process; "none": a separate worker process does it
    evaluator: str | None = None  # import path of the evaluator; default nerfseg.evaluation.api:evaluate_submission
    lease_seconds: float = 60.0
    poll_seconds: float = 1.0
    eval_workers: int = 1
    title: str = "nerfseg leaderboard"
    max_concurrent_uploads: int = 8  # uploads being received at once, all clients together
    max_uploads_per_client: int = 2  # ... and from one client address
    upload_idle_timeout_s: float = 30.0  # an upload that sends nothing for this long is dropped (408)
    upload_deadline_s: float = 900.0  # and one that takes longer than this in all
    header_timeout_s: float = 10.0  # a connection must send a request's headers within this (uvicorn)
