"""Radiance training is not silent in a log: with stderr not a terminal it logs periodic progress lines."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from nerfseg.radiance.trainer import RadianceTrainer
from tests.radiance.test_trainer import tiny_config


def test_training_writes_progress_lines_when_output_is_a_file(tiny_scene: Path, caplog: pytest.LogCaptureFixture,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    caplog.set_level(logging.INFO, logger="nerfseg")  # the CLI's default level (its handler prints to stderr)
    monkeypatch.setenv("NERFSEG_PROGRESS_SECONDS", "1e-9")  # a line per step (the default is every 30 s)
    monkeypatch.delenv("NERFSEG_PROGRESS", raising=False)
    trainer = RadianceTrainer(tiny_scene, tiny_config(steps=3, eval_every=0), progress=True)
    trainer.train()
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("radiance:")]
    assert [ln.split(",")[0] for ln in lines[:3]] == ["radiance: 1/3 steps", "radiance: 2/3 steps",
                                                      "radiance: 3/3 steps"]
    assert "ETA" in lines[0] and "loss" in lines[0] and "psnr" in lines[0]
    assert lines[-1].startswith("radiance: 3/3 steps in ")  # the closing line
