"""``nerfseg train --workers N``: scenes fitted in parallel give the run a sequential run gives.

The shared input a method creates for all scenes (Instance-NeRF's NeRF-RCNN) is made once, in the parent,
before the workers start, so two workers never race to write it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from nerfseg import spec
from nerfseg.cli import cli
from nerfseg.evaluation.api import evaluate_submission
from nerfseg.methods import FramePrediction, Method, run_method
from tests.evaluation.fixtures import make_tiny_benchmark


def quiet(*_: object) -> None:
    pass


@dataclass(frozen=True)
class _SharedConfig:
    shared_file: str = ""


class SharedInputMethod(Method):
    """Every scene needs one file that ``prepare_shared`` writes; ``fit`` records which process fitted it."""

    name = "shared-input-test"

    @classmethod
    def make_config(cls, preset: str, **overrides: object) -> _SharedConfig:
        return _SharedConfig(**overrides)  # type: ignore[arg-type]

    def prepare_shared(self, scene) -> None:  # type: ignore[no-untyped-def]
        path = Path(self.config.shared_file)
        with open(path, "a") as fh:  # appended: a second call would show as a second line
            fh.write(f"{os.getpid()}\n")

    def fit(self, scene, work_dir, resume=True):  # type: ignore[no-untyped-def]
        if not Path(self.config.shared_file).exists():
            raise AssertionError("fit ran before prepare_shared")
        return {"pid": os.getpid()}

    def predict(self, scene, work_dir):  # type: ignore[no-untyped-def]
        for fr in scene.info.frames_in("test"):
            ids, segments = scene.prior_frame(fr.name)
            yield FramePrediction(fr.name, ids, list(segments.values()))


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_benchmark(tmp_path_factory.mktemp("par") / "bench", priors=("sim-m2f",))


def _scene_pngs(sub: Path) -> dict[str, np.ndarray]:
    from nerfseg import io

    return {str(p.relative_to(sub)): io.read_panoptic_png(p) for p in sorted(sub.rglob("*.png"))}


def test_two_workers_write_what_one_writes(bench: Path, tmp_path: Path) -> None:
    one = run_method("prior2d", bench, tmp_path / "one", log=quiet)
    two = run_method("prior2d", bench, tmp_path / "two", log=quiet, workers=2)
    a, b = _scene_pngs(one), _scene_pngs(two)
    assert a.keys() == b.keys() and len(a) > 0
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert evaluate_submission(bench, one)["per_scene"] == evaluate_submission(bench, two)["per_scene"]
    log = [json.loads(line) for line in (tmp_path / "two" / "train_log.jsonl").read_text().splitlines()]
    assert sorted(e["scene"] for e in log) == spec.scenes_in_split(bench, "test")
    # resumed with workers: nothing left to do, every scene skipped, the submission unchanged
    lines: list[str] = []
    run_method("prior2d", bench, tmp_path / "two", log=lines.append, workers=2)
    assert all("skipped (resume)" in line for line in lines) and len(lines) == len(log)


def test_shared_input_is_prepared_once_in_the_parent(bench: Path, tmp_path: Path) -> None:
    shared = tmp_path / "shared.txt"
    target = f"{__name__}:SharedInputMethod"
    sub = run_method(target, bench, tmp_path / "run", log=quiet, workers=2, overrides={"shared_file": str(shared)})
    assert shared.read_text().split() == [str(os.getpid())]
    log = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert len(log) == len(spec.scenes_in_split(bench, "test")) and all(e["pid"] != os.getpid() for e in log)
    assert (sub / spec.META_JSON).exists()
    # a finished run prepares nothing again
    run_method(target, bench, tmp_path / "run", log=quiet, workers=2, overrides={"shared_file": str(shared)})
    assert len(shared.read_text().split()) == 1


def test_train_cli_takes_workers_and_rejects_zero(bench: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(cli, ["train", "--method", "prior2d", "--data", str(bench), "--out", str(tmp_path / "cli"), "--workers", "2"])
    assert ok.exit_code == 0, ok.output
    assert (tmp_path / "cli" / "submission" / spec.META_JSON).exists()
    bad = runner.invoke(cli, ["train", "--method", "prior2d", "--data", str(bench), "--out", str(tmp_path / "bad"), "--workers", "0"])
    assert bad.exit_code != 0 and "--workers" in bad.output
