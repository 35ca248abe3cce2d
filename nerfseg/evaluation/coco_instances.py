"""The benchmark's GT as a COCO *instances* dataset (RLE masks), for 2D tooling: detectron2, mmdetection, COCO API.

Why: the benchmark speaks COCO *panoptic* (PNG + JSON), but the usual way to train or evaluate a 2D instance
segmentation network is a COCO instances JSON with one RLE mask per object. ``export_coco`` writes that for
the views of a scene split, from the same panoptic GT the evaluator reads, so a network fine-tuned on the
export (a better 2D prior than ``sim-m2f``) sees exactly the benchmark's instances.

What is written (``pycocotools.coco.COCO`` and detectron2's ``load_coco_json`` read it unchanged):

* ``images``: one per view, ``id`` 1..N in (scene order of benchmark.json, frame order of transforms.json),
  ``file_name`` relative to the benchmark root (``scenes/<scene>/images/<frame>.png``: pass the benchmark
  root as detectron2's ``image_root``), ``width``, ``height``, plus ``scene_id`` and ``frame``.
* ``categories``: the 10 thing classes with the benchmark's class indices as ids (1..10, contiguous, so
  detectron2 maps them to 0..9 without a warning); background is stuff and has no instances.
* ``annotations``: one per instance visible in a view (``id`` 1..M, unique): ``segmentation`` as compressed
  RLE (``{"size": [h, w], "counts": str}``, the bytes of ``pycocotools.mask.encode``), ``area`` (pixels),
  ``bbox`` ([x, y, w, h]), ``iscrowd`` 0, ``category_id``, plus ``instance_id``: the GT instance id, the same
  object in every view of its scene (COCO tools ignore it; detectron2 loads it with
  ``extra_annotation_keys=["instance_id"]``).

Views: ``views="auto"`` takes every view of the train scenes (what a 2D network may learn from) and the
test views of the val/test scenes (exactly the views mask AP is computed on); ``"train"``, ``"test"`` or
``"all"`` choose explicitly.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from nerfseg.evaluation.gt import load_gt_scene
from nerfseg.evaluation.metrics.mask_ap import coco_categories, encode_segments
from nerfseg import io, spec
from nerfseg.errors import InputError

__all__ = ["VIEW_CHOICES", "export_coco", "views_for"]

VIEW_CHOICES = ("auto", "train", "test", "all")


def views_for(split: str, views: str = "auto") -> tuple[str, ...]:
    """The view splits exported for scene split ``split``: ``auto`` = all views of train scenes, the test
    views of val/test scenes."""
    if views not in VIEW_CHOICES:
        raise InputError(None, f"unknown views {views!r}; expected one of {', '.join(VIEW_CHOICES)}")
    if views == "auto":
        return ("train", "test") if split == "train" else ("test",)
    return ("train", "test") if views == "all" else (views,)


def export_coco(
    data_root: str | Path,
    split: str,
    out: str | Path | None = None,
    views: str = "auto",
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """COCO instances dataset of the GT of ``split``'s scenes (see the module docstring); written
    atomically to ``out`` when given. Raises :class:`InputError` naming the file for a broken benchmark."""
    data_root = Path(data_root)
    scenes = spec.scenes_in_split(data_root, split)
    wanted = views_for(split, views)
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for sid in scenes:
        # one GTScene per view split, frames then merged back into transforms.json order
        by_split = {v: load_gt_scene(data_root, sid, v) for v in wanted}
        order = [f.name for f in spec.load_scene_info(spec.scene_dir(data_root, sid)).frames]
        owner = {name: gt for gt in by_split.values() for name in gt.frame_names}
        for name in (n for n in order if n in owner):
            gt = owner[name]
            ids, segments = gt.frame(name)
            image_id = len(images) + 1
            images.append(
                {
                    "id": image_id,
                    "file_name": f"{spec.SCENES_DIR}/{sid}/{spec.IMAGES_DIR}/{name}.png",
                    "width": gt.width,
                    "height": gt.height,
                    "scene_id": sid,
                    "frame": name,
                }
            )
            things = sorted(k for k, s in segments.items() if s["category_id"] in spec.THING_CLASSES)
            for seg_id, enc in zip(things, encode_segments(ids, things)):
                if enc["area"] == 0:
                    continue  # listed in the JSON but not visible in the PNG: not an instance of this view
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": image_id,
                        "category_id": segments[seg_id]["category_id"],
                        "segmentation": enc["segmentation"],
                        "area": enc["area"],
                        "bbox": enc["bbox"],
                        "iscrowd": int(segments[seg_id]["iscrowd"]),
                        "instance_id": seg_id,
                    }
                )
        if progress:
            progress(sid)
    bench = spec.load_benchmark(data_root)
    dataset = {
        "info": {
            "description": f"nerfseg benchmark {bench.get('name', data_root.name)}: GT instances of the {split} scenes ({'+'.join(wanted)} views)",
            "version": spec.SPEC_VERSION,
            "split": split,
            "views": list(wanted),
        },
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": coco_categories(),
    }
    if out is not None:
        io.write_json_atomic(out, dataset, indent=None)
    return dataset
