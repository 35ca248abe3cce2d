"""Plug-in methods: ``--method module:Class``, the ``nerfseg.methods`` entry-point group, did-you-mean.

The example plug-in of docs/write-a-method.md (docs/examples/plugin) is what these tests install and train,
so the documented example is known to work.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
from click.testing import CliRunner

from nerfseg.evaluation.api import evaluate_submission
from nerfseg import methods
from nerfseg.cli import cli
from nerfseg.errors import InputError
from tests.evaluation.fixtures import make_tiny_benchmark

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "docs" / "examples" / "plugin"


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two test scenes of 32x24 pixels with the `gt` prior (read-only)."""
    return make_tiny_benchmark(tmp_path_factory.mktemp("plugin_bench"))


def _check_run(bench: Path, run: Path) -> dict:
    meta = json.loads((run / "submission" / "meta.json").read_text())
    assert meta["method"] == "class-regions"
    config = json.loads((run / "config.json").read_text())
    assert config["method_class"] == "nerfseg_example_method:ClassRegions"
    assert config["config"]["min_pixels"] == 2  # the --set override reached the plug-in's config
    report = evaluate_submission(bench, run / "submission")
    # the gt prior's classes are the GT's, and one id per class is the same in every view
    assert report["summary"]["miou"] == pytest.approx(1.0)
    assert report["summary"]["pq_scene"] > 0.0
    return report


def test_module_class_path_trains_through_the_cli(bench: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(EXAMPLE))
    monkeypatch.chdir(tmp_path)  # default run folder runs/<Class.name>, not runs/<module:Class>
    target = "nerfseg_example_method:ClassRegions"
    result = CliRunner().invoke(cli, ["train", "--method", target, "--data", str(bench), "--prior", "gt", "--set", "min_pixels=2"])
    assert result.exit_code == 0, result.output
    assert "nerfseg eval --method class-regions" in result.output
    _check_run(bench, tmp_path / "runs" / "class-regions")


def test_installed_plugin_trains_by_its_entry_point_name(bench: Path, tmp_path: Path) -> None:
    """pip-install the example package (no network: --no-deps --no-build-isolation) into a private target
    folder, then train it through the real command line by the name it registers."""
    pytest.importorskip("setuptools")
    src = Path(shutil.copytree(EXAMPLE, tmp_path / "src"))
    site = tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index", "--target", str(site), str(src)]
    done = subprocess.run(pip, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert list(site.glob("nerfseg_example_method-*.dist-info"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}

    def nerfseg(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "nerfseg.cli", *args], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)

    run = nerfseg("train", "--method", "class-regions", "--data", str(bench), "--prior", "gt", "--set", "min_pixels=2")
    assert run.returncode == 0, run.stdout + run.stderr
    report = _check_run(bench, tmp_path / "runs" / "class-regions")
    assert report["method"] == "class-regions"
    typo = nerfseg("train", "--method", "class_regions", "--data", str(bench))
    assert typo.returncode == 2 and "did you mean 'class-regions'" in typo.stderr, typo.stderr
    assert not (tmp_path / "runs" / "class_regions").exists()  # failed before any work
    unknown = nerfseg("train", "--method", "class-regions", "--data", str(bench), "--out", str(tmp_path / "bad"), "--set", "nope=1")
    assert unknown.returncode == 2 and "class-regions has no setting ['nope']" in unknown.stderr and "Traceback" not in unknown.stderr


def test_unknown_names_get_did_you_mean() -> None:
    with pytest.raises(InputError, match=r"did you mean 'semantic-nerf'\?"):
        methods.get_method("semantic_nerf")
    with pytest.raises(InputError, match=r"did you mean 'dm-nerf'"):
        methods.get_method("dmnerf")
    with pytest.raises(InputError, match=r"unknown method 'zzz'; known: dm-nerf, instance-nerf, prior2d, semantic-nerf"):
        methods.get_method("zzz")


@pytest.mark.parametrize(
    "target, message",
    [
        ("json:loads", "not a subclass of nerfseg.methods.Method"),
        ("nerfseg.methods:Method", "does not implement fit, make_config, predict"),
        ("nerfseg.methods:Nope", "nerfseg.methods has no attribute 'Nope'"),
        ("no_such_module_xyz:A", "no module named 'no_such_module_xyz'"),
        (":A", "expected a name or module:Class"),
    ],
)
def test_module_class_errors_name_the_problem(target: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        methods.get_method(target)


class _Unnamed(methods.Method):
    """A concrete method whose ``name`` could not be a folder name."""

    name = "my/method"

    @classmethod
    def make_config(cls, preset: str, **overrides: object) -> dict:
        return {}

    def fit(self, scene, work_dir, resume=True):  # type: ignore[no-untyped-def]
        return {}

    def predict(self, scene, work_dir):  # type: ignore[no-untyped-def]
        return iter(())


def test_entry_points_resolve_and_builtins_cannot_be_shadowed(monkeypatch: pytest.MonkeyPatch) -> None:
    group = methods.ENTRY_POINT_GROUP
    fake = {
        "prior2d": EntryPoint("prior2d", "json:loads", group),  # a plug-in may not replace a built-in
        "other-prior": EntryPoint("other-prior", "nerfseg.baselines.prior2d:Prior2D", group),
        "broken": EntryPoint("broken", "no_such_module_xyz:A", group),
        "bad-name": EntryPoint("bad-name", f"{__name__}:_Unnamed", group),
    }
    monkeypatch.setattr(methods, "plugin_methods", lambda: fake)
    from nerfseg.baselines.prior2d import Prior2D

    assert methods.get_method("prior2d") is Prior2D
    assert methods.get_method("other-prior") is Prior2D
    assert methods.available_methods()[: len(methods.METHODS)] == sorted(methods.METHODS)
    assert {"other-prior", "broken"} <= set(methods.available_methods())
    with pytest.raises(InputError, match=r"loading no_such_module_xyz:A \(entry point 'broken'.*ModuleNotFoundError"):
        methods.get_method("broken")
    with pytest.raises(InputError, match=r"name must be a plain name"):
        methods.get_method("bad-name")
    with pytest.raises(InputError, match=r"did you mean 'other-prior'"):
        methods.get_method("other_prior")
