"""Tests of the mask2former prior: the COCO -> class mapping, and a full run of a tiny, randomly initialised
Mask2Former saved locally (nothing is downloaded)."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from nerfseg.dataset_tools.mask2former import coco_mapping, label_table, map_panoptic
from nerfseg import spec
from nerfseg.errors import InputError
from tests.dataset_tools.test_priors import make_tiny_scene

C = spec.CLASS_INDEX_BY_NAME


def test_mapping_table_follows_the_reference() -> None:
    table = coco_mapping()
    assert len(table) == 133 and sum(c.isthing for c in table.values()) == 80
    expected = {
        "chair": "chair", "couch": "sofa", "bed": "bed", "dining table": "table", "tv": "otherfurniture",
        "potted plant": "otherfurniture", "person": "otherfurniture", "light": "lamp", "shelf": "bookshelf",
        "cabinet-merged": "cabinet", "table-merged": "table", "wall-other-merged": "background", "curtain": "background",
        "door-stuff": "background", "floor-wood": "background", "stairs": "background", "window-blind": "background",
        "ceiling-merged": "background", "building-other-merged": "background", "rug-merged": "otherfurniture",
        "pillow": "otherfurniture", "sky-other-merged": "otherfurniture",
    }  # fmt: skip
    for name, cls in expected.items():
        assert table[name].class_index == C[cls], name
    assert sum(c.class_index == 0 for c in table.values()) == 14  # the reference's 14 background stuff names
    data = json.loads(resources.files("nerfseg").joinpath("data/coco_to_classes.json").read_text())
    assert [r["label_id"] for r in data["categories"]] == list(range(133))


def test_unknown_labels_are_named() -> None:
    with pytest.raises(InputError, match="unicorn"):
        label_table({0: "chair", 1: "unicorn"}, "cfg.json")


def test_map_panoptic_merges_background_and_keeps_things() -> None:
    labels = label_table({0: "chair", 1: "wall-other-merged", 2: "floor-wood", 3: "couch", 4: "light"})
    seg = np.array(
        [
            [1, 1, 2, 2, 0],
            [1, 1, 2, 2, 0],
            [3, 3, 4, 4, 5],
            [3, 3, 4, 4, 5],
        ]
    )
    info = [
        {"id": 1, "label_id": 0, "score": 0.9},
        {"id": 2, "label_id": 1, "score": 0.7},
        {"id": 3, "label_id": 2, "score": 0.8},
        {"id": 4, "label_id": 3, "score": 0.6},
        {"id": 4, "label_id": 3, "score": 0.65},  # a fused id listed twice
        {"id": 5, "label_id": 4, "score": 0.55},
    ]
    ids, segs = map_panoptic(seg, info, labels, np.random.default_rng(0))
    by_cat = {s["category_id"]: s for s in segs}
    assert sorted(by_cat) == [0, C["chair"], C["sofa"], C["lamp"]]
    assert by_cat[0]["area"] == 8 and by_cat[0]["score"] == 0.8  # wall + floor -> one background segment
    assert by_cat[C["sofa"]]["score"] == 0.65
    assert np.all(ids[:2, 4] == 0)  # void stays void
    assert len({s["id"] for s in segs}) == 4 and all(s["id"] > 5 for s in segs)
    assert set(np.unique(ids).tolist()) - {0} == {s["id"] for s in segs}


# ---------------------------------------------------------------------------------------------
# A real (tiny) Mask2Former through transformers

ID2LABEL = {0: "chair", 1: "couch", 2: "dining table", 3: "wall-other-merged", 4: "floor-wood", 5: "light"}


def _tiny_checkpoint(folder: Path, favourite: str) -> Path:
    """Save a randomly initialised, tiny Mask2Former whose class head always answers ``favourite``."""
    torch = pytest.importorskip("torch", reason="the mask2former prior needs torch")
    transformers = pytest.importorskip("transformers", reason="the mask2former prior needs transformers (pip install transformers)")
    backbone = transformers.SwinConfig(
        image_size=64, patch_size=4, embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2], window_size=4,
        out_features=["stage1", "stage2", "stage3", "stage4"],
    )  # fmt: skip
    config = transformers.Mask2FormerConfig(
        backbone_config=backbone, feature_size=32, mask_feature_size=32, hidden_dim=32, encoder_feedforward_dim=64,
        encoder_layers=1, decoder_layers=2, num_attention_heads=2, dim_feedforward=64, num_queries=8,
        id2label=ID2LABEL, label2id={v: k for k, v in ID2LABEL.items()},
    )  # fmt: skip
    torch.manual_seed(0)
    model = transformers.Mask2FormerForUniversalSegmentation(config).eval()
    with torch.no_grad():  # make every query confidently predict one label (random init gives ~1/7 scores)
        model.class_predictor.weight.zero_()
        model.class_predictor.bias.fill_(-10.0)
        model.class_predictor.bias[config.label2id[favourite]] = 10.0
    model.save_pretrained(folder)
    transformers.Mask2FormerImageProcessor(size={"shortest_edge": 64, "longest_edge": 96}).save_pretrained(folder)
    return folder


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


def test_tiny_mask2former_prior_end_to_end(tmp_path: Path, offline: None) -> None:
    from nerfseg.dataset_tools.mask2former import Mask2FormerPrior
    from nerfseg.dataset_tools.priors import load_prior_json, read_prior_frame, write_priors

    scene = make_tiny_scene(tmp_path / "data", n_frames=2)
    chair_ckpt = _tiny_checkpoint(tmp_path / "chair", "chair")
    wall_ckpt = _tiny_checkpoint(tmp_path / "wall", "wall-other-merged")

    # keep every query that wins some pixels, so a random model still produces segments
    chair = Mask2FormerPrior(chair_ckpt, device="cpu", overlap_mask_area_threshold=0.0)
    rgb = np.zeros((60, 80, 3), np.uint8)
    raw, raw_info = chair.raw(rgb)
    assert raw.shape == (60, 80) and raw_info
    ids, segs = chair.predict(rgb, np.random.default_rng(0))
    assert segs and {s["category_id"] for s in segs} == {C["chair"]}
    assert 0.99 < min(s["score"] for s in segs) <= 1.0

    wall = Mask2FormerPrior(wall_ckpt, device="cpu", overlap_mask_area_threshold=0.0)
    ids, segs = wall.predict(rgb, np.random.default_rng(0))
    assert len(segs) == 1 and segs[0]["category_id"] == spec.BACKGROUND  # stuff fused into one segment
    assert segs[0]["area"] == int((ids == segs[0]["id"]).sum())

    # the full writer with the default post-processing (threshold 0.5, overlap 0.8)
    rep = write_priors(scene, "mask2former", mask2former_path=chair_ckpt, seed=0)
    doc = load_prior_json(scene, "mask2former")
    assert rep.frames == 2 and doc["params"]["threshold"] == 0.5 and doc["params"]["weights"].endswith("chair")
    for fr in spec.load_scene_info(scene).frames:
        ids, segs = read_prior_frame(scene, "mask2former", fr.name, doc)  # PNG ids == JSON ids, no id 0
        assert all(s["category_id"] == C["chair"] for s in segs)


def test_missing_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    pytest.importorskip("transformers", reason="the mask2former prior needs transformers")
    from nerfseg.dataset_tools.mask2former import Mask2FormerPrior

    with pytest.raises(InputError, match="config.json missing"):
        Mask2FormerPrior(tmp_path)
