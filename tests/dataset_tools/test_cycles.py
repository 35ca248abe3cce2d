"""``--renderer cycles``: geometric agreement with Embree, materials audit, per-view resume, clear errors.

Tests that render need Blender as a Python module (the ``render`` extra, ``bpy``) and skip without it;
they run at tiny resolutions with a handful of samples, so each takes seconds.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from scipy import ndimage

from nerfseg.dataset_tools import cycles as cycles_mod
from nerfseg.dataset_tools import cycles_views
from nerfseg.dataset_tools.build import build_dataset, check_renderer, preset_config
from nerfseg.dataset_tools.cameras import CameraConfig, sample_cameras
from nerfseg.dataset_tools.cycles import CyclesSettings, MissingExtraError, bpy_available
from nerfseg.dataset_tools.cycles_materials import unsupported_materials
from nerfseg.dataset_tools.demo import write_demo_dataset
from nerfseg.dataset_tools.raycast import SceneRaycaster
from nerfseg import spec
from nerfseg.cameras import Intrinsics
from nerfseg.cli import cli
from nerfseg.io import read_png, sha256_file
from tests.dataset_tools.scenes import make_box_room

needs_bpy = pytest.mark.skipif(not bpy_available(), reason="needs the render extra (bpy)")
FAST = CyclesSettings(samples=4, denoiser="none")


def _odd_parts_room():
    """The box room plus two parts Cycles cannot fully map: a transparent one and a float texture."""
    room = make_box_room()
    base = room.parts[-1]
    room.parts.append(dataclasses.replace(base, name="glass", material={"dissolve": 0.3, "roughness": 0.1}))
    room.parts.append(
        dataclasses.replace(base, name="float-tex", uvs=np.zeros((len(base.vertices), 2)), texture=np.ones((4, 4, 3), dtype=np.float32))
    )
    return room


def _block_bpy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "bpy", None)  # "import bpy" now raises ImportError


def test_missing_bpy_names_the_extra_before_any_work(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _block_bpy(monkeypatch)
    with pytest.raises(MissingExtraError, match=r"nerfseg\[render\]"):
        check_renderer(preset_config("mini", renderer="cycles"))
    result = CliRunner().invoke(cli, ["build-dataset", "--out", str(tmp_path / "b"), "--demo", "1", "--renderer", "cycles"])
    assert isinstance(result.exception, MissingExtraError) and "render" in str(result.exception)
    assert not (tmp_path / "b").exists()  # failed before writing the demo source or anything else


def test_unknown_renderer_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown renderer"):
        check_renderer(preset_config("mini", renderer="eevee"))


def test_material_audit_counts_what_cycles_cannot_map() -> None:
    problems = unsupported_materials(_odd_parts_room())
    assert [p["part"] for p in problems] == ["glass", "float-tex"]
    assert "dissolve" in problems[0]["problem"] and "roughness" not in problems[0]["problem"]
    assert "float32" in problems[1]["problem"]
    assert unsupported_materials(make_box_room()) == []


def test_fingerprint_tracks_cycles_pixels_not_speed() -> None:
    ray = preset_config("mini")
    assert ray.fingerprint() == dataclasses.replace(ray, cycles=CyclesSettings(samples=3)).fingerprint()
    cyc = preset_config("mini", renderer="cycles")
    assert cyc.fingerprint() != ray.fingerprint()
    assert cyc.fingerprint() != dataclasses.replace(cyc, cycles=CyclesSettings(samples=3)).fingerprint()
    assert cyc.fingerprint() == dataclasses.replace(cyc, cycles=CyclesSettings(device="cpu", threads=1)).fingerprint()


def _away_from_silhouettes(labels: np.ndarray) -> np.ndarray:
    """Pixels whose 3x3 neighbourhood has one label (excludes a 1-pixel band on each side of every edge)."""
    lo = ndimage.minimum_filter(labels, size=3, mode="nearest")
    hi = ndimage.maximum_filter(labels, size=3, mode="nearest")
    return lo == hi


@needs_bpy
def test_cycles_object_ids_agree_with_embree_instance_map() -> None:
    """Same pinhole model, pixel centres and camera convention: >= 99 % of pixels away from silhouettes agree.

    An off-centre principal point and a non-4:3 image make a sign or axis mistake in the lens shift or the
    sensor fit show up; the odd materials must not break the translation.
    """
    room = _odd_parts_room()
    rc = SceneRaycaster(room)
    poses = sample_cameras(room, CameraConfig(), np.random.default_rng(3), target_views=3, raycaster=rc)
    scene = cycles_mod.CyclesScene(room, FAST)
    assert scene.record()["unsupported_materials"] == 2
    for intr in (Intrinsics(64, 48, 40.0, 40.0, 32.0, 24.0), Intrinsics(60, 50, 45.0, 45.0, 27.5, 28.0)):
        for c2w in poses:
            embree = rc.render_depth_labels_only(c2w, intr).instance
            ids = scene.render_instance_ids(c2w, intr)
            inner = _away_from_silhouettes(embree)
            assert inner.mean() > 0.5 and len(np.unique(embree)) >= 2
            agree = float((ids[inner] == embree[inner]).mean())
            assert agree >= 0.99, f"{intr}: only {agree:.4f} of interior pixels agree"
    rgb = scene.render_rgb(poses[0], Intrinsics(64, 48, 40.0, 40.0, 32.0, 24.0))
    assert rgb.shape == (48, 64, 3) and 5 < rgb.mean() < 250 and rgb.std() > 2  # lit, not blank


def _config(**kw):
    base = dict(width=40, height=30, focal=25.0, num_views=3, grid_resolution=24, priors=(), renderer="cycles", cycles=FAST)
    base.update(kw)
    return preset_config("mini", **base)


def _scene_files(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): sha256_file(p) for p in sorted((root / spec.SCENES_DIR).rglob("*")) if p.is_file() and p.name != "scene_manifest.json"}


@needs_bpy
def test_cycles_build_resumes_per_view_and_gives_the_same_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = write_demo_dataset(tmp_path / "src", num_rooms=1, seed=2)
    full = tmp_path / "full"
    bench = build_dataset(full, src.front3d_dir, src.future_dir, src.texture_dir, _config(), show_progress=False)
    (record,) = bench["scenes"].values()
    assert record["cycles"]["views_rendered"] == 3 and record["cycles"]["views_reused"] == 0
    assert bench["build_settings"]["cycles"]["samples"] == 4 and bench["build_settings"]["cycles"]["denoiser"] == "none"
    assert bench["report"]["unsupported_materials"] == 0
    assert not list((full / spec.SCENES_DIR).glob(".cycles-views-*"))  # cache removed once the scene is in place
    for img in (spec.scene_dir(full, record["scene_id"]) / spec.IMAGES_DIR).glob("*.png"):
        rgb = read_png(img, expect="rgb")
        assert rgb.shape == (30, 40, 3) and 5 < rgb.mean() < 250 and rgb.std() > 2, img  # a lit room, not blank

    # a build killed while rendering its third view keeps the two finished views ...
    killed = tmp_path / "killed"
    real_view = cycles_views.SceneRGB.view
    calls = {"n": 0}

    def dying_view(self, name, c2w, intr):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("killed")
        return real_view(self, name, c2w, intr)

    monkeypatch.setattr(cycles_views.SceneRGB, "view", dying_view)
    with pytest.raises(KeyboardInterrupt):
        build_dataset(killed, src.front3d_dir, src.future_dir, src.texture_dir, _config(), show_progress=False)
    monkeypatch.setattr(cycles_views.SceneRGB, "view", real_view)
    (cache,) = (killed / spec.SCENES_DIR).glob(".cycles-views-*")
    assert len(list(cache.glob("*.png"))) == 2
    # ... and the resumed build renders only the missing one, giving the same files as the uninterrupted build
    bench2 = build_dataset(killed, src.front3d_dir, src.future_dir, src.texture_dir, _config(), show_progress=False)
    (record2,) = bench2["scenes"].values()
    assert record2["cycles"]["views_reused"] == 2 and record2["cycles"]["views_rendered"] == 1
    assert _scene_files(killed) == _scene_files(full)
    # labels and depth are Embree's: identical to a ray-cast build of the same scenes and cameras
    ray = tmp_path / "ray"
    build_dataset(ray, src.front3d_dir, src.future_dir, src.texture_dir, _config(renderer="raycast"), show_progress=False)
    cyc_files, ray_files = _scene_files(full), _scene_files(ray)
    for rel, digest in ray_files.items():
        if f"/{spec.IMAGES_DIR}/" in rel:
            assert cyc_files[rel] != digest  # the RGB is Cycles'
        elif rel.endswith(".png") and "/priors/" not in rel:
            assert cyc_files[rel] == digest, rel
    assert json.loads((ray / spec.BENCHMARK_JSON).read_text())["report"]["unsupported_materials"] == 0


def test_share_cores_splits_threads_among_pool_workers() -> None:
    assert cycles_mod.share_cores(FAST, 1) is FAST
    assert cycles_mod.share_cores(FAST, 10_000).threads == 1
    pinned = dataclasses.replace(FAST, threads=3)
    assert cycles_mod.share_cores(pinned, 4).threads == 3


@needs_bpy
def test_cycles_scenes_run_in_a_process_pool_with_the_same_pixels(tmp_path: Path) -> None:
    """The per-scene function still runs in pool workers (each its own Blender) and renders the same bytes."""
    src = write_demo_dataset(tmp_path / "src", num_rooms=2, seed=4)
    cfg = _config(num_views=2)
    build_dataset(tmp_path / "one", src.front3d_dir, src.future_dir, src.texture_dir, cfg, show_progress=False)
    pool = build_dataset(tmp_path / "pool", src.front3d_dir, src.future_dir, src.texture_dir, cfg, workers=2, show_progress=False)
    assert len(pool["scenes"]) == 2 and all(r["cycles"]["views_rendered"] == 2 for r in pool["scenes"].values())
    assert _scene_files(tmp_path / "pool") == _scene_files(tmp_path / "one")
