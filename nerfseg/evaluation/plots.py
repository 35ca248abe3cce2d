"""Pictures of an evaluation that explain themselves: per-class bars and per-view match overlays.

Overlays show, for one test view, the RGB image, the GT segments, the predicted segments and a TP/FP/FN
view. Colours carry the evaluator's own decisions: a GT segment's hue is its class (a fixed table, the same
in every frame; instances of a class differ in shade, and a segment keeps its shade in every view because
a GT thing's segment id is its instance id), a prediction matched by the per-frame PQ rule (same class,
IoU > 0.5, :func:`nerfseg.evaluation.metrics.panoptic.frame_pq_assignment`) takes the colour of its GT segment, and
an unmatched prediction is drawn with red stripes over its class colour (no class is red). Background (the stuff
class) and void have fixed colours. The colouring is vectorised (a lookup table over the segment ids of a
frame); only the handful of segments is looped over.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nerfseg import spec

RGB = tuple[float, float, float]

#: hue of each thing class (index 1..10), chosen far from the red of unmatched predictions and from the
#: greys of background and void; the same in every picture, so the legend reads across frames
CLASS_COLOURS: dict[int, RGB] = {
    1: (0.12, 0.47, 0.71),  # cabinet: blue
    2: (1.00, 0.50, 0.05),  # bed: orange
    3: (0.17, 0.63, 0.17),  # chair: green
    4: (0.58, 0.40, 0.74),  # sofa: purple
    5: (0.55, 0.34, 0.29),  # table: brown
    6: (0.89, 0.47, 0.76),  # bookshelf: pink
    7: (0.74, 0.74, 0.13),  # desk: olive
    8: (0.09, 0.75, 0.81),  # nightstand: cyan
    9: (1.00, 0.84, 0.00),  # lamp: gold
    10: (0.00, 0.40, 0.40),  # otherfurniture: teal
}
BACKGROUND_COLOUR: RGB = (0.80, 0.78, 0.72)  # the stuff class, in every frame
VOID_COLOUR: RGB = (0.10, 0.10, 0.10)  # GT void (rays that hit nothing, uncounted furniture); predicted void
UNMATCHED_COLOUR: RGB = (0.90, 0.00, 0.00)  # an unmatched (FP) prediction: red stripes over its class colour
IGNORED_COLOUR: RGB = (0.55, 0.55, 0.55)  # unmatched but not a FP: mostly on GT void
BORDER_COLOUR: RGB = (1.00, 1.00, 1.00)
TP_COLOUR: RGB = (0.10, 0.75, 0.20)
FP_COLOUR: RGB = (0.90, 0.05, 0.05)
FN_COLOUR: RGB = (0.15, 0.35, 1.00)
OUTCOME_VOID_COLOUR: RGB = (0.50, 0.50, 0.50)
STRIPE_PX = 4  # stripe width of unmatched predictions, in pixels
#: instance shades: the class hue mixed with white (>0) or black (<0) by this fraction
_SHADES = (0.0, 0.38, -0.35, 0.2, -0.18, 0.55)


def class_colour(class_index: int) -> RGB:
    """The fixed colour of a class (background for the stuff class 0)."""
    return BACKGROUND_COLOUR if class_index == spec.BACKGROUND else CLASS_COLOURS[int(class_index)]


def segment_colour(segment_id: int, class_index: int) -> RGB:
    """A GT segment's colour: its class hue in a shade picked from its id (stable across frames)."""
    base = np.array(class_colour(class_index))
    if class_index == spec.BACKGROUND:
        return tuple(base.tolist())  # type: ignore[return-value]
    mix = _SHADES[(int(segment_id) * 2654435761 >> 7) % len(_SHADES)]
    out = base + mix * (1.0 - base) if mix >= 0 else base * (1.0 + mix)
    return tuple(np.clip(out, 0.0, 1.0).tolist())  # type: ignore[return-value]


class _Labelled:
    """A frame's id map as compact labels (:func:`nerfseg.evaluation.metrics.frame.label_image`'s lookup table:
    0 = an id without a segment entry, 1 = void, 2 + i = the i-th segment id in ascending order), so that
    colouring and masks are one table lookup per pixel instead of a sort of the whole map."""

    def __init__(self, ids: np.ndarray, segment_ids: Any):
        from nerfseg.evaluation.metrics.frame import label_image

        self.keys = np.array(sorted(int(k) for k in segment_ids), dtype=np.int64)
        self.labels = label_image(ids, self.keys).reshape(ids.shape)

    def _table(self, values: Mapping[int, Any], default: Any, void: Any, dtype: Any) -> np.ndarray:
        table = np.empty((self.keys.size + 2,) + np.shape(default), dtype=dtype)
        table[0], table[1] = default, void
        table[2:] = [values.get(int(k), default) for k in self.keys] if self.keys.size else table[2:]
        return table

    def paint(self, colours: Mapping[int, RGB], default: RGB, void: RGB) -> np.ndarray:
        """(H, W, 3) float32 image of each segment's colour (``default`` for ids missing from ``colours``)."""
        return np.take(self._table(colours, default, void, np.float32), self.labels, axis=0)

    def mask(self, segment_ids: Any) -> np.ndarray:
        """Boolean map of the pixels of the given segments."""
        return np.take(self._table({int(k): True for k in segment_ids}, False, False, bool), self.labels)

    def centroids(self) -> dict[int, tuple[float, float]]:
        """(x, y) mean pixel position of each segment present, by segment id."""
        h, w = self.labels.shape
        flat = self.labels.ravel()
        n = self.keys.size + 2
        count = np.bincount(flat, minlength=n)
        cx = np.bincount(flat, weights=np.tile(np.arange(w, dtype=np.float64), h), minlength=n)
        cy = np.bincount(flat, weights=np.repeat(np.arange(h, dtype=np.float64), w), minlength=n)
        return {int(k): (cx[i + 2] / count[i + 2], cy[i + 2] / count[i + 2]) for i, k in enumerate(self.keys) if count[i + 2]}


def _stripes(shape: tuple[int, int]) -> np.ndarray:
    """Boolean diagonal stripes, ``STRIPE_PX`` wide."""
    h, w = shape
    return ((np.arange(h)[:, None] + np.arange(w)[None, :]) // STRIPE_PX) % 2 == 0


def _borders(ids: np.ndarray) -> np.ndarray:
    """Pixels whose right or lower neighbour belongs to another segment."""
    edge = np.zeros(ids.shape, dtype=bool)
    edge[:, :-1] |= ids[:, :-1] != ids[:, 1:]
    edge[:-1, :] |= ids[:-1, :] != ids[1:, :]
    return edge


def _inner_edge(mask: np.ndarray, width: int) -> np.ndarray:
    """The pixels of ``mask`` within ``width`` pixels of its outside (4-neighbour erosion by shifts)."""
    inner = mask.copy()
    for _ in range(width):
        shrunk = inner.copy()
        shrunk[1:, :] &= inner[:-1, :]
        shrunk[:-1, :] &= inner[1:, :]
        shrunk[:, 1:] &= inner[:, :-1]
        shrunk[:, :-1] &= inner[:, 1:]
        inner = shrunk
    return mask & ~inner


@dataclass
class FrameOverlay:
    """The panels of one view (float RGB in [0, 1]) and what they show.

    ``gt``/``pred``/``outcome``: the GT, prediction and TP/FP/FN images (segment borders not drawn, so
    every pixel of a segment has its colour). ``classes``: class indices present in the GT or prediction.
    ``tp``/``fp``/``fn``: thing segments counted so in this frame; ``background``: the stuff class's
    outcome ("TP", "FN", "FN+FP", "FP" or "-"). ``labels``: (x, y, text) of each match's IoU.
    """

    gt: np.ndarray
    pred: np.ndarray
    outcome: np.ndarray
    gt_borders: np.ndarray
    pred_borders: np.ndarray
    classes: list[int]
    tp: int
    fp: int
    fn: int
    ignored: int
    background: str
    labels: list[tuple[float, float, str]]


def frame_overlay(
    gt_ids: np.ndarray,
    gt_segments: Mapping[int, Mapping[str, Any]],
    pred_ids: np.ndarray,
    pred_segments: Mapping[int, Mapping[str, Any]],
    rgb: np.ndarray | None = None,
    source: str | None = None,
) -> FrameOverlay:
    """Colour one view by the evaluator's per-frame PQ matching (nerfseg-v1's rule, panopticapi's)."""
    from nerfseg.evaluation.metrics.frame import frame_stats
    from nerfseg.evaluation.metrics.panoptic import CategoryTable, frame_pq_assignment
    from nerfseg.evaluation.protocols import CATEGORIES

    gt_ids = np.asarray(gt_ids)
    pred_ids = np.asarray(pred_ids)
    stats = frame_stats(gt_ids, gt_segments, pred_ids, pred_segments, source=source)
    a = frame_pq_assignment(stats, CategoryTable(CATEGORIES), source)
    gt_cls = {int(k): int(v["category_id"]) for k, v in gt_segments.items()}
    pred_cls = {int(k): int(v["category_id"]) for k, v in pred_segments.items()}

    gt_lab = _Labelled(gt_ids, gt_segments)
    pred_lab = _Labelled(pred_ids, pred_segments)
    gt_col = {sid: segment_colour(sid, c) for sid, c in gt_cls.items() if c in CATEGORIES}
    gt_img = gt_lab.paint(gt_col, VOID_COLOUR, VOID_COLOUR)

    pred_col: dict[int, RGB] = {pid: gt_col[gid] for gid, pid in a["match"].items()}
    pred_col.update({pid: IGNORED_COLOUR for pid in a["ignored"]})
    pred_col.update({pid: class_colour(c) for pid, c in a["fp"].items()})
    pred_img = pred_lab.paint(pred_col, UNMATCHED_COLOUR, VOID_COLOUR)
    pred_img[pred_lab.mask(a["fp"]) & _stripes(gt_ids.shape)] = UNMATCHED_COLOUR

    # TP/FP/FN of the thing classes over a dimmed grey image; background's outcome goes in the title
    things = set(spec.THING_CLASSES)
    if rgb is not None:
        grey = np.asarray(rgb, dtype=np.float64)[..., :3].mean(axis=-1, keepdims=True) / 255.0
        outcome = np.repeat((0.35 + 0.4 * grey).astype(np.float32), 3, axis=-1)
    else:
        outcome = np.full(gt_ids.shape + (3,), 0.6, dtype=np.float32)
    tp_ids = [pid for gid, pid in a["match"].items() if gt_cls[gid] in things]
    fp_ids = [pid for pid, c in a["fp"].items() if c in things]
    fn_ids = [gid for gid, c in a["fn"].items() if c in things]
    tp_px = pred_lab.mask(tp_ids)
    fp_thing_px = pred_lab.mask(fp_ids)
    fn_px = gt_lab.mask(fn_ids)
    outcome[gt_ids == spec.VOID_ID] = OUTCOME_VOID_COLOUR
    outcome[fn_px & ~tp_px & ~fp_thing_px] = FN_COLOUR
    outcome[tp_px] = TP_COLOUR
    outcome[fp_thing_px] = FP_COLOUR
    outcome[_inner_edge(fn_px, 2)] = FN_COLOUR  # an FN under a FP keeps a visible outline

    bg_gt = [sid for sid, c in gt_cls.items() if c == spec.BACKGROUND and not gt_segments[sid].get("iscrowd")]
    bg_tp = any(gt_cls[g] == spec.BACKGROUND for g in a["match"])
    bg_fn = any(c == spec.BACKGROUND for c in a["fn"].values())
    bg_fp = any(c == spec.BACKGROUND for c in a["fp"].values())
    background = "-" if not bg_gt and not bg_fp else "+".join(k for k, on in (("TP", bg_tp), ("FN", bg_fn), ("FP", bg_fp)) if on)

    centres = pred_lab.centroids() if tp_ids else {}
    labels = [(*centres[pid], f"{a['iou'][gid]:.2f}") for gid, pid in a["match"].items() if gt_cls[gid] in things and pid in centres]

    present = sorted({c for c in gt_cls.values()} | {c for c in pred_cls.values()})
    return FrameOverlay(
        gt=gt_img,
        pred=pred_img,
        outcome=outcome,
        gt_borders=_borders(gt_ids),
        pred_borders=_borders(pred_ids),
        classes=[c for c in present if c in CATEGORIES],
        tp=len(tp_ids),
        fp=len(fp_ids),
        fn=len(fn_ids),
        ignored=len(a["ignored"]),
        background=background or "-",
        labels=labels,
    )


def legend_entries(classes: Sequence[int]) -> list[tuple[str, RGB, str | None]]:
    """(label, face colour, hatch) of an overlay's legend: the classes present, then the fixed colours.

    Padded to an even length so that a two-row legend (filled column by column) keeps the groups apart.
    """
    out: list[tuple[str, RGB, str | None]] = [(spec.CLASS_NAMES[c], class_colour(c), None) for c in classes]
    out.append(("void", VOID_COLOUR, None))
    if len(out) % 2:
        out.append(("", (1.0, 1.0, 1.0), None))
    out += [
        ("red stripes: prediction matched\nto no GT segment (FP)", UNMATCHED_COLOUR, "////"),
        ("unmatched, mostly on GT void (ignored)", IGNORED_COLOUR, None),
        ("TP", TP_COLOUR, None),
        ("FP", FP_COLOUR, None),
        ("FN (missed GT)", FN_COLOUR, None),
        ("GT void", OUTCOME_VOID_COLOUR, None),
    ]
    return out


def parse_views(value: str | None) -> int | list[str] | None:
    """``--views``: None/"all" = every test view; "N" = N evenly spaced per scene; else names.

    Names are frame stems (``0011``) or ``scene/frame``, comma-separated; a count has no leading zero,
    so ``0011`` is a name (write ``1000,`` for a name that looks like a count).
    """
    if value is None or value.strip().lower() in ("", "all"):
        return None
    v = value.strip()
    if v.isdigit() and not v.startswith("0"):
        return int(v)
    names = [n.strip() for n in v.split(",") if n.strip()]
    if not names:
        raise ValueError(f"--views {value!r}: give 'all', a count or frame names such as 0011,0019")
    return names


def pick_views(scene_id: str, names: Sequence[str], views: int | list[str] | None) -> list[str]:
    """The test views of one scene that ``views`` (see :func:`parse_views`) selects, in order."""
    if views is None:
        return list(names)
    if isinstance(views, int):
        if views >= len(names):
            return list(names)
        return [names[i] for i in ((np.arange(views) + 0.5) * len(names) / views).astype(int)]  # centred spacing
    wanted = {v.split("/", 1)[1] if "/" in v else v for v in views if "/" not in v or v.split("/", 1)[0] == scene_id}
    return [n for n in names if n in wanted]


def check_views(data_root: Path, split: str, views: int | list[str] | None) -> dict[str, list[str]]:
    """The views to draw per scene of the split; raises ``ValueError`` naming any name that matches none.

    Cheap (reads each scene's transforms.json), so the CLI calls it before the evaluation starts.
    """
    picks: dict[str, list[str]] = {}
    seen: set[str] = set()
    for sid in spec.scenes_in_split(data_root, split):
        info = spec.load_scene_info(Path(data_root) / spec.SCENES_DIR / sid)
        names = [f.name for f in info.frames if f.split == "test"]
        seen.update(names)
        seen.update(f"{sid}/{n}" for n in names)
        picks[sid] = pick_views(sid, names, views)
    if isinstance(views, list):
        unknown = [v for v in views if v not in seen]
        if unknown:
            raise ValueError(f"--views: no test view named {', '.join(unknown)} in the {split} scenes of {data_root}")
    return picks


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, out_file: Path, dpi: int = 100) -> None:
    """Save with a tight bounding box (no clipped label, no empty margin), atomically, then free the figure."""
    from nerfseg.io import atomic_path

    try:
        with atomic_path(out_file) as tmp:
            fig.savefig(tmp, dpi=dpi, format="png", bbox_inches="tight", pad_inches=0.08)
    finally:
        _pyplot().close(fig)


def draw_frame_overlay(overlay: FrameOverlay, rgb: np.ndarray, title: str, out_file: Path, dpi: int = 100) -> None:
    """Write one view's four panels and its legend to ``out_file`` (atomically)."""
    _save(overlay_figure(overlay, rgb, title), out_file, dpi)


def overlay_figure(overlay: FrameOverlay, rgb: np.ndarray, title: str) -> Any:
    """The matplotlib figure of one view: RGB (titled ``title``), GT, prediction, TP/FP/FN, and a legend."""
    from matplotlib.patches import Patch

    plt = _pyplot()
    h, w = overlay.gt.shape[:2]
    panel_w = 3.4
    panel_h = panel_w * h / w
    entries = legend_entries(overlay.classes)
    fig = plt.figure(figsize=(4 * panel_w + 0.4, panel_h + 1.0), layout="constrained")
    axes = fig.subplots(1, 4)
    gt_img = overlay.gt.copy()
    gt_img[overlay.gt_borders] = BORDER_COLOUR
    pred_img = overlay.pred.copy()
    pred_img[overlay.pred_borders] = BORDER_COLOUR
    bg = f"; background {overlay.background}" if overlay.background != "-" else ""
    panels = (
        (rgb, title),
        (gt_img, "GT: hue = class, shade = instance"),
        (pred_img, "prediction, in its matched GT segment's colour\n(PQ match: same class, IoU > 0.5)"),
        (overlay.outcome, f"things: TP {overlay.tp}, FP {overlay.fp}, FN {overlay.fn}{bg}\n(numbers: IoU of each match)"),
    )
    for ax, (img, name) in zip(axes, panels):
        ax.imshow(img, interpolation="nearest")
        ax.set_title(name, fontsize=8.5)
        ax.set_xticks([])
        ax.set_yticks([])
    for x, y, text in overlay.labels:
        axes[3].text(x, y, text, fontsize=7, ha="center", va="center", color="white", clip_on=True,
                     bbox={"boxstyle": "round,pad=0.15", "fc": "black", "alpha": 0.55, "lw": 0})
    handles = [Patch(facecolor=(1, 1, 1) if hatch else c, edgecolor=c if hatch else ("0.3" if label else "none"), hatch=hatch, label=label, lw=0.5)
               for label, c, hatch in entries]
    fig.legend(handles=handles, loc="outside lower center", ncol=(len(handles) + 1) // 2, fontsize=8, frameon=False)
    return fig


def plot_overlays(
    data_root: Path, submission_root: Path, out_dir: Path, split: str = "test", views: int | list[str] | None = None
) -> list[Path]:
    """One ``overlay_<scene>_<frame>.png`` per selected test view of the split's scenes (all by default).

    Raises ``ValueError`` when names in ``views`` match no test view of any scene (:func:`check_views`).
    """
    from nerfseg.evaluation.gt import load_gt_scene
    from nerfseg.evaluation.submission import open_submission
    from nerfseg.io import read_png

    picks = check_views(data_root, split, views)
    written: list[Path] = []
    with open_submission(submission_root, validate=False) as sub:
        for sid, names in picks.items():
            gt = load_gt_scene(data_root, sid, "test")
            for name in names:
                rgb = read_png(gt.root / spec.IMAGES_DIR / f"{name}.png", expect="rgb")
                gt_ids, gt_segments = gt.frame(name)
                pred_ids, pred_segments = sub.frame(sid, name)
                overlay = frame_overlay(gt_ids, gt_segments, pred_ids, pred_segments, rgb, source=f"{sid}/{name}")
                out = Path(out_dir) / f"overlay_{sid}_{name}.png"
                draw_frame_overlay(overlay, rgb, f"RGB: {sid}\ntest view {name}", out)
                written.append(out)
    return written


def plot_per_class(report: Mapping[str, Any], out_file: Path) -> None:
    """Grouped bars of per-class IoU and PQ (x100), each bar labelled with its value.

    A metric that is not defined for a class (``None``: no GT and no prediction of it) is drawn as a grey
    hatched placeholder labelled "n/a", so it cannot be mistaken for a score of 0, which is labelled "0".
    Classes with no GT segment in the evaluated views are marked "(no GT)" under their name: their score,
    if any, comes from false positives only.
    """
    _save(per_class_figure(report), out_file)


def per_class_figure(report: Mapping[str, Any]) -> Any:
    """The matplotlib figure of :func:`plot_per_class`."""
    from matplotlib.patches import Patch

    plt = _pyplot()
    per_class = report.get("per_class", {})
    names = list(spec.CLASS_NAMES)
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(10, 4.4), layout="constrained")
    for offset, key, colour in ((-0.2, "iou", "tab:blue"), (0.2, "pq", "tab:orange")):
        for i, n in enumerate(names):
            value = per_class.get(n, {}).get(key)
            if value is None or (isinstance(value, float) and math.isnan(value)):
                ax.bar(x[i] + offset, 100, 0.4, color="0.94", edgecolor="0.7", hatch="//", lw=0.5)
                ax.text(x[i] + offset, 50, "n/a", ha="center", va="center", fontsize=7, color="0.3",
                        bbox={"boxstyle": "round,pad=0.2", "fc": "white", "lw": 0})
            else:
                v = 100 * float(value)
                ax.bar(x[i] + offset, v, 0.4, color=colour)
                ax.text(x[i] + offset, v + 1, "0" if v == 0 else f"{v:.0f}", ha="center", va="bottom", fontsize=7)
    labels = []
    for n in names:
        c = per_class.get(n, {})
        no_gt = c.get("tp") is not None and (c.get("tp") or 0) + (c.get("fn") or 0) == 0
        labels.append(f"{n}\n(no GT)" if no_gt else n)
    ax.set_xticks(x, labels, rotation=30, ha="right", fontsize=8)
    for tick, label in zip(ax.get_xticklabels(), labels):
        if label.endswith("(no GT)"):
            tick.set_color("0.45")
    ax.set_ylim(0, 108)
    ax.set_ylabel("%")
    ax.set_title(f"{report.get('method', '?')}: per-class IoU and PQ ({report.get('protocol')})", fontsize=10)
    handles = [
        Patch(color="tab:blue", label="IoU"),
        Patch(color="tab:orange", label="PQ"),
        Patch(facecolor="0.94", edgecolor="0.7", hatch="//", label="n/a: class in neither GT nor prediction (not averaged)"),
        Patch(facecolor="white", edgecolor="white", label="(no GT): no GT segment of the class in the evaluated views"),
    ]
    fig.legend(handles=handles, fontsize=8, loc="outside lower center", ncol=2, frameon=False)
    return fig
