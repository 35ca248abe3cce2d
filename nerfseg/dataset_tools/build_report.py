"""What a build reports: one warning per broken input (as it is met) and benchmark.json's ``report`` (counted per reason)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Iterable

from nerfseg.dataset_tools.front3d import Issue

if TYPE_CHECKING:
    from nerfseg.dataset_tools.build_plan import Plan

logger = logging.getLogger(__name__)


class BuildWarnings:
    """One warning (logger, stderr by default) per broken input (house, item, reason) and per unknown category pair, each once per build."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self._seen: set[tuple[str, str, str]] = set()
        self._pairs: set[tuple[str | None, str | None]] = set()

    def issues(self, issues: Iterable[dict[str, str]]) -> None:
        for i in issues:
            key = (i["kind"], i["house"], i["item"])
            if key not in self._seen:
                self._seen.add(key)
                if self.enabled:
                    logger.warning(Issue(**i).line())

    def unknown_pairs(self, pairs: dict[tuple[str | None, str | None], dict[str, Any]]) -> None:
        for (sup, cat), entry in sorted(pairs.items(), key=lambda kv: str(kv[0])):
            if (sup, cat) not in self._pairs:
                self._pairs.add((sup, cat))
                if self.enabled:
                    models = entry["models"]
                    more = f" and {len(models) - 5} more" if len(models) > 5 else ""
                    logger.warning(
                        f"warning: unknown 3D-FUTURE category pair (super-category {sup!r}, category {cat!r}): {entry['objects']} objects of "
                        f"{len(models)} models ({', '.join(models[:5])}{more}) rendered and labelled void; add the pair to nerfseg/data/front3d_classes.json"
                    )


_DROP_KINDS = (
    ("repeats the layout", "repeated layout"),
    ("room type", "room type not selected"),
    ("no Floor mesh", "no floor mesh"),
    ("no usable Floor mesh", "no floor mesh"),
    ("floor area", "floor area too small"),
    ("malformed room", "malformed room"),
    ("room without", "malformed room"),
)


def _drop_kind(reason: str) -> str:
    """The counted category of a dropped-room reason (the full reason stays in ``dropped_rooms``)."""
    for prefix, kind in _DROP_KINDS:
        if reason.startswith(prefix):
            return kind
    if "objects (need" in reason:
        return "object count (after loading the models)" if reason.endswith("(after loading the models)") else "object count"
    return "other"


def build_report(plan: Plan, records: dict[str, dict[str, Any]], dropped_at_build: list[dict[str, Any]], built: int, elapsed: float, groups: dict[str, str]) -> dict[str, Any]:
    """benchmark.json's ``report``: what was built, what was skipped and why, counted per reason."""
    issues: dict[tuple[str, str, str], dict[str, str]] = {}
    for i in plan.issues + [i for rec in list(records.values()) + dropped_at_build for i in rec.get("issues", [])]:
        issues.setdefault((i["kind"], i["house"], i["item"]), i)
    skips: dict[str, int] = {}
    for kind, _, _ in issues:
        skips[kind] = skips.get(kind, 0) + 1
    textures: dict[str, int] = {}
    notes = dict(plan.notes)
    seen_house: set[str] = set()
    for rec in list(records.values()) + dropped_at_build:
        if rec["house"] in seen_house:
            continue  # every scene of a house loads the same materials and models: count them once
        seen_house.add(rec["house"])
        for k, v in rec.get("textures", {}).items():
            textures[k] = textures.get(k, 0) + v
    for rec in list(records.values()) + dropped_at_build:
        for k, v in rec.get("notes", {}).items():
            if k.startswith("object_"):  # per-room labelling decisions (house-level notes come from planning)
                notes[k] = notes.get(k, 0) + v
    dropped_rooms = list(plan.dropped_rooms) + [{"house": r["house"], "room": r["scene_id"], "scene_id": r["scene_id"], "reason": f"{r['dropped']} (after loading the models)"} for r in dropped_at_build]
    drop_counts: dict[str, int] = {}
    for d in dropped_rooms:
        key = _drop_kind(d["reason"])
        drop_counts[key] = drop_counts.get(key, 0) + 1
    missing = sorted({m for rec in list(records.values()) + dropped_at_build for m in rec.get("missing_models", [])} | set(plan.missing_models))
    return {
        "scenes_built": built - len(dropped_at_build),
        "scenes_reused": len(records) - (built - len(dropped_at_build)),
        "build_seconds": elapsed,
        "planning_seconds": plan.seconds,
        "houses": plan.houses,
        "houses_unreadable": plan.bad_houses,
        "split_unit": "house" if len(set(groups.values())) >= 2 else "scene",
        "dropped_rooms": dropped_rooms,
        "dropped_room_counts": drop_counts,
        "skips": dict(sorted(skips.items())),
        "issues": sorted(issues.values(), key=lambda i: (i["kind"], i["house"], i["item"])),
        "unknown_category_pairs": [
            {"super_category": sup, "category": cat, "objects": e["objects"], "models": e["models"]} for (sup, cat), e in sorted(plan.unknown_pairs.items(), key=lambda kv: str(kv[0]))
        ],
        "textures": dict(sorted(textures.items())),
        "selection": dict(sorted(notes.items())),
        "missing_models": missing,
        "num_missing_models": len(missing),
        "warnings": [Issue(**i).line() for i in sorted(issues.values(), key=lambda i: (i["kind"], i["house"], i["item"]))],
    }
