"""The README's test command is what CI runs: keep them the same line."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    ci_lines = [ln.strip() for ln in (ROOT / ".ci" / "run").read_text().splitlines()]
    command = next(ln for ln in ci_lines if ln.startswith("bash scripts/setup.sh"))
    assert command in readme
