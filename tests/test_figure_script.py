"""scripts/figure_prior_fusion.py: panoptic PNG + panoptic.json -> class map, and class maps -> colours."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from nerfseg.errors import InputError
from nerfseg.evaluation.plots import class_colour
from nerfseg.io import write_panoptic_png

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "figure_prior_fusion.py"


def _load():
    spec = importlib.util.spec_from_file_location("figure_prior_fusion", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_panoptic_classes_maps_segments_and_leaves_the_rest_void(tmp_path: Path) -> None:
    fig = _load()
    ids = np.zeros((4, 5), np.int64)
    ids[:2, :2] = 700001  # a segment id above 2^16 checks the 3-channel decoding
    ids[3, 4] = 12
    write_panoptic_png(tmp_path / "0003.png", ids)
    doc = {"annotations": [{"file_name": "0003.png", "segments_info": [{"id": 700001, "category_id": 4}, {"id": 12, "category_id": 0}]}]}
    (tmp_path / "panoptic.json").write_text(json.dumps(doc))
    classes = fig.panoptic_classes(tmp_path / "0003.png", tmp_path / "panoptic.json")
    expected = np.full((4, 5), -1)
    expected[:2, :2] = 4
    expected[3, 4] = 0
    np.testing.assert_array_equal(classes, expected)
    img = fig.class_image(classes)
    assert tuple(img[0, 0]) == tuple((255 * np.asarray(class_colour(4))).astype(np.uint8))
    assert tuple(img[2, 2]) == tuple(fig.VOID_GREY)


def test_a_frame_missing_from_panoptic_json_is_named(tmp_path: Path) -> None:
    fig = _load()
    write_panoptic_png(tmp_path / "0001.png", np.zeros((2, 2), np.int64))
    (tmp_path / "panoptic.json").write_text(json.dumps({"annotations": []}))
    with pytest.raises(InputError, match="0001.png"):
        fig.panoptic_classes(tmp_path / "0001.png", tmp_path / "panoptic.json")
