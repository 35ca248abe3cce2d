"""The built wheel installs one import name, ``nerfseg``, and everything is importable under it.

Why: a package that installs generic top-level modules (``evaluation``, ``baselines``, ...) breaks, or is
broken by, any other package with such a module (issue 15). This builds the wheel the way a user's pip
would, installs it into an empty ``--target`` folder and imports from there in a fresh interpreter
whose ``sys.path`` holds neither the checkout nor an editable install of it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OLD_TOP_LEVEL = ("evaluation", "baselines", "leaderboard", "dataset_tools", "instance_nerf")

#: the checkup run in the fresh interpreter (``python -S``: no site, so no .pth file and no editable finder)
_PROBE = r"""
import importlib, importlib.util, json, sys
target, site_dirs, old = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
sys.path[:] = [target] + [p for p in sys.path if p and "site-packages" not in p]
found_old = {n: importlib.util.find_spec(n).origin for n in old if importlib.util.find_spec(n) is not None}
sys.path += site_dirs  # the dependencies (numpy, click, ...), added without processing their .pth files
import nerfseg, nerfseg.evaluation, nerfseg.cli
missing = []
for verb, where in nerfseg.cli.COMMANDS.items():
    module = where.partition(":")[0]
    if importlib.util.find_spec(module) is None:
        missing.append(f"{verb}: {module}")
print(json.dumps({"old": found_old, "nerfseg": nerfseg.__file__, "evaluation": nerfseg.evaluation.__file__,
                  "missing_commands": missing}))
"""


def _source_copy(dest: Path) -> Path:
    """The checkout's files without build leftovers: a stale ``build/lib`` would otherwise end up in the
    wheel. Tracked and untracked-but-not-ignored files when git is there, else the tree minus caches."""
    try:
        listed = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z", "-co", "--exclude-standard"],
                                check=True, capture_output=True, text=True).stdout.split("\0")
    except (OSError, subprocess.CalledProcessError):
        listed = None
    if listed is None:
        shutil.copytree(ROOT, dest, ignore=shutil.ignore_patterns(
            ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", "runs", "*.h5", "*.npz"))
        return dest
    for rel in filter(None, listed):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


@pytest.mark.slow
def test_wheel_installs_only_the_nerfseg_namespace(tmp_path: Path) -> None:
    src = _source_copy(tmp_path / "src")
    wheels = tmp_path / "wheels"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(wheels), str(src)], capture_output=True, text=True)
    assert build.returncode == 0, f"pip wheel failed:\n{build.stdout}\n{build.stderr}"
    (wheel,) = wheels.glob("nerfseg-*.whl")

    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
    top = {n.split("/", 1)[0] for n in names}
    stray = {t for t in top if t != "nerfseg" and not (t.startswith("nerfseg-") and t.endswith(".dist-info"))}
    assert not stray, f"{wheel.name} installs top-level names other than nerfseg: {sorted(stray)}"
    for data in ("nerfseg/data/front3d_classes.json", "nerfseg/evaluation/__init__.py", "nerfseg/leaderboard/server.py"):
        assert data in names, f"{wheel.name} lacks {data}"

    target = tmp_path / "installed"
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q",
                              "--target", str(target), str(wheel)], capture_output=True, text=True)
    assert install.returncode == 0, f"pip install --target failed:\n{install.stdout}\n{install.stderr}"

    site_dirs = [p for p in {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]} if p]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
    probe = subprocess.run([sys.executable, "-S", "-c", _PROBE, str(target), json.dumps(site_dirs),
                            json.dumps(OLD_TOP_LEVEL)], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert probe.returncode == 0, f"importing from the installed wheel failed:\n{probe.stderr}"
    found = json.loads(probe.stdout.strip().splitlines()[-1])
    assert found["old"] == {}, f"old top-level names importable next to the installed wheel: {found['old']}"
    assert Path(found["nerfseg"]).is_relative_to(target) and Path(found["evaluation"]).is_relative_to(target)
    assert found["missing_commands"] == [], f"nerfseg.cli.COMMANDS names modules not in the wheel: {found['missing_commands']}"
