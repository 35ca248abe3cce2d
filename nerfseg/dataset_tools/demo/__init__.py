"""Seeded procedural demo scenes written in the real 3D-FRONT / 3D-FUTURE on-disk format.

Why a generator and not a fixture: 3D-FRONT cannot be redistributed (licence), yet the benchmark
must be buildable and testable anywhere. The demo writes exactly the files a real download has
(docs/front3d.md), so ``nerfseg build-dataset --demo N`` runs the same loader
(:mod:`nerfseg.dataset_tools.front3d`) as a real build; nothing downstream knows the difference.

Layout written under ``out_dir``::

    3D-FRONT/<house-uid>.json                 y-up houses with 1-2 rooms each
    3D-FUTURE-model/model_info.json           one list of {model_id, super-category, category, ...}
    3D-FUTURE-model/<jid>/raw_model.obj       + model.mtl (map_Kd texture.png) + texture.png (256x256 atlas)
    3D-FRONT-texture/<jid>/texture.png        floor / wall textures (128x128, tile seamlessly)
    demo_manifest.json                        what was generated: per room the objects and their z-up
                                              AABBs computed by the generator (tests compare the loader
                                              against it), and the sha256 of every file
    .nerfseg-demo                             marks the folder as ours (stale files are then removed)

Rooms: Bedroom, LivingRoom, DiningRoom, Library, MasterBedroom (cycled in that order; the first two
rooms already contain all ten classes), 3x3.5 m to 6x7 m, 2.6-3.0 m high, with floor,
four inner walls, baseboards, ceiling and one or two rectangular ceiling light panels (mesh type
``LightBand``: the loader marks them emissive, which is how the renderer finds the lights).
Furniture is built from boxes, cylinders and ellipsoids with UVs into a per-model texture atlas,
placed against walls, in corners or in groups (bed + nightstands, table + chairs, desk + chair,
sofa + coffee table + armchairs) so that no two floor objects' footprints come closer than 5 cm.
Each model's (super-category, category) label is one of the real 3D-FUTURE pairs of its shape's family, drawn with
the real model counts (nerfseg/data/3d_future_category_pairs.tsv) from the model's own seed, so the loader meets
the real release's spellings. Everything is drawn from ``numpy.random.default_rng([seed, house])``: the same seed writes
byte-identical files, and a larger demo starts with the same houses as a smaller one (except the
smaller one's last house when it had to be cut to one room).

Modules, one concern each: :mod:`.textures` (seeded draws, procedural textures), :mod:`.furniture` (the
models and their real category pairs), :mod:`.layout` (where furniture goes in a room), :mod:`.house`
(one house JSON and its model files), :mod:`.writer` (files on disk and the manifest).
"""

from nerfseg.dataset_tools.demo.furniture import DemoModel
from nerfseg.dataset_tools.demo.house import FAKE_TEXTURE_URL, FRONT3D_DIR, FUTURE_DIR, GENERATOR_VERSION, TEXTURE_DIR
from nerfseg.dataset_tools.demo.layout import MARGIN, MAX_COVER, MIN_FREE_RADIUS, ROOM_TYPES, WALL_GAP
from nerfseg.dataset_tools.demo.textures import ARCH_TEXTURE_SIZE, ATLAS_SIZE
from nerfseg.dataset_tools.demo.writer import DEMO_MANIFEST, MARKER, DemoPaths, write_demo_dataset

__all__ = [
    "ARCH_TEXTURE_SIZE",
    "ATLAS_SIZE",
    "DEMO_MANIFEST",
    "FAKE_TEXTURE_URL",
    "FRONT3D_DIR",
    "FUTURE_DIR",
    "GENERATOR_VERSION",
    "MARGIN",
    "MARKER",
    "MAX_COVER",
    "MIN_FREE_RADIUS",
    "ROOM_TYPES",
    "TEXTURE_DIR",
    "WALL_GAP",
    "DemoModel",
    "DemoPaths",
    "write_demo_dataset",
]
