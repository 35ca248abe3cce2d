"""Peak memory of the submission validator on hostile uploads: this checkout against another one (the "before").

Each attack file is generated here (small on disk, see tests/hostile.py), then validated in a fresh Python
process per (code tree, attack) under an address-space cap, and the child reports its own peak RSS
(``ru_maxrss``), its outcome, how long it took and how long the problem text was. A child that hits the cap is
reported as such (its peak is then at least the cap). Run from the repository root::

    python benchmarks/hostile_uploads.py --before /path/to/old/checkout [--cap-gb 6] [--only tar-gnu,zip-2M]

Prints a Markdown table (docs/leaderboard-security.md holds the one measured for the issue). No timed
asserts: the numbers are for reading, next to the same run's baseline (a valid submission).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from nerfseg.evaluation.reference import write_gt_submission  # noqa: E402
from tests import hostile  # noqa: E402
from tests.evaluation.fixtures import make_tiny_benchmark  # noqa: E402

CHILD = r"""
import json, resource, sys, time
cap = int(sys.argv[4])
resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
sys.path.insert(0, sys.argv[1])
from nerfseg.evaluation.submission import validate_submission
t0 = time.perf_counter()
try:
    result = validate_submission(sys.argv[2], sys.argv[3])
    text = str(result)
    outcome = "valid" if result.ok else "rejected: " + (result.problems[0].message[:90] if result.problems else "")
    n = len(result.problems)
except MemoryError:
    outcome, n, text = "MemoryError at the cap", 0, ""
print(json.dumps({"rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "outcome": outcome,
                  "problems": n, "text_bytes": len(text.encode("utf-8", "backslashreplace")),
                  "seconds": time.perf_counter() - t0}))
"""


def build_attacks(work: Path, bench: Path, gt: Path) -> dict[str, tuple[Path, str]]:
    """name -> (file or folder to validate, what it is)."""
    attacks: dict[str, tuple[Path, str]] = {"baseline (valid .tar.gz)": (hostile.tar_gz_of(gt, work / "valid.tar.gz"), "the tiny benchmark's GT")}
    attacks["tar-gnu"] = (hostile.tar_with_long_header(work / "gnu.tar.gz", 256, "gnu"), "GNU long name of 256 MiB")
    attacks["tar-pax"] = (hostile.tar_with_long_header(work / "pax.tar.gz", 256, "pax"), "pax path of 256 MiB")
    attacks["zip-2M"] = (hostile.zip_with_many_entries(work / "many.zip", 2_000_000), "2 M central-directory entries")
    h5 = hostile.copy_tree(gt, work / "h5sub")
    hostile.h5_many_columns(h5 / "tiny_000" / "instances3d.h5", columns=48)
    attacks["h5-columns"] = (h5, "/instances: 48 gzip columns of 63 MB, never written")
    probs = hostile.copy_tree(gt, work / "probsub")
    hostile.panoptic_json_with_problems(probs / "tiny_000" / "panoptic.json", 100_000)
    attacks["100k-problems"] = (probs, "panoptic.json with 100k bad annotations")
    attacks["tar-bomb"] = (hostile.tar_bomb(work / "bomb.tar.gz", 60), "60 MiB of zeros in one member")
    attacks["tar-bad-utf8"] = (hostile.tar_with_bad_utf8_name(work / "utf8.tar.gz", gt), "member name not UTF-8")
    return attacks


def run(repo: Path, python: str, target: Path, bench: Path, cap: int, timeout: float) -> dict:
    t0 = time.perf_counter()
    try:
        proc = subprocess.run([python, "-c", CHILD, str(repo), str(target), str(bench), str(cap)], cwd=repo,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"rss_mb": float("nan"), "outcome": f"timeout after {timeout:.0f} s", "problems": 0, "text_bytes": 0,
                "seconds": time.perf_counter() - t0}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        tail = (proc.stderr.strip().splitlines() or ["?"])[-1][:80]
        return {"rss_mb": float("nan"), "outcome": f"crashed (rc {proc.returncode}): {tail}", "problems": 0,
                "text_bytes": 0, "seconds": time.perf_counter() - t0}
    return json.loads(lines[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--before", type=Path, help="another checkout (the old code) to compare with")
    ap.add_argument("--before-python", default=sys.executable)
    ap.add_argument("--cap-gb", type=float, default=6.0, help="address-space cap per child")
    ap.add_argument("--timeout", type=float, default=300.0)
    ap.add_argument("--only", default="", help="comma-separated attack names")
    args = ap.parse_args()
    cap = int(args.cap_gb * (1 << 30))
    work = Path(tempfile.mkdtemp(prefix="hostile-bench-"))
    try:
        bench = make_tiny_benchmark(work / "bench")
        gt = write_gt_submission(bench, work / "gt" / "gt", with_3d=False)
        attacks = build_attacks(work, bench, gt)
        only = {a for a in args.only.split(",") if a}
        trees = [("after", REPO, sys.executable)] + ([("before", args.before.resolve(), args.before_python)] if args.before else [])
        print(f"| attack | file size | {' | '.join(f'{n}: peak RSS MB | {n}: outcome' for n, _, _ in trees)} |")
        print("|---|---|" + "---|---|" * len(trees))
        for name, (target, what) in attacks.items():
            if only and name not in only and not name.startswith("baseline"):
                continue
            size = sum(p.stat().st_size for p in target.rglob("*") if p.is_file()) if target.is_dir() else target.stat().st_size
            cells = []
            for _tree, repo, python in trees:
                r = run(repo, python, target, bench, cap, args.timeout)
                outcome = f"{r['outcome'][:70]} ({r['problems']} problems, {r['text_bytes']} B text, {r['seconds']:.1f} s)"
                cells.append(f"{r['rss_mb']:.0f} | {outcome.replace('|', '/')}")
            print(f"| {name}: {what} | {size / 1e6:.2f} MB | {' | '.join(cells)} |", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
