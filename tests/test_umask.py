"""Files and folders nerfseg writes get the mode the user's umask says (not mkstemp's 0600 / mkdtemp's 0700)."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from nerfseg.dataset_tools.priors import write_priors
from nerfseg.evaluation.reference import write_gt_submission
from nerfseg import io
from tests.evaluation.fixtures import make_tiny_benchmark


@pytest.fixture
def umask() -> Iterator[Callable[[int], None]]:
    """Set a umask for the test and restore the previous one afterwards."""
    previous = os.umask(0o022)
    os.umask(previous)

    def set_mask(mask: int) -> None:
        os.umask(mask)

    try:
        yield set_mask
    finally:
        os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _modes(root: Path) -> dict[str, int]:
    return {p.relative_to(root).as_posix(): _mode(p) for p in [root, *root.rglob("*")]}


@pytest.mark.parametrize("mask, file_mode, dir_mode", [(0o022, 0o644, 0o755), (0o027, 0o640, 0o750), (0o077, 0o600, 0o700)])
def test_atomic_writers_follow_the_umask(umask, tmp_path: Path, mask: int, file_mode: int, dir_mode: int) -> None:
    umask(mask)
    io.write_json_atomic(tmp_path / "a" / "report.json", {"x": 1})
    io.write_png(tmp_path / "a" / "img.png", np.zeros((4, 4), np.uint8))
    io.write_bytes_atomic(tmp_path / "board.html", b"<html></html>")
    with io.atomic_path(tmp_path / "raw.bin") as tmp:
        tmp.write_bytes(b"\0")
    assert not list(tmp_path.glob("**/.*.tmp")), "no temporary file is left behind"
    folder = io.create_temp_dir(tmp_path, prefix=".x.")
    for name in ("a/report.json", "a/img.png", "board.html", "raw.bin"):
        assert _mode(tmp_path / name) == file_mode, name
    assert _mode(folder) == dir_mode


def test_a_benchmark_and_a_submission_are_readable_by_others_under_umask_022(umask, tmp_path: Path) -> None:
    umask(0o022)
    bench = make_tiny_benchmark(tmp_path / "bench", num_scenes=1)
    write_priors(bench / "scenes" / "tiny_000", "sim-m2f")  # a prior folder is built under a temp name too
    sub = write_gt_submission(bench, tmp_path / "sub")  # built in a temp folder and renamed into place
    for root in (bench, sub):
        modes = _modes(root)
        wrong = {k: oct(m) for k, m in modes.items() if m != (0o755 if (root / k).is_dir() else 0o644)}
        assert not wrong, f"unexpected modes under {root.name}: {wrong}"
    assert (bench / "scenes" / "tiny_000" / "priors" / "sim-m2f" / "panoptic.json").is_file()
    assert any(p.suffix == ".h5" for p in bench.rglob("*"))


def test_temp_names_never_clobber(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A name collision is retried, never overwritten (mkstemp's O_EXCL guarantee, kept)."""
    taken = tmp_path / ".x.aaaaaaaaaaaa.tmp"
    taken.write_text("keep me")
    names = iter(["aaaaaaaaaaaa", "bbbbbbbbbbbb"])
    monkeypatch.setattr(io.secrets, "token_hex", lambda n: next(names))
    fresh = io.create_temp_file(tmp_path, prefix=".x.")
    assert fresh.name == ".x.bbbbbbbbbbbb.tmp" and taken.read_text() == "keep me"
