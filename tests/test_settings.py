"""``--set`` for every command goes through one typed parser (nerfseg.config): conversions by field type, nested
keys, choices, did-you-mean, input files checked up front, and one-line CLI errors before any work starts."""

from __future__ import annotations

import dataclasses
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional

import pytest
from click.testing import CliRunner

from nerfseg.cli import cli, main
from nerfseg.config import (
    SettingError,
    accepted_keys,
    apply_overrides,
    check_choices,
    describe_settings,
    format_settings,
    from_preset,
    parse_assignments,
    preset_entry,
    typed_overrides,
)
from nerfseg.errors import InputError
from tests.evaluation.fixtures import make_tiny_benchmark


@dataclass(frozen=True)
class Inner:
    """A nested section."""

    #: hidden width of the inner thing
    width: int = 8
    rate: float = 0.5  # learning rate of the inner thing


@dataclass(frozen=True)
class Outer:
    FLAT_SETTINGS = ("inner",)

    name: str = "a"
    steps: int = 10
    lr: float = 1e-2
    flag: bool = False
    where: Path = Path("x")
    limit: Optional[int] = 3
    maybe: int | None = None
    mode: Literal["fast", "slow"] = "fast"
    betas: tuple[float, float] = (0.9, 0.99)
    sizes: tuple[int, ...] = (1, 2)
    names: list[str] = field(default_factory=lambda: ["p"])
    inner: Inner = field(default_factory=Inner)
    weights: str | None = field(default=None, metadata={"path": "input", "help": "a file the run reads"})


@pytest.mark.parametrize(
    "key, text, expected",
    [
        ("name", "hello", "hello"),
        ("steps", "500", 500),
        ("steps", "1_000", 1000),
        ("lr", "1e-3", 1e-3),
        ("lr", "2", 2.0),
        ("flag", "true", True),
        ("flag", "Off", False),
        ("flag", "1", True),
        ("where", "a/b.txt", Path("a/b.txt")),
        ("limit", "none", None),
        ("limit", "7", 7),
        ("maybe", "null", None),
        ("maybe", "4", 4),
        ("mode", "slow", "slow"),
        ("betas", "0.8,0.9", (0.8, 0.9)),
        ("betas", "(0.8, 0.95)", (0.8, 0.95)),
        ("sizes", "[3, 4, 5]", (3, 4, 5)),
        ("names", "a,b", ["a", "b"]),
    ],
)
def test_text_is_converted_by_field_type(key: str, text: str, expected: object) -> None:
    cfg = apply_overrides(Outer(), {key: text})
    value = getattr(cfg, key)
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize(
    "key, bad",
    [("steps", "abc"), ("steps", "1.5"), ("lr", "fast"), ("flag", "maybe"), ("limit", "x"), ("mode", "medium"),
     ("betas", "1,2,3"), ("sizes", "a,b"), ("steps", True), ("name", 3)],
)
def test_values_that_do_not_fit_name_key_type_and_value(key: str, bad: object) -> None:
    with pytest.raises(SettingError) as err:
        apply_overrides(Outer(), {key: bad}, flag="--set")
    msg = str(err.value)
    assert msg.startswith(f"--set {key}=") and "expects" in msg and repr(bad) in msg and "\n" not in msg
    assert isinstance(err.value, InputError)  # the CLI prints InputErrors as one line, exit code 2
    assert str(pickle.loads(pickle.dumps(err.value))) == msg  # survives a process pool


def test_python_values_are_normalised_like_text() -> None:
    """The same setting lands as the same value from the command line and from Python (same run fingerprint)."""
    from_text = apply_overrides(Outer(), {"steps": "500", "lr": "1", "betas": "0.9,0.95", "inner.width": "4"})
    from_python = apply_overrides(Outer(), {"steps": 500, "lr": 1, "betas": [0.9, 0.95], "inner.width": 4})
    assert from_text == from_python and type(from_python.lr) is float and isinstance(from_python.betas, tuple)


def test_nested_and_flat_keys_and_frozen_configs() -> None:
    base = Outer()
    cfg = apply_overrides(base, {"inner.width": "16", "rate": "0.25"})
    assert cfg.inner == Inner(width=16, rate=0.25) and base.inner == Inner()  # a new config; the old one unchanged
    assert accepted_keys(base)["rate"] == "inner.rate" and accepted_keys(base)["steps"] == "steps"
    assert apply_overrides(base, {}) is base
    with pytest.raises(SettingError, match="group of settings"):
        apply_overrides(base, {"inner": "3"})


def test_unknown_keys_get_a_did_you_mean() -> None:
    with pytest.raises(SettingError, match=r"unknown setting 'stpes' of Outer; did you mean 'steps'"):
        apply_overrides(Outer(), {"stpes": 1}, flag="--set")
    with pytest.raises(SettingError, match=r"did you mean 'inner.width'"):
        apply_overrides(Outer(), {"inner.widht": 1})
    with pytest.raises(SettingError, match="see --list-settings"):
        apply_overrides(Outer(), {"zzzzzz": 1})


def test_input_paths_must_exist(tmp_path: Path) -> None:
    with pytest.raises(SettingError, match="file not found"):
        apply_overrides(Outer(), {"weights": str(tmp_path / "nope.pt")}, flag="--set")
    (tmp_path / "w.pt").write_bytes(b"x")
    assert apply_overrides(Outer(), {"weights": str(tmp_path / "w.pt")}).weights == str(tmp_path / "w.pt")
    assert apply_overrides(Outer(), {"weights": "none"}).weights is None


def test_assignments_and_typed_overrides() -> None:
    assert parse_assignments(["a=1", "b.c=x=y", "a=2"]) == {"a": "2", "b.c": "x=y"}
    with pytest.raises(SettingError, match="expected KEY=VALUE"):
        parse_assignments(["novalue"])
    assert typed_overrides(lambda **kw: apply_overrides(Outer(), kw), {"rate": "0.1", "steps": "5"}) == {"rate": 0.1, "steps": 5}
    assert typed_overrides(lambda **kw: {"plain": "dict"}, {"steps": "5", "x": "true"}) == {"steps": 5, "x": True}


def test_presets_are_looked_up_one_way() -> None:
    assert preset_entry({"mini": (1, 2)}, "mini", "demo") == (1, 2)
    calls: list[int] = []
    table = {"mini": lambda: calls.append(1) or len(calls)}
    assert from_preset(table, "mini", "demo") == 1 and from_preset(table, "mini", "demo") == 2  # built anew each time
    with pytest.raises(SettingError, match=r"^--preset midi: unknown demo preset 'midi'; expected one of \['mini', 'paper'\]$"):
        from_preset({"mini": Outer, "paper": Outer}, "midi", "demo")


def test_literal_choices_are_checked_on_python_built_configs() -> None:
    check_choices(Outer())
    with pytest.raises(SettingError, match=r"^setting mode=medium: unknown mode 'medium'; expected one of 'fast', 'slow'$"):
        check_choices(Outer(mode="medium"))  # type: ignore[arg-type]


@dataclass(frozen=True)
class Derived(Inner):
    extra: int = 1  # a setting of the subclass only


def test_inherited_fields_keep_their_help() -> None:
    infos = {i.key: i.help for i in describe_settings(Derived())}
    assert infos == {"width": "hidden width of the inner thing", "rate": "learning rate of the inner thing",
                     "extra": "a setting of the subclass only"}


def test_help_comes_from_metadata_and_comments() -> None:
    infos = {i.key: i for i in describe_settings(Outer())}
    assert infos["weights"].help == "a file the run reads"
    assert infos["inner.width (or width)"].help == "hidden width of the inner thing"
    assert infos["inner.rate (or rate)"].help == "learning rate of the inner thing"
    assert infos["mode"].type == "{'fast', 'slow'}" and infos["limit"].type == "int | None" and infos["steps"].value == 10
    assert "betas: tuple[float, float] = (0.9, 0.99)" in format_settings(Outer())


def test_method_configs_take_typed_text() -> None:
    from nerfseg.baselines.dm_nerf import DMNeRF
    from nerfseg.instance_nerf.grids import grid_settings
    from nerfseg.instance_nerf.method import make_config
    from nerfseg.instance_nerf.rcnn.config import preset_config

    assert DMNeRF.make_config("mini", steps="500") == DMNeRF.make_config("mini", steps=500)
    cfg = make_config("mini", **{"field.hidden": "8", "regularization": "false", "detector": "gt3d"})
    assert cfg.field.hidden == 8 and cfg.regularization is False and cfg.detector == "gt3d"
    with pytest.raises(SettingError, match=r"detector expects \{'rcnn', 'gt3d'\}"):
        make_config("mini", detector="magic")
    assert grid_settings("mini", steps="300", resolution="32").record() == grid_settings("mini", steps=300, resolution=32).record()
    assert preset_config("mini", backbone_channels="8,8,16,16", stem="conv7").backbone_channels == (8, 8, 16, 16)
    with pytest.raises(SettingError, match=r"stem expects \{'conv7', 'strided'\}"):
        preset_config("mini", stem="big")


# ------------------------------------------------------------------------------------------------ CLI
@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_benchmark(tmp_path_factory.mktemp("settings_bench"), num_scenes=1)


def _run_main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    return int(exc.value.code), capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["train", "--method", "dm-nerf", "--set", "steps=abc"], "error: --set steps=abc: steps (radiance.steps) expects int, got 'abc'"),
        (["train", "--method", "instance-nerf", "--set", "rcnn_checkpoint=nope.pt"], "error: --set rcnn_checkpoint=nope.pt: file not found: nope.pt"),
        (["train", "--method", "semantic-nerf", "--set", "stpes=5"], "did you mean 'steps'?"),
        (["grids", "--set", "resolution=big"], "error: --set resolution=big: resolution expects int, got 'big'"),
        (["grids", "--set", "encoding=bogus"], "error: --set encoding=bogus: encoding (radiance.encoding) expects {'hash', 'dense'}, got 'bogus'"),
        (["train", "--method", "semantic-nerf", "--set", "grid_kernel=numba"], "grid_kernel (radiance.grid_kernel) expects {'auto', 'torch'}"),
        (["train", "--method", "dm-nerf", "--set", "sh_degree=9"], "sh_degree must be in 1..5, got 9"),
        (["train-rcnn", "--set", "iterations=abc"], "error: --set iterations=abc: iterations expects int, got 'abc'"),
        (["train-rcnn", "--set", "base_stride=3"], "error: --set base_stride=3: base_stride must be 1, 2 or 4, got 3"),
        (["reproduce", "--table", "1", "--set", "dm-nerf:steps=abc"], "error: --set dm-nerf:steps=abc: steps (radiance.steps) expects int"),
        (["reproduce", "--table", "2", "--grid-set", "stepz=3"], "error: --grid-set stepz=3: unknown setting 'stepz'"),
    ],
)
def test_bad_settings_are_one_line_before_any_work(argv: list[str], expected: str, bench: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    before = sorted(p.relative_to(bench) for p in bench.rglob("*"))
    out = ["--out", str(work / "run")] if argv[0] != "grids" else []
    code, err = _run_main([*argv, "--data", str(bench), *out], capsys)
    assert code == 2 and expected in err and err.count("\n") == 1, err
    assert list(work.iterdir()) == []  # no run folder, no runs/ default, nothing
    assert sorted(p.relative_to(bench) for p in bench.rglob("*")) == before  # no grids, features or radiance runs


def test_train_rcnn_takes_set(bench: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import nerfseg.instance_nerf.rcnn.train as rcnn_train

    seen: dict[str, object] = {}

    def fake(data_root: str, out_dir: str, **kwargs: object) -> dict[str, object]:
        seen.update(kwargs)
        return {"iterations": 2, "train_scenes": 1, "val_scenes": 0, "ap25": None, "ap50": None, "best_ap25": None,
                "best_iteration": None, "checkpoint": "c", "best_checkpoint": "b"}

    monkeypatch.setattr(rcnn_train, "train_rcnn", fake)
    res = CliRunner().invoke(cli, ["train-rcnn", "--data", str(bench), "--out", str(tmp_path / "r"),
                                   "--set", "lr=5e-4", "--set", "stem=conv7", "--iterations", "2"])
    assert res.exit_code == 0, res.output
    assert seen["overrides"] == {"lr": 5e-4, "stem": "conv7", "iterations": 2}
    from nerfseg.instance_nerf.rcnn.config import preset_config

    cfg = preset_config("mini", **seen["overrides"])  # type: ignore[arg-type]
    assert (cfg.lr, cfg.stem, cfg.iterations) == (5e-4, "conv7", 2)


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["train", "--list-settings", "--method", "dm-nerf"], "radiance.steps (or steps): int = 1500"),
        (["train", "--method", "instance-nerf", "--preset", "paper", "--list-settings"], "stage1_steps: int = 25000"),
        (["grids", "--list-settings"], "resolution: int = 64"),
        (["train-rcnn", "--list-settings", "--preset", "paper"], "iterations: int = 30000"),
    ],
)
def test_list_settings(argv: list[str], expected: str) -> None:
    res = CliRunner().invoke(cli, argv)  # no --data needed: the listing exits before the required options
    assert res.exit_code == 0, res.output
    assert expected in res.output and "--set KEY=VALUE" in res.output


def test_list_settings_needs_a_method() -> None:
    res = CliRunner().invoke(cli, ["train", "--list-settings"])
    assert res.exit_code == 2 and "--list-settings needs --method" in res.output


def test_instance_nerf_config_help_lists_rcnn_checkpoint_as_input() -> None:
    from nerfseg.instance_nerf.method import InstanceNeRFConfig, make_config

    fld = {f.name: f for f in dataclasses.fields(InstanceNeRFConfig)}
    assert fld["rcnn_checkpoint"].metadata["path"] == "input"
    infos = {i.key: i for i in describe_settings(make_config("mini"))}
    assert "checked when set" in infos["rcnn_checkpoint"].help


def test_settings_page_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    import re

    page = (Path(__file__).resolve().parents[1] / "docs" / "settings.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```python\n(.*?)^```", page, re.M | re.S)
    assert blocks
    for block in blocks:
        exec(compile(block, "docs/settings.md", "exec", dont_inherit=True), {"__name__": "docs_example"})  # no future import
    assert "head.hidden (or hidden): int = 32" in capsys.readouterr().out


def test_list_settings_of_a_plugin_without_a_dataclass(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "dict_method.py").write_text(
        "from nerfseg.methods import Method\n"
        "class DictMethod(Method):\n"
        "    name = 'dict-method'\n"
        "    @classmethod\n"
        "    def make_config(cls, preset, **overrides):\n"
        "        return {'preset': preset, **overrides}\n"
        "    def fit(self, scene, work_dir, resume=True):\n"
        "        return {}\n"
        "    def predict(self, scene, work_dir):\n"
        "        return iter(())\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    res = CliRunner().invoke(cli, ["train", "--method", "dict_method:DictMethod", "--list-settings"])
    assert res.exit_code == 0, res.output
    assert "{'preset': 'mini'}" in res.output and "not a dataclass" in res.output


def test_build_dataset_takes_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import nerfseg.dataset_tools.build as build
    import nerfseg.dataset_tools.demo as demo
    import nerfseg.dataset_tools.sources as sources

    out = tmp_path / "bench"
    code, err = _run_main(["build-dataset", "--demo", "1", "--out", str(out), "--set", "width=wide"], capsys)
    assert code == 2 and err == "error: --set width=wide: width expects int, got 'wide'\n" and not out.exists()

    seen: dict[str, object] = {}

    class Paths:
        front3d_dir = future_dir = texture_dir = tmp_path

    monkeypatch.setattr(demo, "write_demo_dataset", lambda *a, **kw: (seen.update(demo_seed=kw["seed"]), Paths())[1])

    def fake_build(out_dir: Path, scene_source: Any, config: Any, **kwargs: object) -> dict:
        seen["config"] = config
        scene_source.plan(out_dir, config)  # the demo source writes its rooms (stubbed) with the build's seed
        raise SystemExit(0)  # stop before anything is built: the parsed config is what this test checks

    monkeypatch.setattr(sources.Front3DSource, "plan", lambda self, *a, **kw: None)
    monkeypatch.setattr(build, "build_from_source", fake_build)
    res = CliRunner().invoke(cli, ["build-dataset", "--demo", "1", "--out", str(out), "--views", "20",
                                   "--set", "camera.radius_factor=2", "--set", "seed=7", "--set", "priors=gt"])
    assert res.exit_code == 0, res.output
    cfg = seen["config"]
    assert (cfg.camera.radius_factor, cfg.seed, cfg.priors, cfg.num_views) == (2.0, 7, ("gt",), 20)  # type: ignore[attr-defined]
    assert seen["demo_seed"] == 7
    res = CliRunner().invoke(cli, ["build-dataset", "--list-settings", "--preset", "paper"])
    assert res.exit_code == 0 and "width: int = 640" in res.output and "camera.radius_factor: float = 1.7" in res.output
