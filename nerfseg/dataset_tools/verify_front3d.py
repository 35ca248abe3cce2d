"""``nerfseg verify-front3d``: check a 3D-FRONT / 3D-FUTURE download before a build of many hours.

What it looks at, cheapest first: the folder layout (house JSONs, ``model_info.json``, model folders,
texture folders), every house JSON (parsed as the build's planning does: unknown category pairs, child refs
that name nothing, furniture without ``valid: true``), which referenced 3D-FUTURE models have no folder or
no ``model_info.json`` entry, which architecture materials name a texture that is not on disk, and, when
asked (``--parse-models N``), whether N referenced OBJs parse (about a second each on real models, so the
default only checks that each file exists and is not empty). Nothing is written.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nerfseg.dataset_tools.front3d_plan import BROKEN_MODELS, MODEL_INFO_JSON, RAW_MODEL_OBJ, TEXTURE_PNG, RoomFilter, iter_houses, load_model_info, plain_name, read_house
from nerfseg.dataset_tools.obj import read_obj
from nerfseg.errors import InputError


@dataclass
class VerifyReport:
    """What ``verify_front3d`` found; ``problems`` are the ones a build cannot work around."""

    houses: int = 0
    houses_unreadable: list[tuple[str, str]] = field(default_factory=list)
    rooms: int = 0
    candidate_rooms: int = 0
    models_in_info: int = 0
    model_folders: int = 0
    texture_folders: int | None = None
    referenced_models: int = 0
    missing_models: list[str] = field(default_factory=list)  # referenced, no <jid>/raw_model.obj (or empty)
    not_in_model_info: list[str] = field(default_factory=list)  # referenced, no model_info.json entry
    unknown_pairs: dict[tuple[str | None, str | None], list[str]] = field(default_factory=dict)  # (super, category) -> jids
    unreadable_models: list[tuple[str, str]] = field(default_factory=list)  # (jid, reason) among the parsed ones
    parsed_models: int = 0
    materials_textured: int = 0
    materials_missing_texture: int = 0
    issues: dict[str, int] = field(default_factory=dict)  # issue kind of the house JSONs -> count
    problems: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["unknown_pairs"] = [{"super_category": s, "category": c, "models": j} for (s, c), j in sorted(self.unknown_pairs.items(), key=lambda kv: str(kv[0]))]
        return d

    def lines(self) -> list[str]:
        """The short human report (what each number means is in docs/front3d.md)."""
        out = [
            f"houses: {self.houses} ({len(self.houses_unreadable)} unreadable), rooms: {self.rooms} ({self.candidate_rooms} pass the default room filter before models are loaded)",
            f"3D-FUTURE: {self.models_in_info} models in {MODEL_INFO_JSON}, {self.model_folders} model folders; houses reference {self.referenced_models} models",
            f"  missing model folders: {len(self.missing_models)}" + _few(self.missing_models),
            f"  referenced but not in {MODEL_INFO_JSON}: {len(self.not_in_model_info)}" + _few(self.not_in_model_info),
            f"  unknown category pairs: {len(self.unknown_pairs)}" + "".join(f"\n    ({s!r}, {c!r}): {len(j)} models" for (s, c), j in sorted(self.unknown_pairs.items(), key=lambda kv: str(kv[0]))),
            f"  parsed OBJs: {self.parsed_models}, unreadable: {len(self.unreadable_models)}" + _few([f"{j} ({r})" for j, r in self.unreadable_models]),
            "3D-FRONT-texture: " + ("not given (walls and floors will use their material colours)" if self.texture_folders is None else f"{self.texture_folders} texture folders")
            + f"; architecture materials naming a texture: {self.materials_textured} found, {self.materials_missing_texture} missing",
        ]
        if self.issues:
            out.append("house JSON issues: " + ", ".join(f"{k} {v}" for k, v in sorted(self.issues.items())))
        for name, reason in self.houses_unreadable[:5]:
            out.append(f"  unreadable house {name}: {reason}")
        out.append("problems: none (ready to build)" if not self.problems else "problems:\n" + "\n".join(f"  - {p}" for p in self.problems))
        return out


def _few(items: list[str], n: int = 3) -> str:
    return "" if not items else " (" + ", ".join(items[:n]) + (", ..." if len(items) > n else "") + ")"


def _count_folders(rep: VerifyReport, future_dir: Path, texture_dir: Path | None) -> dict[str, tuple[str | None, str | None]]:
    """model_info.json (a problem when unreadable), and the model and texture folder counts."""
    try:
        info = load_model_info(future_dir)
    except InputError as exc:
        rep.problems.append(str(exc))
        info = {}
    rep.models_in_info = len(info)
    with os.scandir(future_dir) as it:
        rep.model_folders = sum(1 for e in it if e.is_dir())
    if texture_dir is not None:
        with os.scandir(texture_dir) as it:
            rep.texture_folders = sum(1 for e in it if e.is_dir())
    return info


def _read_houses(rep: VerifyReport, front3d_dir: Path, texture_dir: Path | None, info: dict[str, tuple[str | None, str | None]], rf: RoomFilter) -> tuple[set[str], dict[str, bool]]:
    """Plan every house: rooms, issues and unknown pairs into ``rep``; returns (referenced jids, texture found per material key)."""
    try:
        houses = iter_houses(front3d_dir)
    except InputError as exc:
        rep.problems.append(str(exc))
        houses = []
    rep.houses = len(houses)
    referenced: set[str] = set()
    tex_seen: dict[str, bool] = {}
    for _, path in houses:
        try:
            hd = read_house(path, info, rf)
        except InputError as exc:
            rep.houses_unreadable.append((path.name, exc.problem))
            continue
        for issue in hd.issues.issues:
            rep.issues[issue.kind] = rep.issues.get(issue.kind, 0) + 1
        for kind, n in hd.issues.notes.items():
            rep.issues[kind] = rep.issues.get(kind, 0) + n
        rep.rooms += len(hd.rooms)
        rep.candidate_rooms += sum(r.drop is None for r in hd.rooms)
        referenced |= {str(f["jid"]) for f in hd.furniture_by_uid.values()}
        for pair, jids in hd.unknown_pairs.items():
            rep.unknown_pairs.setdefault(pair, [])
            rep.unknown_pairs[pair] = sorted(set(rep.unknown_pairs[pair]) | set(jids))
        for mat in hd.materials.values():
            jid = str(mat.get("jid") or "")
            url = str(mat.get("texture") or "").rstrip("/").split("/")
            names = [n for n in (jid, url[-2] if len(url) >= 2 else "") if plain_name(n)]
            if not names:
                continue
            key = "|".join(names)
            if key not in tex_seen:
                tex_seen[key] = texture_dir is not None and any((Path(texture_dir) / n / TEXTURE_PNG).is_file() for n in names)
    return referenced, tex_seen


def _check_models(rep: VerifyReport, future_dir: Path, info: dict[str, tuple[str | None, str | None]], referenced: set[str], parse_models: int) -> None:
    """Referenced models: missing, not in model_info, known broken; parse ``parse_models`` of the present ones (-1: all)."""
    present = []
    for jid in sorted(referenced):
        obj = Path(future_dir) / jid / RAW_MODEL_OBJ
        if jid not in info:
            rep.not_in_model_info.append(jid)
        if jid in BROKEN_MODELS:
            rep.unreadable_models.append((jid, "known broken (skipped as the reference loader)"))
        elif not plain_name(jid) or not obj.is_file() or obj.stat().st_size == 0:
            rep.missing_models.append(jid)
        else:
            present.append(jid)
    if parse_models and present:
        pick = present if parse_models < 0 or parse_models >= len(present) else [present[i] for i in sorted(np.random.default_rng(0).choice(len(present), parse_models, replace=False))]
        for jid in pick:
            rep.parsed_models += 1
            try:
                mesh = read_obj(Path(future_dir) / jid / RAW_MODEL_OBJ)
                if not np.all(np.isfinite(mesh.vertices)):
                    rep.unreadable_models.append((jid, "NaN or infinite vertices"))
            except InputError as exc:
                rep.unreadable_models.append((jid, exc.problem))
            except (OSError, MemoryError, ValueError) as exc:
                rep.unreadable_models.append((jid, f"{type(exc).__name__}: {exc}"))


def verify_front3d(front3d_dir: Path, future_dir: Path, texture_dir: Path | None = None, parse_models: int = 0, room_filter: RoomFilter | None = None) -> VerifyReport:
    """Check a download; never raises for a broken house or model (they are counted), only for a missing folder."""
    rep = VerifyReport()
    rf = room_filter or RoomFilter()
    for folder, what in ((front3d_dir, "--front3d (the 3D-FRONT folder of house JSONs)"), (future_dir, "--future (the 3D-FUTURE-model folder)")):
        if not Path(folder).is_dir():
            raise InputError(folder, f"not a folder: {what}")
    info = _count_folders(rep, future_dir, texture_dir)
    referenced, tex_seen = _read_houses(rep, front3d_dir, texture_dir, info, rf)
    rep.materials_textured = sum(tex_seen.values())
    rep.materials_missing_texture = len(tex_seen) - rep.materials_textured
    rep.referenced_models = len(referenced)
    _check_models(rep, future_dir, info, referenced, parse_models)
    if rep.houses and len(rep.houses_unreadable) == rep.houses:
        rep.problems.append("no house JSON could be read")
    if rep.referenced_models and len(rep.missing_models) == rep.referenced_models:
        rep.problems.append(f"none of the {rep.referenced_models} referenced models is in {future_dir} (is --future the 3D-FUTURE-model folder?)")
    if texture_dir is not None and tex_seen and rep.materials_textured == 0:
        rep.problems.append(f"no architecture texture found under {texture_dir} (is --texture the 3D-FRONT-texture folder?)")
    return rep
