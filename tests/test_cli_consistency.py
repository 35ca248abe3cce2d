"""One CLI vocabulary (docs/cli.md): ``--out`` for what a command writes (old names kept as aliases), ``--device``
with the same choices and default ``auto`` everywhere, presets as choices, and the command ``train`` prints
to evaluate its run actually runs."""

from __future__ import annotations

import shlex
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from nerfseg.cli import COMMANDS, DEVICES, cli
from tests.evaluation.fixtures import make_tiny_benchmark

OLD_OUTPUT_NAMES = {"--output", "-o", "--json"}


def _commands() -> list[tuple[str, click.Command]]:
    """Every command and sub-command (``leaderboard show`` ...) that imports here."""
    ctx = click.Context(cli)
    out: list[tuple[str, click.Command]] = []
    for name in sorted(COMMANDS):
        cmd = cli.get_command(ctx, name)
        if cmd is None or (cmd.help or "").startswith("(unavailable"):
            continue
        if isinstance(cmd, click.Group):
            out += [(f"{name} {sub}", cmd.commands[sub]) for sub in sorted(cmd.commands)]
        else:
            out.append((name, cmd))
    return out


COMMAND_LIST = _commands()


def test_every_command_is_seen() -> None:
    names = {n for n, _ in COMMAND_LIST}
    assert {"eval", "pq-compute", "verify-front3d", "leaderboard show", "train-rcnn", "grids"} <= names


@pytest.mark.parametrize("name,command", COMMAND_LIST, ids=[n for n, _ in COMMAND_LIST])
def test_output_devices_and_presets_speak_one_language(name: str, command: click.Command) -> None:
    for param in command.params:
        if not isinstance(param, click.Option):
            continue
        if set(param.opts) & OLD_OUTPUT_NAMES:
            assert "--out" in param.opts, f"nerfseg {name}: {param.opts} writes output but has no --out"
        if "--device" in param.opts:
            assert isinstance(param.type, click.Choice) and tuple(param.type.choices) == DEVICES, name
            assert param.default == "auto", f"nerfseg {name}: --device defaults to {param.default!r}, not auto"
        if "--preset" in param.opts:
            assert isinstance(param.type, click.Choice), f"nerfseg {name}: --preset is not a choice"


def test_old_output_names_still_work(tmp_path: Path) -> None:
    bench = make_tiny_benchmark(tmp_path / "bench")
    runner = CliRunner()
    for flag in ("--out", "--json"):
        report = tmp_path / f"report{flag}.json"
        res = runner.invoke(cli, ["eval", "--method", "gt", "--data", str(bench), "--no-per-class", flag, str(report)])
        assert res.exit_code == 0, res.output
        assert report.is_file()


def test_a_bad_device_is_refused_before_any_work(tmp_path: Path) -> None:
    res = CliRunner().invoke(cli, ["train-rcnn", "--data", str(tmp_path), "--device", "gpu"])
    assert res.exit_code == 2 and "'gpu' is not one of 'auto', 'cpu', 'cuda'" in res.output


@pytest.mark.parametrize("custom_out", [False, True])
def test_the_eval_hint_after_train_on_val_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               custom_out: bool) -> None:
    bench = make_tiny_benchmark(tmp_path / "bench", num_scenes=2, val_scenes=1)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)  # runs/ (the default run folder) lands here
    args = ["train", "--method", "prior2d", "--data", str(bench), "--split", "val", "--prior", "gt"]
    if custom_out:
        args += ["--out", str(tmp_path / "elsewhere")]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    hint = res.output.split("evaluate with: ", 1)[1].strip()
    argv = shlex.split(hint)
    assert argv[:2] == ["nerfseg", "eval"] and argv[argv.index("--split") + 1] == "val"
    assert ("--predictions" in argv) == custom_out
    evaluated = CliRunner().invoke(cli, argv[1:] + ["--no-per-class"])
    assert evaluated.exit_code == 0, evaluated.output
    assert "val split" in evaluated.output and "1 scenes" in evaluated.output
