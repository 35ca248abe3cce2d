"""Photoreal RGB with Blender's Cycles path tracer (``--renderer cycles``), through the ``bpy`` wheel.

Only the colour images come from here. Depth, instance, semantic and panoptic maps stay exact from the
Embree ray caster (nerfseg/dataset_tools/raycast.py): a path tracer blends labels at edges and its depth pass is a
single jittered sample, while the benchmark needs one exact label per pixel centre.

What this module guarantees, and why:

* **Same camera.** The Blender camera is placed with the same camera-to-world matrix (OpenGL axes: Blender
  cameras also look along their local -z with +y up, and Blender's world is z-up like nerfseg's), the focal
  length is set so that ``fx`` pixels = ``lens / sensor_width * width`` (square pixels), and the principal
  point becomes a lens shift. Cycles puts pixel (u, v)'s centre at (u + 0.5, v + 0.5), as
  :func:`nerfseg.cameras.camera_directions`. :meth:`CyclesScene.render_instance_ids` renders emission-coded
  objects through that camera so tests can check it pixel by pixel against the Embree instance map.
* **One translation per scene.** :class:`CyclesScene` builds every mesh, material and texture once; a view
  only moves the camera. Blender is reset (factory settings, empty) at the start of each scene, so one
  process can build many scenes in turn, and a process-pool or Ray worker owns its own Blender.
* **Materials as BlenderProc's 3D-FRONT loader sets them up.** A Principled BSDF whose base colour is the
  texture (UVs as loaded, repeat, linear filtering) times the part colour; beds and sofas get roughness 0.5.
  Emitters (ceilings, light bands, lamps: ``MeshPart.emissive``, strengths chosen by the loader) mix in an
  Emission shader for every ray except camera rays, so they light the room but look like their material
  when seen directly. A ceiling emits its material colour, other emitters their base colour (texture).
  A room without an emitter gets four point lights under the ceiling (as the Embree shader's fallback).
* **Unsupported materials are visible.** Material parameters Cycles does not map here (``MeshPart.material``
  keys other than roughness / metallic / specular, e.g. transparency) and textures that are not 8-bit
  images render with the base colour only; they are listed and counted in the scene record.
* **Resume per view.** :class:`~nerfseg.dataset_tools.cycles_views.ViewCache` keeps each finished view in a folder next to the scene, named by a
  hash of the pose, intrinsics and settings; a killed build re-renders only the views that are missing.

Modules: this one (Blender setup, :class:`CyclesScene`), :mod:`.cycles_materials` (material mapping, shading
normals; no Blender) and :mod:`.cycles_views` (per-view resume, :class:`SceneRGB` used by the build).
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from nerfseg.dataset_tools.cycles_materials import MaterialReport, corner_normals_of, key_colour, part_material
from nerfseg.dataset_tools.scene import MeshPart, Scene
from nerfseg.cameras import Intrinsics
from nerfseg.errors import InputError, NerfsegError
from nerfseg.io import atomic_path, read_png

#: The extra that installs bpy (pyproject.toml ``[project.optional-dependencies] render``).
RENDER_EXTRA = "render"
SENSOR_WIDTH_MM = 36.0


class MissingExtraError(NerfsegError):
    """An optional dependency is not installed; the message names the extra to install."""


_BLENDER_SCRIPTS = re.compile(r"[/\\](bpy|blender)[/\\]\d+\.\d+[/\\]scripts([/\\]|$)")


def _drop_inherited_blender_paths() -> None:
    """Remove Blender's own script folders from ``sys.path`` while bpy is not imported yet.

    Starting Blender adds them; a spawned pool worker inherits its parent's ``sys.path``, and there the pure
    Python ``bpy`` package of ``scripts/modules`` would shadow the wheel's (which needs ``_bpy``, loaded by
    the wheel). Blender adds them again when it starts.
    """
    if sys.modules.get("bpy") is None:
        sys.path[:] = [p for p in sys.path if not _BLENDER_SCRIPTS.search(p)]


def require_bpy() -> Any:
    """Import and return ``bpy`` or fail with a message naming the extra (checked before any long work)."""
    _drop_inherited_blender_paths()
    try:
        import bpy  # noqa: F401  (imported for its side effect of starting Blender)
    except ImportError as exc:
        raise MissingExtraError(
            f"--renderer cycles needs Blender as a Python module (bpy), which is not importable here ({exc}). "
            f"Install the render extra: pip install 'nerfseg[{RENDER_EXTRA}]' (bpy needs Python 3.11)"
        ) from None
    return bpy


def check_bpy_installed() -> None:
    """Fail with the install hint when bpy cannot be found, without starting Blender in this process.

    The build's parent process only plans and fans out; importing bpy there would start Blender's threads,
    which a forked pool worker cannot inherit safely.
    """
    import importlib.util

    if sys.modules.get("bpy") is not None:
        return
    try:
        found = importlib.util.find_spec("bpy") is not None
    except (ImportError, ValueError):
        found = False
    if not found or "bpy" in sys.modules:  # "bpy" mapped to None in sys.modules means: blocked
        raise MissingExtraError(
            "--renderer cycles needs Blender as a Python module (bpy), which is not installed here. "
            f"Install the render extra: pip install 'nerfseg[{RENDER_EXTRA}]' (bpy needs Python 3.11)"
        )


def bpy_available() -> bool:
    """Whether bpy is installed (found, not imported: asking does not start Blender in this process)."""
    try:
        check_bpy_installed()
    except MissingExtraError:
        return False
    return True


@dataclass(frozen=True)
class CyclesSettings:
    """Cycles settings of ``--renderer cycles`` (recorded in benchmark.json's build_settings).

    Defaults follow BlenderProc's (the reference renderer): adaptive sampling with noise threshold 0.01,
    OpenImageDenoise, 3 diffuse bounces, no glossy / transmission bounces, light tree off, but 64 samples
    instead of 1024 (a NeRF averages many views; see docs/rendering.md for the speed / noise trade-off).
    """

    samples: int = 64  # maximum samples per pixel (adaptive sampling may stop earlier)
    noise_threshold: float = 0.01  # adaptive sampling threshold; 0 disables adaptive sampling
    denoiser: str = "openimagedenoise"  # "openimagedenoise" | "optix" (GPU) | "none"
    max_bounces: int = 3
    diffuse_bounces: int = 3
    glossy_bounces: int = 0
    transmission_bounces: int = 0
    transparent_bounces: int = 8
    light_tree: bool = False
    filter_width: float = 1.5  # pixel filter (Blackman-Harris) width in pixels: anti-aliasing
    view_transform: str = "Filmic"  # the default of the Blender versions the reference renders were made with
    exposure: float = 0.0  # film exposure in stops
    world_color: tuple[float, float, float] = (0.05, 0.05, 0.05)  # background seen through openings
    fallback_light_watts: float = 60.0  # per point light when a room has no emissive part
    seed: int = 0
    device: str = "auto"  # "auto" (GPU when Cycles finds one) | "cpu" | "gpu"; does not change the fingerprint
    threads: int = 0  # CPU render threads, 0 = all cores; does not change the fingerprint

    #: fields that change how fast, not what, is rendered (left out of the scene fingerprint)
    RUNTIME_ONLY = ("device", "threads")

    def validate(self) -> None:
        if self.samples < 1:
            raise InputError(None, f"cycles samples must be >= 1, got {self.samples}", key="cycles.samples")
        if self.denoiser not in ("openimagedenoise", "optix", "none"):
            raise InputError(None, f"cycles denoiser must be openimagedenoise, optix or none, got {self.denoiser!r}", key="cycles.denoiser")
        if self.device not in ("auto", "cpu", "gpu"):
            raise InputError(None, f"cycles device must be auto, cpu or gpu, got {self.device!r}", key="cycles.device")
        if self.filter_width <= 0:
            raise InputError(None, "cycles filter_width must be > 0", key="cycles.filter_width")


def share_cores(settings: CyclesSettings, workers: int) -> CyclesSettings:
    """Settings whose ``threads`` split the machine's cores among ``workers`` Blender processes.

    Cycles uses every core by default; N pool workers each doing so would oversubscribe the CPU N times.
    An explicit ``threads`` is kept. (Ray schedules by its own CPU count; set ``threads`` there yourself.)
    """
    if workers <= 1 or settings.threads > 0:
        return settings
    from dataclasses import replace

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return replace(settings, threads=max(1, cores // workers))


# ---------------------------------------------------------------------------------------------
# Helpers


@contextlib.contextmanager
def _quiet_stdout() -> Iterator[None]:
    """Silence Blender's C-level render log ("Fra:1 Mem: ...") on file descriptor 1 while rendering."""
    try:
        fd = os.dup(1)
    except OSError:  # no real stdout (embedded); nothing to silence
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 1)
            try:
                yield
            finally:
                os.dup2(fd, 1)
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------------------------
# The scene in Blender


class CyclesScene:
    """One :class:`Scene` translated into Blender once; render any number of views of it.

    Only one instance is alive per process (Blender has one global state): creating a new one resets
    Blender and invalidates the previous instance.
    """

    def __init__(self, scene: Scene, settings: CyclesSettings | None = None, crease_angle_deg: float = 35.0):
        self.bpy = require_bpy()
        self.settings = settings or CyclesSettings()
        self.settings.validate()
        self.scene = scene
        if not scene.parts:
            raise InputError(scene.scene_id, "scene has no mesh parts to render")
        bpy = self.bpy
        bpy.ops.wm.read_factory_settings(use_empty=True)
        self.bscene = bpy.context.scene
        self.device = self._setup_device()
        self._setup_render()
        self.report = MaterialReport([])
        self._images: dict[int, Any] = {}
        self._materials: dict[tuple, Any] = {}
        self._id_materials: dict[int, Any] = {}
        self.objects: list[Any] = []
        normals = corner_normals_of(scene, crease_angle_deg)
        for i, part in enumerate(scene.parts):
            self.objects.append(self._add_part(i, part, normals[i]))
        self.num_emitters = sum(1 for p in scene.parts if p.emissive > 0)
        if self.num_emitters == 0:
            self._add_fallback_lights()
        cam_data = bpy.data.cameras.new("nerfseg_camera")
        self.camera = bpy.data.objects.new("nerfseg_camera", cam_data)
        self.bscene.collection.objects.link(self.camera)
        self.bscene.camera = self.camera
        self._intr: Intrinsics | None = None

    # ------------------------------------------------------------------ setup

    def _setup_device(self) -> str:
        """'GPU (<type>: names)' when asked / found, else 'CPU'."""
        s, bscene = self.settings, self.bscene
        bscene.render.engine = "CYCLES"
        bscene.cycles.device = "CPU"
        if s.device == "cpu":
            return "CPU"
        prefs = self.bpy.context.preferences.addons["cycles"].preferences
        for kind in ("OPTIX", "CUDA", "HIP", "ONEAPI", "METAL"):
            try:
                prefs.compute_device_type = kind
                prefs.get_devices()
            except (TypeError, ValueError, AttributeError):
                continue
            gpus = [d for d in prefs.devices if d.type == kind]
            if gpus:
                for d in prefs.devices:
                    d.use = d.type == kind
                bscene.cycles.device = "GPU"
                return f"GPU ({kind}: {', '.join(sorted({d.name for d in gpus}))})"
        if s.device == "gpu":
            raise InputError(None, "cycles device 'gpu' asked for, but Cycles finds no GPU (OptiX, CUDA, HIP, oneAPI, Metal)", key="cycles.device")
        prefs.compute_device_type = "NONE"
        return "CPU"

    def _setup_render(self) -> None:
        s, r, c = self.settings, self.bscene.render, self.bscene.cycles
        c.samples = int(s.samples)
        c.use_adaptive_sampling = s.noise_threshold > 0
        if s.noise_threshold > 0:
            c.adaptive_threshold = float(s.noise_threshold)
        c.use_denoising = s.denoiser != "none"
        if s.denoiser != "none":
            c.denoiser = "OPTIX" if s.denoiser == "optix" else "OPENIMAGEDENOISE"
        c.max_bounces = s.max_bounces
        c.diffuse_bounces = s.diffuse_bounces
        c.glossy_bounces = s.glossy_bounces
        c.transmission_bounces = s.transmission_bounces
        c.transparent_max_bounces = s.transparent_bounces
        c.volume_bounces = 0
        c.use_light_tree = bool(s.light_tree)
        c.seed = int(s.seed)
        c.use_animated_seed = False
        c.filter_type = "BLACKMAN_HARRIS"
        c.filter_width = float(s.filter_width)
        c.pixel_filter_type = "BLACKMAN_HARRIS"
        r.filter_size = float(s.filter_width)
        if s.threads > 0:
            r.threads_mode = "FIXED"
            r.threads = int(s.threads)
        r.resolution_percentage = 100
        r.pixel_aspect_x = r.pixel_aspect_y = 1.0
        r.film_transparent = False
        r.dither_intensity = 0.0  # no random dither: a re-rendered view is byte-identical
        r.use_file_extension = False
        r.use_persistent_data = True  # keep the synced scene between views (only the camera moves)
        vs = self.bscene.view_settings
        self.bscene.display_settings.display_device = "sRGB"
        vs.view_transform = s.view_transform
        vs.look = "None"
        vs.exposure = float(s.exposure)
        vs.gamma = 1.0
        world = self.bpy.data.worlds.new("nerfseg_world")
        world.use_nodes = True
        bg = world.node_tree.nodes["Background"]
        bg.inputs["Color"].default_value = (*[float(x) for x in s.world_color], 1.0)
        bg.inputs["Strength"].default_value = 1.0
        self.bscene.world = world
        self._world_bg = bg

    # ------------------------------------------------------------------ geometry and materials

    def _add_part(self, index: int, part: MeshPart, corner_normals: np.ndarray) -> Any:
        bpy = self.bpy
        v = np.asarray(part.vertices, dtype=np.float32)
        f = np.asarray(part.faces, dtype=np.int32)
        mesh = bpy.data.meshes.new(f"part{index}")
        mesh.vertices.add(len(v))
        mesh.vertices.foreach_set("co", v.ravel())
        mesh.loops.add(3 * len(f))
        mesh.loops.foreach_set("vertex_index", f.ravel())
        mesh.polygons.add(len(f))
        mesh.polygons.foreach_set("loop_start", np.arange(0, 3 * len(f), 3, dtype=np.int32))
        mesh.update(calc_edges=True)
        textured = part.texture is not None and part.uvs is not None
        if part.uvs is not None:
            uv = mesh.uv_layers.new(name="UVMap")
            uv.data.foreach_set("uv", np.asarray(part.uvs, dtype=np.float32)[f].ravel())
        # the Embree shader's normals as custom split normals: smooth where it is smooth, creased where not
        mesh.shade_smooth()
        mesh.normals_split_custom_set(corner_normals.reshape(-1, 3).tolist())
        mesh.materials.append(self._material(part, textured))
        obj = bpy.data.objects.new(f"part{index}", mesh)
        obj.pass_index = int(part.instance_id)
        self.bscene.collection.objects.link(obj)
        return obj

    def _image(self, tex: np.ndarray) -> Any:
        """A Blender image from an (H,W[,C]) uint8 texture (cached by array identity: models share them)."""
        key = id(tex)
        if key in self._images:
            return self._images[key][0]
        arr = np.asarray(tex)
        if arr.ndim == 2:
            arr = np.repeat(arr[:, :, None], 3, axis=2)
        h, w = arr.shape[:2]
        rgba = np.ones((h, w, 4), dtype=np.float32)
        rgba[:, :, :3] = arr[:, :, :3].astype(np.float32) / 255.0
        img = self.bpy.data.images.new(f"tex{len(self._images)}", width=w, height=h, alpha=False)
        img.colorspace_settings.name = "sRGB"
        img.pixels.foreach_set(rgba[::-1].ravel())  # Blender rows run bottom-up, as OBJ's v
        img.pack()
        self._images[key] = (img, tex)  # keep tex alive so its id is not reused
        return img

    def _material(self, part: MeshPart, textured: bool) -> Any:
        tex, params, problems = part_material(part, textured)
        if problems:
            self.report.unsupported.append({"part": part.name, "kind": part.kind, "problem": "; ".join(problems)})
        ceiling = "ceiling" in part.kind.lower()
        key = (id(tex) if tex is not None else None, key_colour(part), float(part.emissive), ceiling, tuple(sorted(params.items())))
        if key in self._materials:
            return self._materials[key]
        bpy = self.bpy
        mat = bpy.data.materials.new(f"mat{len(self._materials)}")
        mat.use_nodes = True
        nodes, links = mat.node_tree.nodes, mat.node_tree.links
        bsdf = nodes["Principled BSDF"]
        out = nodes["Material Output"]
        colour = (*key_colour(part), 1.0)
        base_socket = None
        if tex is not None:
            tnode = nodes.new("ShaderNodeTexImage")
            tnode.image = self._image(tex)
            tnode.interpolation = "Linear"
            tnode.extension = "REPEAT"
            base_socket = tnode.outputs["Color"]
            if colour[:3] != (1.0, 1.0, 1.0):
                mul = nodes.new("ShaderNodeMix")
                mul.data_type = "RGBA"
                mul.blend_type = "MULTIPLY"
                mul.inputs["Factor"].default_value = 1.0
                links.new(tnode.outputs["Color"], mul.inputs[6])
                mul.inputs[7].default_value = colour
                base_socket = mul.outputs[2]
            links.new(base_socket, bsdf.inputs["Base Color"])
        else:
            bsdf.inputs["Base Color"].default_value = colour
        for name, val in params.items():
            bsdf.inputs[name].default_value = val
        if part.emissive > 0:
            emit = nodes.new("ShaderNodeEmission")
            emit.inputs["Strength"].default_value = float(part.emissive)
            if ceiling or base_socket is None:
                emit.inputs["Color"].default_value = colour  # a ceiling emits its material colour
            else:
                links.new(base_socket, emit.inputs["Color"])  # lamps emit their base colour
            path = nodes.new("ShaderNodeLightPath")
            mix = nodes.new("ShaderNodeMixShader")
            links.new(path.outputs["Is Camera Ray"], mix.inputs["Fac"])
            links.new(emit.outputs["Emission"], mix.inputs[1])  # every other ray: light
            links.new(bsdf.outputs["BSDF"], mix.inputs[2])  # camera rays: the surface itself
            links.new(mix.outputs["Shader"], out.inputs["Surface"])
        self._materials[key] = mat
        return mat

    def _add_fallback_lights(self) -> None:
        lo = np.asarray(self.scene.room_bbox[0], dtype=np.float64)
        hi = np.asarray(self.scene.room_bbox[1], dtype=np.float64)
        centre, quarter = (lo + hi) / 2.0, (hi - lo) / 4.0
        for k, (sx, sy) in enumerate(((-1, -1), (-1, 1), (1, -1), (1, 1))):
            light = self.bpy.data.lights.new(f"fallback{k}", type="POINT")
            light.energy = float(self.settings.fallback_light_watts)
            light.shadow_soft_size = 0.1
            obj = self.bpy.data.objects.new(f"fallback{k}", light)
            obj.location = (centre[0] + sx * quarter[0], centre[1] + sy * quarter[1], hi[2] - 0.3)
            self.bscene.collection.objects.link(obj)

    # ------------------------------------------------------------------ camera and rendering

    def set_camera(self, c2w: np.ndarray, intr: Intrinsics) -> None:
        """Pose (camera-to-world, OpenGL axes) and pinhole intrinsics (square pixels, any principal point)."""
        import mathutils

        c2w = np.asarray(c2w, dtype=np.float64)
        if c2w.shape != (4, 4) or not np.all(np.isfinite(c2w)):
            raise InputError(self.scene.scene_id, f"camera-to-world must be a finite 4x4 matrix, got shape {c2w.shape}", key="c2w")
        if not math.isclose(intr.fx, intr.fy, rel_tol=1e-9):
            raise InputError(self.scene.scene_id, f"the Cycles renderer needs square pixels (fx == fy), got fx={intr.fx}, fy={intr.fy}", key="intrinsics")
        if intr != self._intr:
            r, cam = self.bscene.render, self.camera.data
            r.resolution_x, r.resolution_y = int(intr.width), int(intr.height)
            cam.type = "PERSP"
            cam.sensor_fit = "HORIZONTAL"
            cam.sensor_width = SENSOR_WIDTH_MM
            cam.lens_unit = "MILLIMETERS"
            cam.lens = intr.fx * SENSOR_WIDTH_MM / intr.width
            # shifts are in units of the fitted (horizontal) image size; +x moves the window right
            cam.shift_x = (intr.width / 2.0 - intr.cx) / intr.width
            cam.shift_y = (intr.cy - intr.height / 2.0) / intr.width
            cam.clip_start = 0.01
            cam.clip_end = 1.0e4
            self._intr = intr
        self.camera.matrix_world = mathutils.Matrix(c2w.tolist())

    def render_rgb(self, c2w: np.ndarray, intr: Intrinsics, out_png: Path | None = None) -> np.ndarray:
        """(H,W,3) uint8 sRGB image of one view; also written (atomically) to ``out_png`` when given."""
        self.set_camera(c2w, intr)
        r = self.bscene.render
        r.image_settings.file_format = "PNG"
        r.image_settings.color_mode = "RGB"
        r.image_settings.color_depth = "8"
        r.image_settings.compression = 15
        with tempfile.TemporaryDirectory(prefix="nerfseg-cycles-") as tmp:
            path = Path(tmp) / "view.png"
            r.filepath = str(path)
            with _quiet_stdout():
                self.bpy.ops.render.render(write_still=True)
            if not path.exists():
                raise NerfsegError(f"Cycles wrote no image for scene {self.scene.scene_id} (see Blender's log above)")
            rgb = read_png(path, expect="rgb")
            if out_png is not None:
                with atomic_path(out_png) as dst:
                    shutil.copyfile(path, dst)
        return rgb

    def render_instance_ids(self, c2w: np.ndarray, intr: Intrinsics) -> np.ndarray:
        """(H,W) uint16 instance id of each pixel centre, from Cycles: every object emits its id, one sample,
        a pixel filter 1/100 pixel wide, no bounces, black world (the geometric agreement check)."""
        bpy, c, r = self.bpy, self.bscene.cycles, self.bscene.render
        saved = {k: getattr(c, k) for k in ("samples", "use_adaptive_sampling", "use_denoising", "max_bounces", "filter_width")}
        saved_mats = [obj.material_slots[0].material for obj in self.objects]
        saved_world = tuple(self._world_bg.inputs["Color"].default_value)
        saved_filter = r.filter_size
        try:
            c.samples, c.use_adaptive_sampling, c.use_denoising, c.max_bounces = 1, False, False, 0
            c.filter_width = r.filter_size = 0.01
            self._world_bg.inputs["Color"].default_value = (0.0, 0.0, 0.0, 1.0)
            for obj in self.objects:
                obj.material_slots[0].material = self._id_material(obj.pass_index)
            self.set_camera(c2w, intr)
            r.image_settings.file_format = "OPEN_EXR"
            r.image_settings.color_mode = "RGB"
            r.image_settings.color_depth = "32"
            r.image_settings.exr_codec = "ZIP"
            with tempfile.TemporaryDirectory(prefix="nerfseg-cycles-") as tmp:
                path = Path(tmp) / "ids.exr"
                r.filepath = str(path)
                with _quiet_stdout():
                    bpy.ops.render.render(write_still=True)
                img = bpy.data.images.load(str(path))
                try:
                    buf = np.empty(intr.width * intr.height * 4, dtype=np.float32)
                    img.pixels.foreach_get(buf)
                finally:
                    bpy.data.images.remove(img)
            ids = buf.reshape(intr.height, intr.width, 4)[::-1, :, 0]
            return np.clip(np.rint(ids), 0, 65535).astype(np.uint16)
        finally:
            for k, val in saved.items():
                setattr(c, k, val)
            r.filter_size = saved_filter
            self._world_bg.inputs["Color"].default_value = saved_world
            for obj, mat in zip(self.objects, saved_mats):
                obj.material_slots[0].material = mat

    def _id_material(self, instance_id: int) -> Any:
        if instance_id not in self._id_materials:
            mat = self.bpy.data.materials.new(f"id{instance_id}")
            mat.use_nodes = True
            nodes, links = mat.node_tree.nodes, mat.node_tree.links
            nodes.remove(nodes["Principled BSDF"])
            emit = nodes.new("ShaderNodeEmission")
            emit.inputs["Color"].default_value = (float(instance_id), 0.0, 0.0, 1.0)  # EXR keeps the float
            emit.inputs["Strength"].default_value = 1.0
            links.new(emit.outputs["Emission"], nodes["Material Output"].inputs["Surface"])
            self._id_materials[instance_id] = mat
        return self._id_materials[instance_id]

    def record(self) -> dict[str, Any]:
        """What this translation did, for the scene record in benchmark.json."""
        return {
            "blender_version": self.bpy.app.version_string,
            "device": self.device,
            "num_objects": len(self.objects),
            "num_materials": len(self._materials),
            "num_textures": len(self._images),
            "num_emissive_parts": self.num_emitters,
            "unsupported_materials": self.report.count,
            "unsupported_material_parts": self.report.unsupported,
        }
