"""Draw test views as image | GT classes | prior classes | a method's classes (docs/priors.md's pictures).

    .venv/bin/python scripts/figure_prior_fusion.py --data demo8 --prior sim-m2f \
        --predictions runs/table1/semantic-nerf/submission --views 3dfront_0005_00/0052,3dfront_0006_01/0041 \
        --out docs/images/semantic_nerf_demo8_calibrated.png

Where a person would rather look than read: whether a fused field repeats the prior's mistakes in every view or
votes them away. Class colours are the evaluator's (``nerfseg eval --plots``); dark grey is void / unlabelled.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from nerfseg import spec
from nerfseg.errors import InputError
from nerfseg.evaluation.plots import _pyplot, _save, class_colour
from nerfseg.evaluation.types import VOID, semantic_from_panoptic
from nerfseg.io import read_panoptic_png

VOID_GREY = np.array([40, 40, 40], np.uint8)


def class_image(classes: np.ndarray) -> np.ndarray:
    """RGB picture of a class map (-1 = void)."""
    img = np.empty(classes.shape + (3,), np.uint8)
    img[:] = VOID_GREY
    for c in np.unique(classes[classes >= 0]):
        img[classes == c] = (255 * np.asarray(class_colour(int(c)))).astype(np.uint8)
    return img


def panoptic_classes(png: Path, doc_path: Path) -> np.ndarray:
    """Per-pixel class of a COCO panoptic PNG, from its panoptic.json entry (-1 where no segment)."""
    doc = json.loads(doc_path.read_text())
    entry = next((a for a in doc.get("annotations", []) if a["file_name"] == png.name), None)
    if entry is None:
        raise InputError(doc_path, f"no annotation for {png.name}")
    semantic = semantic_from_panoptic(read_panoptic_png(png), {int(seg["id"]): seg for seg in entry["segments_info"]})
    return void_as_minus_one(semantic)


def void_as_minus_one(semantic: np.ndarray) -> np.ndarray:
    """A uint8 class map with ``VOID`` (255) as -1, the void of :func:`class_image`."""
    semantic = semantic.astype(np.int64)
    semantic[semantic == VOID] = -1
    return semantic


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--prior", default="sim-m2f")
    ap.add_argument("--predictions", type=Path, required=True, help="a submission folder (per-scene panoptic/ + panoptic.json)")
    ap.add_argument("--method-name", default="Semantic-NeRF")
    ap.add_argument("--views", required=True, help="scene/frame,scene/frame,...")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    from PIL import Image

    plt = _pyplot()

    views = [v.split("/") for v in args.views.split(",") if v]
    fig, axes = plt.subplots(len(views), 4, figsize=(13, 2.6 * len(views)), squeeze=False)
    names: list[str] = []
    for row, (sid, frame) in enumerate(views):
        sdir = spec.scene_dir(args.data, sid)
        prior_dir = sdir / spec.PRIORS_DIR / args.prior
        names = [c["name"] for c in json.loads((prior_dir / "panoptic.json").read_text())["categories"]]
        semantic = np.asarray(Image.open(sdir / spec.SEMANTIC_DIR / f"{frame}.png"))
        panels = [
            (np.asarray(Image.open(sdir / spec.IMAGES_DIR / f"{frame}.png").convert("RGB")), f"{sid} / {frame}"),
            (class_image(void_as_minus_one(semantic)), "GT classes"),
            (class_image(panoptic_classes(prior_dir / "panoptic" / f"{frame}.png", prior_dir / "panoptic.json")), f"prior {args.prior}"),
            (class_image(panoptic_classes(args.predictions / sid / "panoptic" / f"{frame}.png", args.predictions / sid / "panoptic.json")), args.method_name),
        ]
        for col, (img, title) in enumerate(panels):
            axes[row, col].imshow(img)
            axes[row, col].set_title(title, fontsize=9)
            axes[row, col].axis("off")
    handles = [plt.Rectangle((0, 0), 1, 1, color=class_colour(i)) for i in range(len(names))]
    fig.legend(handles, names, loc="lower center", ncol=len(names), fontsize=8)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    _save(fig, args.out, dpi=80)  # the evaluator's plots' saver: atomic, figure freed
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
