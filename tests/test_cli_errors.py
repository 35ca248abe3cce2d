"""Front-door manners: -h on every command, and one-line errors that name the fix before any work starts."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from nerfseg.cli import COMMANDS, cli
from tests.evaluation.fixtures import make_tiny_benchmark


def _all_command_paths() -> list[list[str]]:
    """Every command and sub-command as an argv prefix (``["leaderboard", "show"]``)."""
    paths: list[list[str]] = []
    ctx = click.Context(cli)
    for name in sorted(COMMANDS):
        command = cli.get_command(ctx, name)
        paths.append([name])
        if isinstance(command, click.Group):
            paths += [[name, sub] for sub in command.list_commands(ctx)]
    return paths


@pytest.mark.parametrize("argv", [[], *_all_command_paths()], ids=lambda a: " ".join(a) or "nerfseg")
def test_dash_h_works_everywhere(argv: list[str]) -> None:
    result = CliRunner().invoke(cli, [*argv, "-h"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Usage: ") and "-h, --help" in result.output


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_benchmark(tmp_path_factory.mktemp("cli_bench"), num_scenes=1)


@pytest.mark.parametrize("command", [["train", "--method", "prior2d"], ["eval", "--method", "gt"]])
def test_a_scene_folder_as_data_is_named(bench: Path, tmp_path: Path, command: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from nerfseg.cli import main

    monkeypatch.chdir(tmp_path)
    scene = bench / "scenes" / "tiny_000"
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--data", str(scene)])
    assert exit_info.value.code == 2
    assert not (tmp_path / "runs").exists()  # nothing was started


def test_scene_folder_message(bench: Path) -> None:
    from nerfseg import spec
    from nerfseg.errors import InputError

    with pytest.raises(InputError, match=rf"this is a scene folder; pass the benchmark root \({bench}\)"):
        spec.load_benchmark(bench / "scenes" / "tiny_000")
    with pytest.raises(InputError, match="benchmark.json: file not found"):
        spec.load_benchmark(bench / "scenes")


def test_leaderboard_protocol_is_a_choice(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["leaderboard", "show", "--db", str(tmp_path / "board.db"), "--protocol", "nope"])
    assert result.exit_code == 2 and "'nope' is not one of" in result.output and "nerfseg-v1" in result.output


def test_add_reported_rejects_fractions_and_keeps_zero(tmp_path: Path) -> None:
    db = str(tmp_path / "board.db")
    base = ["leaderboard", "add-reported", "--db", db, "--method", "m", "--source", "paper"]
    result = CliRunner().invoke(cli, [*base, "--miou", "0.316"])
    assert result.exit_code == 2 and "looks like a fraction" in result.output and "(31.6)" in result.output
    ok = CliRunner().invoke(cli, [*base, "--miou", "31.6", "--pq-scene", "0"])
    assert ok.exit_code == 0, ok.output
