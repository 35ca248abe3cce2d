"""The documentation in docs/ is checked, not trusted: links resolve, the contract page agrees with
nerfseg/spec.py, the metrics page lists every key of real reports, and the Python examples run.

Docs are plain Markdown (GitHub renders them; no docs build step), so this file is the "docs build" of CI.
The link check covers every docs/**/*.md and README.md generically, so new pages are checked too.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from nerfseg import spec

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted([ROOT / "README.md", *DOCS.rglob("*.md")])

_FENCE = re.compile(r"^(```|~~~)")
_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def _prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) outside fenced code blocks, with inline code spans blanked out."""
    out, fenced = [], False
    for no, line in enumerate(text.splitlines(), 1):
        if _FENCE.match(line.strip()):
            fenced = not fenced
            continue
        if not fenced:
            out.append((no, re.sub(r"`[^`]*`", lambda m: "`" + " " * (len(m.group()) - 2) + "`", line)))  # same offsets
    return out


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: link syntax and formatting removed, lower case, punctuation
    other than '-' and '_' dropped, spaces to '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = text.replace("`", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for _, line in _heading_lines(path):
        base = github_slug(line)
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def _heading_lines(path: Path) -> list[tuple[int, str]]:
    """Headings outside code blocks (inline code kept: GitHub keeps its text in the anchor)."""
    out, fenced = [], False
    for no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if _FENCE.match(line.strip()):
            fenced = not fenced
        elif not fenced and (m := _HEADING.match(line)):
            out.append((no, m.group(2)))
    return out


def links(path: Path) -> list[tuple[int, str]]:
    text = path.read_text(encoding="utf-8")
    raw_lines = text.splitlines()
    found = []
    for no, blanked in _prose_lines(text):
        line = raw_lines[no - 1]
        # match on the line with code spans blanked, read targets from the original (same offsets)
        for m in _LINK.finditer(blanked):
            found.append((no, line[m.start(1) : m.end(1)]))
    return found


def test_slugs_follow_github() -> None:
    assert github_slug("3.1 gt3d.h5") == "31-gt3dh5"
    assert github_slug("Configs, presets and --set") == "configs-presets-and---set"
    assert github_slug("PQ^scene") == "pqscene"
    assert github_slug("`summary`") == "summary"


def broken_links(page: Path) -> list[str]:
    """Relative links of ``page`` whose file or ``#anchor`` does not exist (external URLs are not fetched)."""
    broken = []
    for no, target in links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto: ... (no network in tests)
            continue
        file_part, _, anchor = target.partition("#")
        dest = page if not file_part else (page.parent / file_part).resolve()
        if not dest.exists():
            broken.append(f"{page.name}:{no}: {target} -> {dest} does not exist")
            continue
        if anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{page.name}:{no}: {target} -> no heading with anchor #{anchor} in {dest.name}")
    return broken


@pytest.mark.parametrize("page", PAGES, ids=[p.relative_to(ROOT).as_posix() for p in PAGES])
def test_every_relative_link_and_anchor_resolves(page: Path) -> None:
    broken = broken_links(page)
    assert not broken, "\n".join(broken)


def test_the_link_check_finds_broken_links(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Other page\n\n## A `code` heading\n")
    page = tmp_path / "page.md"
    page.write_text(
        "# Title\n[ok](other.md#a-code-heading) [ok](#title) [web](https://example.org/x) `[not a link](nope.md)`\n"
        "[missing file](nope.md) [missing anchor](other.md#nope) [missing here](#nope)\n"
        "```\n[in a code block](nope.md)\n```\n"
    )
    found = broken_links(page)
    assert len(found) == 3 and all(":3:" in b for b in found), found


def test_every_docs_page_is_reachable_from_the_readme() -> None:
    reached, todo = set(), [ROOT / "README.md"]
    while todo:
        page = todo.pop()
        if page in reached:
            continue
        reached.add(page)
        for _, target in links(page):
            file_part = target.partition("#")[0]
            if file_part.endswith(".md") and not re.match(r"^[a-z]+:", file_part):
                dest = (page.parent / file_part).resolve()
                if dest.exists():
                    todo.append(dest)
    orphans = [p.relative_to(ROOT).as_posix() for p in DOCS.glob("*.md") if p.resolve() not in reached]
    assert not orphans, f"docs pages no link leads to from README.md: {orphans}"


def test_docs_and_readme_cite_the_projects_own_contract() -> None:
    for page in PAGES:
        assert "SPEC.md" not in page.read_text(encoding="utf-8"), f"{page.name} cites SPEC.md, which users do not have"


# ---------------------------------------------------------------------------------------------
# contract.md <-> nerfseg/spec.py


def _section(text: str, heading: str) -> str:
    start = text.index(heading)
    nxt = re.search(r"^## ", text[start + len(heading) :], re.M)
    return text[start : start + len(heading) + (nxt.start() if nxt else len(text))]


def _code_blocks(text: str) -> list[str]:
    return re.findall(r"^```[a-z]*\n(.*?)^```", text, re.M | re.S)


CONTRACT = (DOCS / "contract.md").read_text(encoding="utf-8")


def test_contract_class_table_is_spec_class_table() -> None:
    rows = re.findall(r"^\| (\d+) \| (\d+|-) \| (\w+) \|$", _section(CONTRACT, "## 2. Classes"), re.M)
    table = tuple((int(i), None if nyu == "-" else int(nyu), name) for i, nyu, name in rows)
    assert table == spec.CLASS_TABLE


def _spec_value_text(value: object) -> str:
    return ", ".join(map(str, value)) if isinstance(value, tuple) else str(value)


def test_contract_names_table_is_spec() -> None:
    rows = dict(re.findall(r"^\| `([A-Z0-9_]+)` \| `([^`]*)` \|$", _section(CONTRACT, "## Names in code"), re.M))
    assert rows, "no names table"
    for const, value in rows.items():
        assert hasattr(spec, const), f"contract.md names spec.{const}, which does not exist"
        assert _spec_value_text(getattr(spec, const)) == value, f"spec.{const} is {getattr(spec, const)!r}, contract.md says {value!r}"
    layout = {k for k in vars(spec) if re.fullmatch(r"[A-Z0-9_]+_(DIR|JSON|H5)", k)}
    assert layout <= set(rows), f"spec names missing from contract.md: {sorted(layout - set(rows))}"


def _tree_names(block: str, max_indent: int = 10) -> set[str]:
    names = set()
    for line in block.splitlines():
        indent = len(line) - len(line.lstrip())
        if not line.strip() or indent >= max_indent:
            continue  # a description continues on a deeply indented line
        for part in line.split()[0].strip("/").split("/"):
            names.add(part)
    return names


def test_contract_layout_trees_use_spec_names() -> None:
    from nerfseg.instance_nerf.grids import FEATURES_DIR

    known = {v for k, v in vars(spec).items() if re.fullmatch(r"[A-Z0-9_]+_(DIR|JSON|H5)", k)} | {FEATURES_DIR}
    placeholder = re.compile(r"^<[a-z_]+>(\.png|\.npz)?$")
    benchmark_tree = _code_blocks(_section(CONTRACT, "## 3. Benchmark layout"))[0]
    submission_tree = _code_blocks(_section(CONTRACT, "## 4. Submissions"))[0]
    for block in (benchmark_tree, submission_tree):
        names = _tree_names(block)
        unknown = {n for n in names if n not in known and not placeholder.match(n)}
        assert not unknown, f"contract.md layout names not in nerfseg/spec.py: {unknown}"
    assert {spec.BENCHMARK_JSON, spec.TRANSFORMS_JSON, spec.IMAGES_DIR, spec.DEPTH_DIR, spec.INSTANCE_DIR, spec.SEMANTIC_DIR,
            spec.PANOPTIC_DIR, spec.PANOPTIC_JSON, spec.GT3D_H5, spec.PRIORS_DIR, spec.SCENES_DIR} <= _tree_names(benchmark_tree)
    assert {spec.META_JSON, spec.PANOPTIC_DIR, spec.PANOPTIC_JSON, spec.INSTANCES3D_H5} <= _tree_names(submission_tree)


def test_contract_submission_section_lists_the_validators_rules() -> None:
    from nerfseg.evaluation.submission import META_OPTIONAL_STR, META_REQUIRED, Limits

    section = _section(CONTRACT, "## 4. Submissions")
    for key in META_REQUIRED:
        assert f'"{key}"' in section, f"meta.json key {key!r} is required by the validator but not in contract.md"
    for key in META_OPTIONAL_STR:
        assert f'"{key}"' in section, f"meta.json key {key!r} is accepted by the validator but not in contract.md"
    limits = Limits()
    assert f"{limits.max_total_bytes >> 30} GiB" in section and f"{limits.max_file_bytes >> 20} MiB" in section
    assert f"{limits.max_members:,}" in section
    assert f"every {spec.TEST_EVERY}th view" in CONTRACT


# ---------------------------------------------------------------------------------------------
# metrics.md <-> the evaluator's real reports

METRICS = (DOCS / "metrics.md").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """A report of each protocol from the tiny benchmark, written through `nerfseg eval --json`."""
    from click.testing import CliRunner

    from nerfseg.evaluation.reference import write_prior_submission
    from nerfseg.cli import cli
    from tests.evaluation.fixtures import make_tiny_benchmark

    tmp = tmp_path_factory.mktemp("docs_reports")
    bench = make_tiny_benchmark(tmp / "bench")
    prior = write_prior_submission(bench, "gt", tmp / "prior")
    out = {}
    for protocol in ("nerfseg-v1", "instance-nerf", "panoptic-lifting"):
        # the GT submission has instances3d.h5 (3D keys); the 2D prior checks the keys of a 2D-only submission
        args = ["--method", "gt"] if protocol != "panoptic-lifting" else ["--method", "prior2d", "--predictions", str(prior)]
        path = tmp / f"{protocol}.json"
        result = CliRunner().invoke(cli, ["eval", *args, "--data", str(bench), "--protocol", protocol, "--json", str(path)])
        assert result.exit_code == 0, result.output
        out[protocol] = json.loads(path.read_text())
    return out


def _documented(key: str) -> bool:
    return f"`{key}`" in METRICS


def test_metrics_page_documents_every_protocol() -> None:
    from nerfseg.evaluation.protocols import PROTOCOLS

    rows = set(re.findall(r"^\| `([a-z0-9.-]+)` \|", _section(METRICS, "## Protocols"), re.M))
    assert rows == set(PROTOCOLS)


def test_metrics_page_documents_every_report_key(reports: dict[str, dict]) -> None:
    missing = set()
    for protocol, report in reports.items():
        groups = {"top level": report, "summary": report["summary"], "counts": report["counts"], "details": report["details"]}
        for name, row in [*report["per_class"].items(), *report["per_scene"].items()]:
            groups[name] = row
            for sub in (row.get("per_class") or {}).values():  # panoptic-lifting's per-scene per-class terms
                groups[f"{name}.per_class"] = sub
        for group, keys in groups.items():
            missing |= {f"{protocol} {group}: {k}" for k in keys if not _documented(k)}
    assert not missing, "report keys not documented in docs/metrics.md:\n" + "\n".join(sorted(missing))


def test_metrics_page_states_the_facts_it_claims(reports: dict[str, dict]) -> None:
    """pq = Things, pq_scene = All, fractions in the JSON (x100 in tables): checked on the real report."""
    from nerfseg.evaluation.protocols import SUMMARY_KEYS
    from nerfseg.evaluation.report import TABLE_COLUMNS

    v1 = reports["nerfseg-v1"]
    assert set(v1["summary"]) == set(SUMMARY_KEYS)
    assert all(v is None or 0.0 <= v <= 1.0 for v in v1["summary"].values())
    assert v1["summary"]["pq"] == v1["summary"]["pq_things"]
    assert dict(TABLE_COLUMNS)["pq_scene_things"] == "PQ^scene" and dict(TABLE_COLUMNS)["pq"] == "PQ"
    assert "| `pq_scene` | PQ^scene over **All**" in METRICS
    pl = reports["panoptic-lifting"]["summary"]
    assert pl["pq"] == pl["pq_scene"] and pl["pq_things"] is None


# ---------------------------------------------------------------------------------------------
# the examples run


def test_write_a_method_shows_the_tested_example() -> None:
    page = (DOCS / "write-a-method.md").read_text(encoding="utf-8")
    example = DOCS / "examples" / "plugin"
    assert (example / "nerfseg_example_method.py").read_text() in _code_blocks(page)
    assert (example / "pyproject.toml").read_text() in _code_blocks(page)


def test_python_api_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("torch")
    from tests.evaluation.fixtures import make_tiny_benchmark

    bench = make_tiny_benchmark(tmp_path / "demo_benchmark", priors=("sim-m2f",))
    monkeypatch.chdir(tmp_path)
    page = (DOCS / "python-api.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```python\n(.*?)^```", page, re.M | re.S)
    assert len(blocks) >= 5
    namespace: dict = {"__name__": "docs_example"}
    for i, block in enumerate(blocks):
        code = block.replace('Path("demo_benchmark")', f"Path({str(bench)!r})")
        try:
            exec(compile(code, f"docs/python-api.md block {i + 1}", "exec"), namespace)
        except Exception as exc:  # name the block: the traceback points into the page
            raise AssertionError(f"python-api.md block {i + 1} failed: {type(exc).__name__}: {exc}") from exc
    assert namespace["report"]["summary"]["pq"] is not None
    assert (tmp_path / "my_submission" / "meta.json").is_file()
