"""build-dataset --demo N --test-rooms T [--val-rooms V]: exact split counts (the 8-test-room demo benchmark)."""

from __future__ import annotations

import click
import pytest

from nerfseg.dataset_tools.build import split_scenes
from nerfseg.dataset_tools.cli import demo_scene_split


@pytest.mark.parametrize(("rooms", "test", "val", "want"), [(12, 8, None, (3, 1, 8)), (16, 8, 2, (6, 2, 8)), (11, 8, 2, (1, 2, 8)), (40, 8, 4, (28, 4, 8)), (6, None, None, (4, 1, 1))])
def test_exact_test_and_val_counts(rooms: int, test: int | None, val: int | None, want: tuple[int, int, int]) -> None:
    fractions = demo_scene_split(rooms, test, val, (0.7, 0.1, 0.2))
    for seed in (0, 1, 7):
        split = split_scenes([f"3dfront_{i:04d}_00" for i in range(rooms)], fractions, seed)
        assert (len(split["train"]), len(split["val"]), len(split["test"])) == want


def test_bad_counts_are_usage_errors() -> None:
    with pytest.raises(click.UsageError, match="need --demo"):
        demo_scene_split(None, 8, None, (0.7, 0.1, 0.2))
    with pytest.raises(click.UsageError, match="do not fit"):
        demo_scene_split(8, 8, 1, (0.7, 0.1, 0.2))
    with pytest.raises(click.UsageError, match="do not fit"):
        demo_scene_split(12, 8, 0, (0.7, 0.1, 0.2))
    with pytest.raises(click.UsageError, match="one room trains"):
        demo_scene_split(10, 8, 2, (0.7, 0.1, 0.2))


def test_cli_options_are_wired(tmp_path) -> None:
    from click.testing import CliRunner

    from nerfseg.dataset_tools.cli import build_dataset

    res = CliRunner().invoke(build_dataset, ["--demo", "8", "--test-rooms", "8", "--out", str(tmp_path / "b")])
    assert res.exit_code == 2 and "do not fit in --demo 8 rooms" in res.output
    assert not (tmp_path / "b").exists()  # refused before generating anything
