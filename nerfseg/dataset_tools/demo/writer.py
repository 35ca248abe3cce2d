"""Writes the demo houses to disk: stale files of an earlier demo removed, atomic writes, a checksummed manifest."""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nerfseg.dataset_tools.demo.house import FRONT3D_DIR, FUTURE_DIR, GENERATOR_VERSION, TEXTURE_DIR, DemoFiles, build_house, seeded_uuid
from nerfseg.dataset_tools.demo.layout import ROOM_TYPES
from nerfseg.errors import InputError
from nerfseg.io import dumps_json, write_bytes_atomic

DEMO_MANIFEST = "demo_manifest.json"
MARKER = ".nerfseg-demo"


@dataclass(frozen=True)
class DemoPaths:
    """Where :func:`write_demo_dataset` put the three 3D-FRONT / 3D-FUTURE folders."""

    front3d_dir: Path
    future_dir: Path
    texture_dir: Path
    manifest: Path | None = None



def write_demo_dataset(out_dir: str | Path, num_rooms: int, seed: int = 0) -> DemoPaths:
    """Write ``num_rooms`` seeded procedural rooms as 3D-FRONT houses plus their 3D-FUTURE models.

    Houses hold one or two rooms each. Same ``seed`` -> byte-identical files. ``out_dir`` must be
    empty or a folder this function wrote before (it carries a marker file); files of an earlier
    demo that the new one does not write are removed, so a smaller demo never sees stale houses.
    """
    if num_rooms < 1:
        raise InputError(None, f"the demo needs at least one room, got num_rooms={num_rooms}")
    out = Path(out_dir)
    marker = out / MARKER
    if out.exists() and not out.is_dir():
        raise InputError(out, "demo output path exists and is not a folder")
    if out.exists() and any(out.iterdir()) and not marker.exists():
        raise InputError(out, f"refusing to write the demo into a non-empty folder that has no {MARKER} marker")
    out.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(marker, b"nerfseg procedural 3D-FRONT demo (safe to delete)\n")

    writer = DemoFiles()
    models_info: list[dict[str, Any]] = []
    houses: list[dict[str, Any]] = []
    done, h = 0, 0
    while done < num_rooms:
        rng = np.random.default_rng([seed, h])
        n = min(num_rooms - done, 1 if rng.random() < 0.5 else 2)
        types = [ROOM_TYPES[(done + k) % len(ROOM_TYPES)] for k in range(n)]
        uid = seeded_uuid(rng)
        house, records = build_house(rng, uid, types, writer, models_info)
        rel = f"{FRONT3D_DIR}/{uid}.json"
        writer.put(rel, dumps_json(house, indent=None).encode("utf-8") + b"\n")
        houses.append({"file": rel, "uid": uid, "rooms": records})
        done += n
        h += 1
    models_info.sort(key=lambda d: d["model_id"])
    writer.put(f"{FUTURE_DIR}/model_info.json", dumps_json(models_info, indent=1).encode("utf-8") + b"\n")

    # house_index = position in the sorted listing of the 3D-FRONT folder (as iter_houses counts)
    sorted_files = sorted(hh["file"].split("/")[-1] for hh in houses)
    for hh in houses:
        hh["house_index"] = sorted_files.index(hh["file"].split("/")[-1])
        for rec in hh["rooms"]:
            rec["scene_id"] = f"3dfront_{hh['house_index']:04d}_{rec['room_index']:02d}"

    # remove stale files of an earlier demo in our three folders, then write atomically
    wanted = set(writer.files)
    for sub in (FRONT3D_DIR, FUTURE_DIR, TEXTURE_DIR):
        root = out / sub
        if not root.exists():
            continue
        for p in sorted(root.rglob("*"), reverse=True):
            rel = p.relative_to(out).as_posix()
            if p.is_file() and rel not in wanted:
                p.unlink()
            elif p.is_dir() and not any(p.iterdir()):
                shutil.rmtree(p)
    for rel, data in writer.files.items():
        target = out / rel
        if target.exists() and target.stat().st_size == len(data) and target.read_bytes() == data:
            continue  # unchanged: keep mtimes so downstream caches stay valid
        write_bytes_atomic(target, data)
    manifest = {
        "generator": "nerfseg-demo",
        "version": GENERATOR_VERSION,
        "seed": seed,
        "num_rooms": num_rooms,
        "houses": houses,
        "files": {rel: hashlib.sha256(data).hexdigest() for rel, data in sorted(writer.files.items())},
    }
    write_bytes_atomic(out / DEMO_MANIFEST, dumps_json(manifest, indent=1).encode("utf-8") + b"\n")
    return DemoPaths(out / FRONT3D_DIR, out / FUTURE_DIR, out / TEXTURE_DIR, out / DEMO_MANIFEST)
