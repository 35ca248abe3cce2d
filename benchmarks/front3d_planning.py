"""3D-FRONT build scale: planning time for 1,000 houses and seconds per scene.

Planning reads only the house JSONs and model_info.json (models are parsed by the per-scene workers), so it
must stay well under a minute for 1,000 houses. Writing 1,000 demo houses with the generator would take
about 20 minutes, so the benchmark generates a few demo houses and writes ``--houses`` clones of them, each
with its own house uid, room instanceids and model ids (model_info.json gets matching entries; planning never
opens a model folder), so no clone is dropped as a repeated layout and planning does its full work per house.
Also prints the JSON volume (real houses are 0.5-3 MB each, the demo's about 20 kB: scale by MB/s for the real
release) and the seconds per scene of a real build (mini preset) of the first demo scene(s).

Run: ``python benchmarks/front3d_planning.py [--houses 1000] [--workers 1] [--scenes 1]``. Prints numbers only.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from nerfseg.dataset_tools.build import build_dataset, plan_build, preset_config
from nerfseg.dataset_tools.demo import write_demo_dataset


def clone_houses(src_front: Path, src_future: Path, dst: Path, n: int) -> tuple[Path, Path]:
    """``n`` renamed copies of the demo houses (new uids, instanceids, jids) and a model_info.json for them."""
    front, future = dst / "3D-FRONT", dst / "3D-FUTURE-model"
    front.mkdir(parents=True)
    future.mkdir(parents=True)
    info = {e["model_id"]: e for e in json.loads((src_future / "model_info.json").read_text())}
    houses = [json.loads(p.read_text()) for p in sorted(src_front.glob("*.json"))]
    out_info = []
    for k in range(n):
        house = json.loads(json.dumps(houses[k % len(houses)]))
        tag = f"c{k:05d}"
        house["uid"] = f"{house['uid'][:8]}-{tag}"
        for f in house["furniture"]:
            new = f"{f['jid']}-{tag}"
            out_info.append({**info[f["jid"]], "model_id": new})
            f["jid"] = new
        for room in house["scene"]["room"]:
            room["instanceid"] = f"{room['instanceid']}-{tag}"
        (front / f"{house['uid']}.json").write_text(json.dumps(house))
    (future / "model_info.json").write_text(json.dumps(out_info))
    return front, future


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--houses", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=1, help="planning processes (the build's --workers)")
    parser.add_argument("--scenes", type=int, default=1, help="demo scenes to build for the seconds-per-scene figure (0: skip)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        src = write_demo_dataset(root / "src", num_rooms=4, seed=0)
        front, future = clone_houses(src.front3d_dir, src.future_dir, root / "clones", args.houses)
        mb = sum(p.stat().st_size for p in front.glob("*.json")) / 1e6
        config = preset_config("mini", priors=())
        t0 = time.perf_counter()
        plan = plan_build(front, future, None, root / "out", config, workers=args.workers)
        dt = time.perf_counter() - t0
        print(f"planning {args.houses} houses with {args.workers} worker(s) ({mb:.1f} MB of JSON): {dt:.2f} s "
              f"({dt / args.houses * 1e3:.2f} ms per house, {mb / dt:.1f} MB/s); {len(plan.jobs)} scenes planned, {len(plan.dropped_rooms)} rooms dropped")
        if args.scenes > 0:
            houses = sorted(p.stem for p in src.front3d_dir.glob("*.json"))
            t0 = time.perf_counter()
            bench = build_dataset(root / "built", src.front3d_dir, src.future_dir, src.texture_dir, config, houses=houses[: args.scenes], show_progress=False, show_warnings=False)
            wall = time.perf_counter() - t0
            n = len(bench["scenes"])
            load = sum(r["timings_s"]["load"] for r in bench["scenes"].values()) / max(n, 1)
            print(f"build (mini preset, {config.num_views} views at {config.width}x{config.height}, grid {config.grid_resolution}): {n} scenes in {wall:.1f} s, "
                  f"{wall / max(n, 1):.1f} s per scene (of which parsing the whole house's models {load:.2f} s)")


if __name__ == "__main__":
    main()
