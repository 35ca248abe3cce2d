"""The benchmark contract of docs/contract.md in code: classes, layout, file names, frame splits.

Every other package reads these names instead of spelling paths or class tables itself, so a
change to the contract is a change in one place (and in docs/contract.md, in the same commit:
tests/test_docs.py compares the two). "SPEC n" in docstrings means section n of docs/contract.md.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from nerfseg.errors import InputError, UnknownCategoryError

SPEC_VERSION = "1"
DEFAULT_PROTOCOL = "nerfseg-v1"

#: (class index, NYU40 id, name); index 0 is the single background "stuff" class.
CLASS_TABLE: tuple[tuple[int, int | None, str], ...] = (
    (0, None, "background"),
    (1, 3, "cabinet"),
    (2, 4, "bed"),
    (3, 5, "chair"),
    (4, 6, "sofa"),
    (5, 7, "table"),
    (6, 10, "bookshelf"),
    (7, 14, "desk"),
    (8, 32, "nightstand"),
    (9, 35, "lamp"),
    (10, 39, "otherfurniture"),
)
NUM_CLASSES = len(CLASS_TABLE)  # 11, background included (the paper's mIoU classes)
CLASS_NAMES: tuple[str, ...] = tuple(name for _, _, name in CLASS_TABLE)
THING_CLASSES: tuple[int, ...] = tuple(range(1, NUM_CLASSES))
STUFF_CLASSES: tuple[int, ...] = (0,)
NYU40_IDS: tuple[int | None, ...] = tuple(nyu for _, nyu, _ in CLASS_TABLE)
CLASS_INDEX_BY_NAME: dict[str, int] = {name: idx for idx, _, name in CLASS_TABLE}
BACKGROUND = 0
VOID_ID = 0  # panoptic segment id 0 = VOID (rays that hit nothing)
#: In GT panoptic PNGs a thing's segment id is its instance id (1..65535) and the single background
#: stuff segment gets this id, which no uint16 instance id can take.
GT_BACKGROUND_SEGMENT_ID = 1 << 16
#: Scene-assembly id (never written) of furniture that is rendered but not counted: furniture of the house's
#: other rooms seen through a door, window or open-plan boundary, and objects whose 3D-FUTURE category pair has
#: no class. The builder writes their pixels as VOID (panoptic id 0; instance and semantic PNGs 0, as a ray that
#: hit nothing), so no method is penalised for segmenting a real object the GT does not count. Depth is still
#: written there (the geometry exists). Banned or too-small objects of the scene's own room stay background.
UNLABELLED_INSTANCE_ID = 0xFFFF

# ---------------------------------------------------------------------------------------------
# Dataset layout (SPEC section 3)
BENCHMARK_JSON = "benchmark.json"
SCENES_DIR = "scenes"
TRANSFORMS_JSON = "transforms.json"
PANOPTIC_JSON = "panoptic.json"
GT3D_H5 = "gt3d.h5"
IMAGES_DIR = "images"
DEPTH_DIR = "depth"
INSTANCE_DIR = "instance"
SEMANTIC_DIR = "semantic"
PANOPTIC_DIR = "panoptic"
PRIORS_DIR = "priors"
DEPTH_SCALE = 1000.0  # uint16 millimetres (nerfstudio's default depth_unit_scale_factor = 1e-3)
TEST_EVERY = 8  # every 8th view (after a seeded shuffle) is a held-out test view
SPLITS = ("train", "val", "test")

# Submission layout (SPEC section 4)
META_JSON = "meta.json"
INSTANCES3D_H5 = "instances3d.h5"


def frame_name(index: int) -> str:
    """Zero-padded frame stem (``0000``); the same stem names a view in every per-frame folder."""
    return f"{index:04d}"


def scene_dir(root: str | Path, scene_id: str) -> Path:
    return Path(root) / SCENES_DIR / scene_id


def category_info() -> list[dict[str, Any]]:
    """COCO-panoptic ``categories`` list for our 11 classes (category_id = class index)."""
    return [
        {"id": idx, "name": name, "isthing": int(idx != BACKGROUND), "supercategory": "stuff" if idx == 0 else "furniture", "nyu40_id": nyu}
        for idx, nyu, name in CLASS_TABLE
    ]


# ---------------------------------------------------------------------------------------------
# 3D-FUTURE category -> class (SPEC section 2); the table is data in nerfseg/data.
@lru_cache(maxsize=1)
def _category_table() -> dict[tuple[str | None, str | None], int]:
    text = resources.files("nerfseg").joinpath("data/front3d_classes.json").read_text(encoding="utf-8")
    rows = json.loads(text)["rows"]
    table: dict[tuple[str | None, str | None], int] = {}
    for category, super_category, class_name in rows:
        table[(category, super_category)] = CLASS_INDEX_BY_NAME[class_name]
    return table


def category_to_class(category: str | None, super_category: str | None, source: str | Path | None = None) -> int:
    """Map a 3D-FUTURE (category, super-category) pair to a class index 1..10.

    Unknown pairs raise :class:`UnknownCategoryError` naming the pair and ``source``: a silent drop
    would quietly change what counts as an object in the benchmark.
    """
    table = _category_table()
    key = (category or None, super_category or None)
    if key in table:
        return table[key]
    raise UnknownCategoryError(
        source, f"unknown 3D-FUTURE category {category!r} (super-category {super_category!r}); add it to nerfseg/data/front3d_classes.json", key="category"
    )


def class_of_pair(category: str | None, super_category: str | None) -> int | None:
    """The class index of a 3D-FUTURE pair, or None when the table has no row (the builder counts those)."""
    return _category_table().get((category or None, super_category or None))


def real_category_pairs() -> list[tuple[str, str | None, int]]:
    """``(super-category, category or None, model count)`` of every pair of the released 3D-FUTURE model_info.json
    (nerfseg/data/3d_future_category_pairs.tsv; "None" there is a null category)."""
    text = resources.files("nerfseg").joinpath("data/3d_future_category_pairs.tsv").read_text(encoding="utf-8")
    out: list[tuple[str, str | None, int]] = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("#") or line.startswith("super_category\t"):
            continue
        sup, cat, count = line.split("\t")
        out.append((sup, None if cat == "None" else cat, int(count)))
    return out


def known_categories() -> list[tuple[str | None, str | None, int]]:
    """All (category, super-category, class index) rows of the class table (the real pairs and a few extra reference rows)."""
    return [(c, s, k) for (c, s), k in _category_table().items()]


# ---------------------------------------------------------------------------------------------
# Reading scene metadata
@dataclass(frozen=True)
class FrameInfo:
    """One view of a scene as transforms.json lists it."""

    name: str  # frame stem, e.g. "0007"
    split: str  # "train" | "test"
    transform_matrix: tuple[tuple[float, ...], ...]  # 4x4 camera-to-world, OpenGL axes


@dataclass(frozen=True)
class SceneInfo:
    """What a consumer (method, evaluator) needs from a scene's transforms.json."""

    scene_id: str
    root: Path
    width: int
    height: int
    fl_x: float
    fl_y: float
    cx: float
    cy: float
    room_bbox: tuple[tuple[float, float, float], tuple[float, float, float]]
    frames: tuple[FrameInfo, ...]

    def frames_in(self, split: str) -> list[FrameInfo]:
        return [f for f in self.frames if f.split == split]


def _require(d: dict, key: str, path: Path) -> Any:
    if key not in d:
        raise InputError(path, "missing key", key=key)
    return d[key]


def read_json(path: str | Path) -> Any:
    """Read JSON with an error that names the file (and line) instead of a bare JSONDecodeError."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    except UnicodeDecodeError as exc:
        raise InputError(path, f"not UTF-8 text ({exc.reason})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(path, f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None


def load_scene_info(scene_path: str | Path) -> SceneInfo:
    """Parse ``<scene>/transforms.json`` (SPEC 3) into a :class:`SceneInfo`."""
    scene_path = Path(scene_path)
    path = scene_path / TRANSFORMS_JSON
    data = read_json(path)
    frames = []
    for i, fr in enumerate(_require(data, "frames", path)):
        file_path = _require(fr, "file_path", path)
        split = fr.get("split", "train")
        if split not in ("train", "test"):
            raise InputError(path, f"frame {i} has split {split!r}; expected 'train' or 'test'", key="frames")
        frames.append(FrameInfo(Path(file_path).stem, split, tuple(tuple(float(v) for v in row) for row in fr["transform_matrix"])))
    bbox = _require(data, "room_bbox", path)
    return SceneInfo(
        scene_id=str(data.get("scene_id", scene_path.name)),  # the file's id wins: a scene may sit in a temp folder
        root=scene_path,
        width=int(_require(data, "w", path)),
        height=int(_require(data, "h", path)),
        fl_x=float(_require(data, "fl_x", path)),
        fl_y=float(_require(data, "fl_y", path)),
        cx=float(_require(data, "cx", path)),
        cy=float(_require(data, "cy", path)),
        room_bbox=(tuple(map(float, bbox[0])), tuple(map(float, bbox[1]))),  # type: ignore[arg-type]
        frames=tuple(frames),
    )


def load_benchmark(root: str | Path) -> dict[str, Any]:
    """Read ``benchmark.json``; its ``splits`` maps train/val/test to scene ids.

    The usual mistake, a scene folder given where the benchmark root is expected, is named as such
    (with the root to pass) instead of "benchmark.json: file not found".
    """
    root = Path(root)
    path = root / BENCHMARK_JSON
    if not path.is_file() and (root / TRANSFORMS_JSON).is_file():
        parent = root.parent.parent
        hint = f" ({parent})" if root.parent.name == SCENES_DIR and (parent / BENCHMARK_JSON).is_file() else ""
        raise InputError(root, f"this is a scene folder; pass the benchmark root{hint}, the folder that holds {BENCHMARK_JSON}")
    data = read_json(path)
    _require(data, "splits", path)
    return data


def scenes_in_split(root: str | Path, split: str) -> list[str]:
    """Scene ids of one scene split (train/val/test) of a built benchmark."""
    if split not in SPLITS:
        raise InputError(Path(root) / BENCHMARK_JSON, f"unknown split {split!r}; expected one of {SPLITS}")
    return list(load_benchmark(root)["splits"].get(split, []))
