"""The CLI owns the log handler: ``nerfseg -v`` adds debug lines, ``nerfseg --quiet`` leaves warnings only."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from click.testing import CliRunner

from nerfseg.cli import cli
from tests.evaluation.fixtures import make_tiny_benchmark

#: a plain progress line per scene (the default interval is 30 s); progress on, whatever the caller's shell says
ENV = {"NERFSEG_PROGRESS_SECONDS": "1e-9", "NERFSEG_PROGRESS": None}


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_benchmark(tmp_path_factory.mktemp("log_bench"), num_scenes=1)


def _eval(bench: Path, tmp_path: Path, *flags: str) -> list[str]:
    args = [*flags, "eval", "--method", "gt", "--data", str(bench), "--out", str(tmp_path / "r.json"), "--workers", "1"]
    result = CliRunner().invoke(cli, args, env=ENV)
    assert result.exit_code == 0, result.output
    return result.output.splitlines()


def test_verbose_shows_debug_lines_and_quiet_hides_info_lines(bench: Path, tmp_path: Path) -> None:
    loud = _eval(bench, tmp_path, "-v")
    assert any(ln.startswith("debug [nerfseg.progress]: eval gt: 1 scene to do") for ln in loud), loud
    assert any(ln.startswith("eval gt: 1/1 scene, ") for ln in loud), loud  # the INFO progress line
    quiet = _eval(bench, tmp_path, "--quiet")
    assert not any(ln.startswith(("eval gt:", "debug")) for ln in quiet), quiet
    assert any(ln.startswith("| Method | mIoU |") for ln in quiet), quiet  # the command's result still prints


def test_the_handler_lasts_one_command(bench: Path, tmp_path: Path) -> None:
    root = logging.getLogger("nerfseg")
    before = (root.level, root.propagate, list(root.handlers))
    _eval(bench, tmp_path, "--quiet")
    assert (root.level, root.propagate, list(root.handlers)) == before  # the next command starts clean


def test_verbose_and_quiet_contradict() -> None:
    result = CliRunner().invoke(cli, ["-v", "-q", "benchmark-id", "--data", "."])
    assert result.exit_code == 2 and "contradict" in result.output


def test_a_warning_that_names_its_level_is_not_prefixed_twice() -> None:
    """Build warnings are also report lines that start with ``warning:``; the handler must not double it."""
    import logging

    from nerfseg.cli import _ShortFormatter

    fmt = _ShortFormatter("%(message)s")
    rec = logging.LogRecord("nerfseg.x", logging.WARNING, __file__, 1, "warning: house: item: reason", None, None)
    assert fmt.format(rec) == "warning: house: item: reason"
    rec = logging.LogRecord("nerfseg.x", logging.WARNING, __file__, 1, "plain", None, None)
    assert fmt.format(rec) == "warning: plain"
