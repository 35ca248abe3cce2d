"""nerfseg.runs.WorkFolder: a method's caches belong to one config; stages skip when cached, are timed and logged."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from nerfseg.errors import InputError
from nerfseg.runs import FIT_SUMMARY, METHOD_CONFIG, TEST_RENDERS, WorkFolder, downsample_labels, resolve_device


@dataclass
class Cfg:
    steps: int = 3
    sizes: tuple[int, ...] = (1, 2)


def test_open_keeps_caches_of_the_same_config_and_wipes_another(tmp_path: Path) -> None:
    work = WorkFolder(tmp_path, Cfg(), owned=("cache.npz",))
    assert work.open(resume=True) is False  # nothing stored yet: fresh
    assert json.loads((tmp_path / METHOD_CONFIG).read_text()) == {"steps": 3, "sizes": [1, 2]}
    work.write_npz("cache.npz", {"a": np.arange(3)})
    (tmp_path / "unrelated.txt").write_text("x")
    assert WorkFolder(tmp_path, Cfg(), owned=("cache.npz",)).open(resume=True) is True
    assert (tmp_path / "cache.npz").exists()
    assert WorkFolder(tmp_path, Cfg(steps=4), owned=("cache.npz",)).open(resume=True) is False
    assert not (tmp_path / "cache.npz").exists() and (tmp_path / "unrelated.txt").exists()  # only owned files go
    work.write_npz("cache.npz", {"a": np.arange(3)})
    assert WorkFolder(tmp_path, Cfg(steps=4), owned=("cache.npz",)).open(resume=False) is False  # --no-resume
    assert not (tmp_path / "cache.npz").exists()


def test_stage_runs_or_loads_and_records_seconds(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    work = WorkFolder(tmp_path, Cfg(), label="scene_0")
    work.open(resume=True)
    calls: list[str] = []

    def compute() -> dict[str, np.ndarray]:
        calls.append("run")
        work.write_npz("x.npz", {"v": np.array([1, 2])})
        return work.read_npz("x.npz")

    def load() -> dict[str, np.ndarray]:
        calls.append("load")
        return work.read_npz("x.npz")

    with caplog.at_level(logging.INFO, logger="nerfseg.runs"):
        first = work.stage("x", compute, outputs=("x.npz",), load=load)
        again = work.stage("x", compute, outputs=("x.npz",), load=load)
        work.stage("always", lambda: calls.append("always"))  # no outputs: never skipped
    assert calls == ["run", "load", "always"] and np.array_equal(first["v"], again["v"])
    assert list(work.seconds) == ["x", "always"] and all(v >= 0 for v in work.seconds.values())
    text = caplog.text
    assert "scene_0: x done" in text and "scene_0: x loaded from cache" in text


def test_cached_summary_needs_config_summary_and_renders(tmp_path: Path) -> None:
    work = WorkFolder(tmp_path, Cfg())
    work.open(resume=True)
    work.write_summary({"steps": 3})
    assert work.cached_summary() is None  # no test renders yet: the fit did not finish
    work.write_npz(TEST_RENDERS, {"0000": np.zeros((2, 2), np.uint8)})
    assert work.cached_summary() == {"steps": 3}
    assert WorkFolder(tmp_path, Cfg(steps=9)).cached_summary() is None  # another config
    (tmp_path / FIT_SUMMARY).write_text("{torn")
    assert work.cached_summary() is None


def test_unreadable_cache_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(InputError, match="bad.npz"):
        WorkFolder(tmp_path, Cfg()).read_npz("bad.npz")


def test_downsample_labels_takes_block_centres() -> None:
    labels = np.arange(36).reshape(6, 6)
    assert downsample_labels(labels, 1) is labels
    assert downsample_labels(labels, 2).tolist() == [[7, 9, 11], [19, 21, 23], [31, 33, 35]]


def test_resolve_device() -> None:
    assert resolve_device("auto") in ("cpu", "cuda") and resolve_device("cpu") == "cpu"
