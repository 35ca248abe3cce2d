"""What every protocol shares: the :class:`Protocol` record, the list-composed :class:`ProtocolAccumulator`,
and :class:`ProtocolMetric`, one item of a protocol's metric list (detectron2's ``DatasetEvaluators``).

A protocol is ``METRICS``, a tuple of :class:`ProtocolMetric` classes; each owns an accumulator of
``metrics/`` (whose state is declared once with ``add_state``), says how a frame feeds it and what it writes
into the report. The protocol derives reset, merge, ``state_dict`` and loading from that list, so adding a
metric to a protocol is one more list item. The protocols themselves live in ``protocol_nerfseg_v1.py``,
``protocol_instance_nerf.py`` and ``protocol_panoptic_lifting.py``; ``protocols.py`` is their registry.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from nerfseg import spec
from nerfseg.errors import InputError
from nerfseg.evaluation.metrics.base import Accumulator
from nerfseg.evaluation.metrics.confusion import confusion_from_stats
from nerfseg.evaluation.metrics.frame import FrameStats, frame_stats
from nerfseg.evaluation.types import GT3D, FrameGT, FramePred, Pred3D

PROTOCOL_VERSION = "1"

#: category id -> isthing, for the benchmark's 11 classes
CATEGORIES: dict[int, bool] = {c: c in spec.THING_CLASSES for c in range(spec.NUM_CLASSES)}

SUMMARY_KEYS = (
    "miou", "miou_dataset",
    "pq", "sq", "rq", "pq_things", "sq_things", "rq_things", "pq_stuff", "sq_stuff", "rq_stuff",
    "pq_scene", "pq_scene_things",
    "binary_acc", "binary_miou",
    "voxel_miou", "ap25", "ap50",
    "mask_ap",
)  # fmt: skip
PER_CLASS_KEYS = ("iou", "pq", "sq", "rq", "tp", "fp", "fn", "iou_sum")


@dataclass(frozen=True)
class Protocol:
    """A named, versioned recipe; ``new_accumulator()`` starts an evaluation under it."""

    name: str
    version: str
    description: str
    accumulator: Callable[[Protocol], ProtocolAccumulator]

    def new_accumulator(self) -> ProtocolAccumulator:
        return self.accumulator(self)


def new_scene_row(num_frames: int = 0) -> dict[str, Any]:
    """The per-scene row every report starts from (a metric adds its own keys after these)."""
    return {"miou": None, "pq_things": None, "pq_scene": None, "pq_scene_things": None, "binary_acc": None, "num_frames": num_frames}


@dataclass
class FrameInput:
    """One test view as every metric of a protocol sees it: the pixel pass (``stats``) runs once per frame
    and the confusion matrix is derived from it on first use, so metrics share work instead of repeating it.
    ``void_as`` names the class that void counts as in ``confusion`` (None: void stays void)."""

    sid: str
    frame: str
    gt: FrameGT
    pred: FramePred
    stats: FrameStats
    void_as: int | None = None

    @property
    def source(self) -> str:
        return f"{self.sid}/{self.frame}"

    @cached_property
    def confusion(self) -> np.ndarray:
        return confusion_from_stats(self.stats, spec.NUM_CLASSES, gt_void_as=self.void_as, pred_void_as=self.void_as)


@dataclass
class ReportParts:
    """The report sections a metric fills in :meth:`ProtocolMetric.report` (see ``ProtocolAccumulator.compute``)."""

    summary: dict[str, Any]
    per_class: dict[str, dict[str, Any]]
    per_scene: dict[str, dict[str, Any]]
    details: dict[str, Any]

    def scene(self, sid: str) -> dict[str, Any]:
        """The row of scene ``sid`` (created when a metric knows a scene no frame came from, e.g. 3D only)."""
        return self.per_scene.setdefault(sid, new_scene_row())


class ProtocolMetric:
    """One metric of a list-composed protocol: its accumulator, how a frame feeds it, how it reports.

    ``prepare`` does everything that can reject a frame and records nothing; only when every metric has
    prepared does any ``record`` run, so a bad frame leaves no partial counts. ``name`` is the key of its
    state in ``state_dict()["metrics"]`` and the protocol attribute that holds its accumulator.
    """

    name: str = ""

    def __init__(self) -> None:
        self.acc = self.new()

    def new(self) -> Accumulator:  # pragma: no cover - abstract
        raise NotImplementedError

    def prepare(self, x: FrameInput) -> Any:
        return None

    def record(self, x: FrameInput, prepared: Any) -> None:
        """Add the frame; frame-level metrics override this (a 3D-only metric keeps the no-op)."""

    def update_3d(self, sid: str, gt3d: GT3D, pred3d: Pred3D) -> None:
        """Add one scene's 3D volumes; only 3D metrics override this."""

    def report(self, r: ReportParts) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def section(self, report: dict[str, Any]) -> None:
        """Add to the report after every metric's ``report`` ran (a top-level section, a closing note)."""


class ProtocolAccumulator(Accumulator):
    """Frames (and 3D scenes) in, one report out; the metrics are the list ``METRICS``.

    Each metric's accumulator is also this object's attribute of the metric's name (``acc.mask_ap``).
    Subclasses set ``METRICS`` and, when a protocol reads frames differently, override :meth:`frame_input`.
    """

    METRICS: tuple[type[ProtocolMetric], ...] = ()
    #: whether the protocol scores instances3d.h5; a submission's 3D file is skipped under protocols without
    #: 3D metrics (they report 2D numbers only) instead of failing the whole evaluation
    has_3d_metrics: bool = False

    def __init__(self, protocol: Protocol):
        self.protocol = protocol
        self.reset()

    def _config(self) -> dict[str, Any]:
        return {"protocol": self.protocol.name, "version": self.protocol.version}

    def reset(self) -> None:
        self.frames: dict[str, set[str]] = {}
        self.parts = [m() for m in self.METRICS]
        for part in self.parts:
            setattr(self, part.name, part.acc)

    # -- input ------------------------------------------------------------------------------------
    def update_frame(self, scene_id: str, frame: str, gt: FrameGT, pred: FramePred) -> None:
        """Add one test view. A frame given twice is an error (it would be counted twice)."""
        sid, name = str(scene_id), str(frame)
        seen = self.frames.setdefault(sid, set())
        if name in seen:
            raise InputError(None, f"frame {sid}/{name} was evaluated twice")
        x = self.frame_input(sid, name, gt, pred)
        prepared = [part.prepare(x) for part in self.parts]  # everything that can reject the frame
        for part, p in zip(self.parts, prepared):
            part.record(x, p)
        seen.add(name)

    def frame_input(self, sid: str, frame: str, gt: FrameGT, pred: FramePred) -> FrameInput:
        """The frame as the metrics see it: one strict pixel pass at full resolution."""
        stats = frame_stats(gt.panoptic, gt.segments, pred.panoptic, pred.segments, source=f"{sid}/{frame}", strict=True)
        return FrameInput(sid, frame, gt, pred, stats)

    def update_scene_3d(self, scene_id: str, gt3d: GT3D, pred3d: Pred3D) -> None:
        """Add one scene's 3D GT and prediction (instances3d.h5); protocols without 3D metrics refuse."""
        if not self.has_3d_metrics:
            raise InputError(None, f"protocol {self.protocol.name} has no 3D metrics")
        for part in self.parts:
            part.update_3d(str(scene_id), gt3d, pred3d)

    # -- state: derived from the metric list, each metric's own state from its add_state declarations
    def _metrics(self) -> dict[str, Accumulator]:
        return {part.name: part.acc for part in self.parts}

    def merge(self, other: ProtocolAccumulator) -> ProtocolAccumulator:
        self._check_same(other)
        for sid, names in other.frames.items():
            dup = self.frames.get(sid, set()) & names
            if dup:
                raise ValueError(f"frames {sorted(dup)[:5]} of scene {sid} are in both accumulators")
        for sid, names in other.frames.items():
            self.frames.setdefault(sid, set()).update(names)
        mine, theirs = self._metrics(), other._metrics()
        for key, acc in mine.items():
            acc.merge(theirs[key])
        return self

    def state_dict(self) -> dict[str, Any]:
        return {
            "config": self._config(),
            "frames": {sid: sorted(names) for sid, names in self.frames.items()},
            "metrics": {k: v.state_dict() for k, v in self._metrics().items()},
        }

    def _load(self, state: Mapping[str, Any]) -> None:
        self.frames = {str(sid): set(names) for sid, names in state["frames"].items()}
        for key, acc in self._metrics().items():
            acc._load(state["metrics"][key])

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> ProtocolAccumulator:
        return accumulator_from_state(state)

    # -- output -----------------------------------------------------------------------------------
    def compute(self) -> dict[str, Any]:
        """The report: ``protocol``, ``protocol_version``, ``spec_version``, ``summary`` (every key of
        ``SUMMARY_KEYS``, fractions or None), ``per_class`` (class name -> iou/pq/sq/rq/tp/fp/fn/iou_sum
        and extras), ``per_scene`` (scene -> miou, pq_things, pq_scene, pq_scene_things, binary_acc,
        num_frames, ...), ``counts`` (num_scenes, num_frames) and ``details`` (protocol-specific)."""
        r = ReportParts(
            summary={k: None for k in SUMMARY_KEYS},
            per_class={name: {k: None for k in PER_CLASS_KEYS} for name in spec.CLASS_NAMES},
            per_scene={sid: new_scene_row(len(names)) for sid, names in sorted(self.frames.items())},
            details={},
        )
        for part in self.parts:
            part.report(r)
        report = {
            "protocol": self.protocol.name,
            "protocol_version": self.protocol.version,
            "spec_version": spec.SPEC_VERSION,
            "summary": r.summary,
            "per_class": r.per_class,
            "per_scene": r.per_scene,
            "counts": {"num_scenes": len(self.frames), "num_frames": sum(len(v) for v in self.frames.values())},
            "details": r.details,
        }
        for part in self.parts:
            part.section(report)
        return report


# ---------------------------------------------------------------------------------------------
# registry: each protocol module registers its Protocol when imported; ``protocols.py`` imports them all

PROTOCOLS: dict[str, Protocol] = {}


def register_protocol(protocol: Protocol) -> Protocol:
    """Make ``protocol`` known to :func:`get_protocol` (a second one of the same name is a bug)."""
    if protocol.name in PROTOCOLS:
        raise ValueError(f"protocol {protocol.name!r} is registered twice")
    PROTOCOLS[protocol.name] = protocol
    return protocol


def list_protocols() -> list[str]:
    return sorted(PROTOCOLS)


def get_protocol(name: str = spec.DEFAULT_PROTOCOL) -> Protocol:
    """The protocol called ``name``; an unknown name is an error listing the known ones."""
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise InputError(None, f"unknown protocol {name!r}; known protocols: {', '.join(list_protocols())}") from None


def accumulator_from_state(state: Mapping[str, Any]) -> ProtocolAccumulator:
    """Rebuild a protocol accumulator from ``state_dict()`` (e.g. sent back by a worker process)."""
    protocol = get_protocol(state["config"]["protocol"])
    if state["config"]["version"] != protocol.version:
        raise ValueError(f"state is from {protocol.name} version {state['config']['version']}, this is version {protocol.version}")
    acc = protocol.new_accumulator()
    acc._load(state)
    return acc
