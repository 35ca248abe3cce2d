"""Accumulator.add_state: reset/merge/state_dict/from_state derived from one declaration per state."""

from __future__ import annotations

import inspect
import pickle
from typing import Any

import numpy as np
import pytest

from nerfseg.evaluation import metrics as metrics_pkg
from nerfseg.evaluation.metrics.base import Accumulator
from nerfseg.evaluation.metrics.confusion import ConfusionMIoU


class Toy(Accumulator):
    """One state of every built-in reduction, plus a nested accumulator and a custom reduction."""

    def __init__(self, num_classes: int = 3):
        self.num_classes = int(num_classes)
        c = self.num_classes
        self.add_state("hist", lambda: np.zeros(c, dtype=np.int64), "sum")
        self.add_state("count", int, "sum")
        self.add_state("peak", float, "max")
        self.add_state("scores", list, "cat", item=lambda: np.zeros(0, dtype=np.float64))
        self.add_state("scenes", list, "cat_disjoint", item=str, what="scenes")
        self.add_state("per_scene", dict, "dict_sum", item=lambda: np.zeros(2, dtype=np.int64))
        self.add_state("frames", dict, "union", what="frames")
        self.add_state("conf", lambda: ConfusionMIoU(c), "merge")
        self.add_state("names", set, lambda mine, theirs: mine | theirs, dump=sorted, load=set)

    def _config(self) -> dict[str, Any]:
        return {"num_classes": self.num_classes}

    def update(self, scene: str, frame: str, labels: np.ndarray, score: float) -> None:
        self.hist += np.bincount(labels, minlength=self.num_classes)
        self.count += 1
        self.peak = max(self.peak, score)
        self.scores.append(np.array([score]))
        if scene not in self.scenes:
            self.scenes.append(scene)
        self.per_scene[scene] = self.per_scene.get(scene, np.zeros(2, dtype=np.int64)) + [1, labels.size]
        self.frames[f"{scene}/{frame}"] = {"n": int(labels.size)}
        self.conf.update(scene, labels, labels)
        self.names.add(frame)

    def compute(self) -> dict[str, Any]:
        return {
            "hist": self.hist.tolist(),
            "count": self.count,
            "peak": self.peak,
            "scores": sorted(float(s) for a in self.scores for s in a),
            "scenes": sorted(self.scenes),
            "per_scene": {k: v.tolist() for k, v in sorted(self.per_scene.items())},
            "frames": dict(sorted(self.frames.items())),
            "miou": self.conf.compute()["miou"],
            "names": sorted(self.names),
        }


def _feed(acc: Toy, items: list[tuple[str, str, np.ndarray, float]]) -> Toy:
    for item in items:
        acc.update(*item)
    return acc


def _items() -> list[tuple[str, str, np.ndarray, float]]:
    rng = np.random.default_rng(0)
    return [(f"s{i // 3}", f"f{i}", rng.integers(0, 3, size=20), float(rng.random())) for i in range(6)]


def test_toy_merge_of_halves_equals_one_pass_and_state_round_trips() -> None:
    items = _items()
    full = _feed(Toy(), items)
    a = _feed(Toy(), items[:3])
    b = _feed(Toy(), items[3:])
    b_state = b.state_dict()
    assert set(b_state) == {"config", "hist", "count", "peak", "scores", "scenes", "per_scene", "frames", "conf", "names"}
    b2 = Toy.from_state(pickle.loads(pickle.dumps(b_state)))
    assert b2.compute() == b.compute()
    assert b2.hist.dtype == np.int64 and isinstance(b2.count, int) and isinstance(b2.names, set)
    assert a.merge(b2).compute() == full.compute()
    # the merged accumulator shares no array with the source: updating it leaves b2 untouched
    before = b2.compute()
    a.update("s1", "f99", np.zeros(20, dtype=np.int64), 0.0)
    assert b2.compute() == before


def test_toy_reset_restores_every_default() -> None:
    acc = _feed(Toy(), _items())
    acc.reset()
    assert acc.compute() == Toy().compute()
    assert acc.hist is not Toy().hist


def test_disjoint_states_refuse_before_changing_anything() -> None:
    items = _items()
    a = _feed(Toy(), items[:3])
    b = _feed(Toy(), items[:1])  # the same scene and frame again
    before = a.compute()
    with pytest.raises(ValueError, match="in both Toy accumulators"):
        a.merge(b)
    assert a.compute() == before
    with pytest.raises(ValueError, match="different settings"):
        a.merge(Toy(4))
    with pytest.raises(TypeError):
        a.merge(ConfusionMIoU(3))  # type: ignore[arg-type]


def test_bad_declarations_are_named() -> None:
    class Bad(Accumulator):
        def __init__(self, reduce: str, default: Any = list) -> None:
            self.add_state("x", default, reduce)

    with pytest.raises(ValueError, match="unknown reduce 'mean'"):
        Bad("mean")
    with pytest.raises(TypeError, match="needs item="):
        Bad("dict_sum", dict)
    with pytest.raises(TypeError, match="needs a list default"):
        Bad("cat", dict)

    class Twice(Accumulator):
        def __init__(self) -> None:
            self.add_state("x", int)
            self.add_state("x", int)

    with pytest.raises(ValueError, match="declared twice"):
        Twice()

    with pytest.raises(ValueError, match="state lacks"):
        Toy.from_state({"config": {"num_classes": 3}})


def test_every_metric_derives_its_state_plumbing() -> None:
    """No metric writes reset/merge/state_dict/_load by hand: all of its state goes through add_state."""
    classes = [
        obj
        for name in metrics_pkg.__all__
        if inspect.isclass(obj := getattr(metrics_pkg, name)) and issubclass(obj, Accumulator) and obj is not Accumulator
    ]
    assert len(classes) >= 7
    for cls in classes:
        for method in ("reset", "merge", "state_dict", "_load"):
            assert getattr(cls, method) is getattr(Accumulator, method), f"{cls.__name__}.{method} is hand-written"


def _docs_example() -> dict[str, Any]:
    """The "Adding a metric" example of docs/metrics.md, executed (so the page cannot drift from the code)."""
    import re
    from pathlib import Path

    page = (Path(__file__).resolve().parents[2] / "docs" / "metrics.md").read_text(encoding="utf-8")
    section = page.split("## Adding a metric", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"^```python\n(.*?)^```", section, re.M | re.S)
    namespace: dict[str, Any] = {"__name__": "docs_example"}
    exec(compile(block, "docs/metrics.md (Adding a metric)", "exec"), namespace)
    return namespace


def test_adding_a_metric_is_one_list_item() -> None:
    from nerfseg.evaluation.protocols import NerfsegV1, get_protocol
    from tests.evaluation.test_protocols import make_scenes

    ns = _docs_example()
    cls = ns["NerfsegV1PlusAccuracy"]
    assert cls.METRICS[:-1] == NerfsegV1.METRICS
    protocol = get_protocol("nerfseg-v1")
    frames = make_scenes(seed=5, n_scenes=2, n_frames=2)

    def run(items: list) -> Any:
        acc = cls(protocol)
        for sid, name, gt, pred in items:
            acc.update_frame(sid, name, gt, pred)
        return acc

    full, base = run(frames), NerfsegV1(protocol)
    for sid, name, gt, pred in frames:
        base.update_frame(sid, name, gt, pred)
    report, plain = full.compute(), base.compute()
    acc_value = report["details"].pop("pixel_acc")
    assert report == plain  # the new item adds its number and changes nothing else
    cm = full.confusion.total()  # the same counts, pooled by the existing mIoU metric
    assert acc_value == pytest.approx(np.trace(cm[:, : cm.shape[0]]) / cm.sum())
    assert 0.5 < acc_value < 1.0

    a, b = run(frames[:2]), run(frames[2:])
    state = pickle.loads(pickle.dumps(b.state_dict()))
    assert state["metrics"]["pixel_acc"]["total"] == b.pixel_acc.total > 0
    b2 = cls(protocol)
    b2._load(state)
    assert a.merge(b2).compute() == full.compute()
