"""The contract helpers: id codec, PNG round trips, atomic writes, the category table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from nerfseg import io, spec
from nerfseg.errors import InputError, UnknownCategoryError

SAMPLE = Path(__file__).resolve().parent / "data" / "coco_panoptic_sample"  # real COCO GT, see its README


def test_id_codec_round_trip(rng: np.random.Generator) -> None:
    ids = rng.integers(0, 1 << 24, size=(17, 23)).astype(np.uint32)
    assert np.array_equal(io.rgb2id(io.id2rgb(ids)), ids)
    assert io.rgb2id(np.array([[[1, 2, 3]]], np.uint8))[0, 0] == 1 + 2 * 256 + 3 * 65536


def test_id2rgb_rejects_out_of_range() -> None:
    with pytest.raises(ValueError):
        io.id2rgb(np.array([[1 << 24]]))


@pytest.mark.parametrize("dtype,expect", [(np.uint8, "gray8"), (np.uint16, "gray16")])
def test_png_round_trip(tmp_path: Path, rng: np.random.Generator, dtype: type, expect: str) -> None:
    arr = rng.integers(0, np.iinfo(dtype).max, size=(9, 11)).astype(dtype)
    io.write_png(tmp_path / "a.png", arr)
    back = io.read_png(tmp_path / "a.png", expect=expect)
    assert back.dtype == dtype and np.array_equal(back, arr)


def test_read_png_names_file_on_corruption(tmp_path: Path) -> None:
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(InputError, match="bad.png"):
        io.read_png(bad)
    with pytest.raises(InputError, match="file not found"):
        io.read_png(tmp_path / "missing.png")


def test_atomic_write_leaves_nothing_on_error(tmp_path: Path) -> None:
    target = tmp_path / "x.json"
    with pytest.raises(RuntimeError):
        with io.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []
    io.write_json_atomic(target, {"a": np.int64(3), "b": np.float32(0.5)})
    assert json.loads(target.read_text()) == {"a": 3, "b": 0.5}


def test_real_coco_panoptic_png_matches_its_json() -> None:
    """The real COCO sample: segment areas in the JSON equal the pixel counts of the decoded PNG."""
    data = json.loads((SAMPLE / "panoptic_examples.json").read_text())
    for ann in data["annotations"]:
        ids = io.read_panoptic_png(SAMPLE / "panoptic_examples" / ann["file_name"])
        for seg in ann["segments_info"]:
            assert int((ids == seg["id"]).sum()) == seg["area"]
            assert io.segment_bbox(ids == seg["id"]) == seg["bbox"]


def test_category_table() -> None:
    assert spec.NUM_CLASSES == 11
    assert spec.category_to_class("Dining Chair", "Chair") == spec.CLASS_INDEX_BY_NAME["chair"]
    assert spec.category_to_class(None, "Others") == spec.CLASS_INDEX_BY_NAME["otherfurniture"]
    assert spec.category_to_class("Footstool / Sofastool / Bed End Stool / Stool", "Pier/Stool") == 3
    with pytest.raises(UnknownCategoryError, match="Space Heater"):
        spec.category_to_class("Space Heater", "Others", source="model_info.json")
    classes = {k for _, _, k in spec.known_categories()}
    assert classes == set(spec.THING_CLASSES)


def test_read_json_names_file_and_line(tmp_path: Path) -> None:
    p = tmp_path / "broken.json"
    p.write_text('{"a": 1,\n "b": }')
    with pytest.raises(InputError, match=r"broken.json.*line 2"):
        spec.read_json(p)
