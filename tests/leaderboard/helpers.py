"""Test data for the leaderboard: submissions derived from the tiny benchmark's GT, packed as archives.

Each variant is the GT submission with another meta.json (method name, fake scores read by fake_eval) or with
deliberate defects, so the real validator accepts or rejects it for a known reason.
"""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path
from typing import Any

from nerfseg.evaluation.submission import pack_submission

REPO_ROOT = Path(__file__).resolve().parents[2]
FAKE_EVALUATOR = f"{REPO_ROOT / 'tests' / 'leaderboard' / 'fake_eval.py'}:evaluate"


def make_variant(gt_folder: Path, out: Path, method: str, scores: dict[str, float] | None = None,
                 *, semantic_only: bool = False, uses_gt_masks: bool = False, crash: bool = False,
                 broken: bool = False, archive: str | None = ".zip") -> Path:
    """A submission folder (and, with ``archive``, its archive next to it) from the GT submission."""
    folder = out.with_suffix("") if out.suffix else out
    if folder.exists():
        shutil.rmtree(folder)
    shutil.copytree(gt_folder, folder)
    meta: dict[str, Any] = json.loads((folder / "meta.json").read_text())
    meta.update(method=method, description=f"test method {method}", url="https://example.org/paper",
                uses_gt_masks=uses_gt_masks, semantic_only=semantic_only, prior="sim-m2f")
    if scores is not None:
        meta["fake_scores"] = scores
    if crash:
        meta["fake_crash"] = True
    (folder / "meta.json").write_text(json.dumps(meta))
    if broken:
        scene = sorted(p for p in folder.iterdir() if p.is_dir())[0]
        pngs = sorted((scene / "panoptic").glob("*.png"))
        pngs[0].unlink()  # a missing frame
        pngs[1].write_bytes(b"not a png")  # a corrupt file
    if archive is None:
        return folder
    return pack_submission(folder, folder.parent / f"{folder.name}{archive}")


def scores(pq: float, miou: float, **more: float) -> dict[str, float]:
    """Fake summary scores (fractions): PQ things and mIoU plus anything else given."""
    base = {"pq_things": pq, "sq_things": min(1.0, pq + 0.2), "rq_things": min(1.0, pq + 0.1), "miou": miou,
            "pq_scene_things": pq * 0.8, "binary_acc": 0.9, "binary_miou": 0.8}
    base.update(more)
    return base


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
