"""The ``mask2former`` prior: a real COCO-panoptic Mask2Former (Hugging Face transformers) run on the RGB views.

The paper's 2D input is COCO Mask2Former (Swin-L IN21k, threshold 0.5) with its 133 COCO categories mapped to the
NYU40 classes (anchors 6.1). This module does the same with ``transformers``:
``Mask2FormerForUniversalSegmentation`` + ``Mask2FormerImageProcessor`` loaded from one local folder (e.g. a
download of ``facebook/mask2former-swin-large-coco-panoptic``; nothing is fetched at run time), panoptic
post-processing with threshold 0.5, and the COCO -> class table ``nerfseg/data/coco_to_classes.json`` matched by
label *name* (``model.config.id2label``), so a checkpoint with another label order still maps correctly and one
with unknown labels fails loudly instead of dropping them.

torch and transformers are imported lazily: the rest of dataset_tools works without them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from nerfseg import spec
from nerfseg.dataset_tools.prior_masks import ID_MAX, coco_segments_info
from nerfseg.errors import InputError

MAPPING_RESOURCE = "data/coco_to_classes.json"


@dataclass(frozen=True)
class CocoCategory:
    """One row of the COCO -> class table."""

    name: str
    isthing: bool
    class_index: int  # 0 = background stuff, 1..10 = object classes


@lru_cache(maxsize=1)
def coco_mapping() -> dict[str, CocoCategory]:
    """COCO panoptic category name -> :class:`CocoCategory` (the 133 rows of coco_to_classes.json)."""
    text = resources.files("nerfseg").joinpath(MAPPING_RESOURCE).read_text(encoding="utf-8")
    rows = json.loads(text)["categories"]
    table: dict[str, CocoCategory] = {}
    for row in rows:
        cls = row["class"]
        if cls not in spec.CLASS_INDEX_BY_NAME:
            raise InputError(f"nerfseg/{MAPPING_RESOURCE}", f"category {row['name']!r} maps to unknown class {cls!r}")
        table[row["name"]] = CocoCategory(row["name"], bool(row["isthing"]), spec.CLASS_INDEX_BY_NAME[cls])
    return table


def label_table(id2label: Mapping[Any, str], source: str | Path | None = None) -> dict[int, CocoCategory]:
    """Model label id -> mapped category; every label must be in the table (an unknown one is named, not dropped)."""
    mapping = coco_mapping()
    out: dict[int, CocoCategory] = {}
    unknown = []
    for key, name in id2label.items():
        if name in mapping:
            out[int(key)] = mapping[name]
        else:
            unknown.append(name)
    if unknown:
        raise InputError(
            source,
            f"model labels {sorted(unknown)[:8]} are not COCO panoptic categories of nerfseg/{MAPPING_RESOURCE}; "
            "use a COCO-panoptic checkpoint or add the labels to the table",
            key="id2label",
        )
    return out


def map_panoptic(
    segmentation: np.ndarray,
    segments_info: list[Mapping[str, Any]],
    labels: Mapping[int, CocoCategory],
    rng: np.random.Generator,
    id_max: int = ID_MAX,
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Turn a post-processed Mask2Former result into our panoptic prior for one view.

    ``segmentation`` holds the network's segment ids (<= 0 = no segment: void); ``segments_info`` the
    ``{id, label_id, score}`` rows (a fused stuff id may appear several times). Every segment whose COCO
    category maps to background becomes part of ONE background stuff segment (category 0), as in the GT; all
    others keep their own segment with the mapped class. Ids are then replaced by random ids (1..id_max), like
    the other priors, so small consecutive network ids carry no accidental cross-view meaning.
    """
    seg = np.asarray(segmentation).astype(np.int64)
    groups: dict[int, tuple[int, float]] = {}  # network id -> (class, score)
    for row in segments_info:
        sid, label, score = int(row["id"]), int(row["label_id"]), float(row.get("score", 1.0))
        if label not in labels:
            raise InputError(None, f"segment {sid} has label id {label} that the model's id2label does not list")
        cls = labels[label].class_index
        prev = groups.get(sid)
        groups[sid] = (cls, max(score, prev[1]) if prev else score)
    keys = sorted(groups)
    bg_score = max((groups[k][1] for k in keys if groups[k][0] == spec.BACKGROUND), default=None)
    # compact target index per network id: 0 = void, 1 = background, 2.. = objects
    max_id = max([int(seg.max()) if seg.size else 0] + keys) + 1
    lut = np.zeros(max_id + 1, np.int64)
    target_cls, target_score = [spec.BACKGROUND], [bg_score if bg_score is not None else 1.0]
    for k in keys:
        cls, score = groups[k]
        if cls == spec.BACKGROUND:
            lut[k] = 1
        else:
            lut[k] = len(target_cls) + 1
            target_cls.append(cls)
            target_score.append(score)
    compact = np.where(seg > 0, lut[np.clip(seg, 0, max_id)], 0)
    present = np.unique(compact)
    present = present[present > 0]
    draws = rng.choice(id_max, size=present.size, replace=False) + 1 if present.size else np.zeros(0, np.int64)
    new_id = np.zeros(len(target_cls) + 1, np.uint32)
    new_id[present] = draws.astype(np.uint32)
    ids = new_id[compact]
    category_of = {int(new_id[t]): target_cls[t - 1] for t in present.tolist()}
    score_of = {int(new_id[t]): round(float(target_score[t - 1]), 4) for t in present.tolist()}
    return ids, coco_segments_info(ids, category_of, score_of)


class Mask2FormerPrior:
    """A loaded checkpoint that predicts one view at a time (model on GPU when there is one)."""

    def __init__(
        self,
        path: str | Path,
        device: str | None = None,
        threshold: float = 0.5,
        mask_threshold: float = 0.5,
        overlap_mask_area_threshold: float = 0.8,
    ) -> None:
        try:
            import torch
            from transformers import (
                Mask2FormerForUniversalSegmentation,
                Mask2FormerImageProcessor,
            )
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise InputError(None, f"the mask2former prior needs torch and transformers (pip install 'nerfseg[mask2former]'): {exc}") from None
        self.path = Path(path)
        if not (self.path / "config.json").is_file():
            raise InputError(self.path, "not a Hugging Face checkpoint folder (config.json missing); pass the local folder of a COCO-panoptic Mask2Former")
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        try:
            self.model = Mask2FormerForUniversalSegmentation.from_pretrained(str(self.path), local_files_only=True).to(self.device).eval()
            self.processor = Mask2FormerImageProcessor.from_pretrained(str(self.path), local_files_only=True)
        except (OSError, ValueError) as exc:
            raise InputError(self.path, f"cannot load the Mask2Former checkpoint or its image processor: {exc}") from None
        self.labels = label_table(self.model.config.id2label, self.path / "config.json")
        # Stuff categories are fused into one segment per image, as detectron2's panoptic inference does.
        self.fuse = {k for k, c in self.labels.items() if not c.isthing}
        self.threshold = threshold
        self.mask_threshold = mask_threshold
        self.overlap_mask_area_threshold = overlap_mask_area_threshold

    def params(self) -> dict[str, Any]:
        return {
            "weights": str(self.path),
            "threshold": self.threshold,
            "mask_threshold": self.mask_threshold,
            "overlap_mask_area_threshold": self.overlap_mask_area_threshold,
            "mapping": f"nerfseg/{MAPPING_RESOURCE}",
            "num_labels": len(self.labels),
        }

    def raw(self, rgb: np.ndarray) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """The network's own panoptic output at the image size: (segment ids, segments_info)."""
        import torch

        rgb = np.asarray(rgb)
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"expected an (H, W, 3) uint8 image, got {rgb.dtype} {rgb.shape}")
        h, w = rgb.shape[:2]
        inputs = self.processor(images=rgb, return_tensors="pt")
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        with torch.no_grad():
            outputs = self.model(**inputs)
        result = self.processor.post_process_panoptic_segmentation(
            outputs,
            threshold=self.threshold,
            mask_threshold=self.mask_threshold,
            overlap_mask_area_threshold=self.overlap_mask_area_threshold,
            label_ids_to_fuse=self.fuse,
            target_sizes=[(h, w)],
        )[0]
        return result["segmentation"].cpu().numpy().astype(np.int64), list(result["segments_info"])

    def predict(self, rgb: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """(ids uint32 HxW, segments_info) in the prior format for one RGB view."""
        seg, info = self.raw(rgb)
        return map_panoptic(seg, info, self.labels, rng)


@lru_cache(maxsize=2)
def _cached(path: str, device: str | None, threshold: float) -> Mask2FormerPrior:
    return Mask2FormerPrior(path, device=device, threshold=threshold)


def load_predictor(path: str | Path, device: str | None = None, threshold: float = 0.5) -> Mask2FormerPrior:
    """A (per-process cached) :class:`Mask2FormerPrior`: loading Swin-L once, not once per scene."""
    return _cached(str(Path(path).resolve()), device, threshold)
