"""Table building and rendering: sort by PQ, x100 one decimal, best in bold, '-' without instances, reported marks."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from nerfseg.leaderboard.tables import (
    LeaderboardEntry,
    build_per_class_table,
    build_table,
    latex_escape,
    render,
)


def _entries() -> list[LeaderboardEntry]:
    return [
        LeaderboardEntry("Semantic_NeRF", {"miou": 0.612, "pq_things": 0.05, "binary_acc": 0.9, "binary_miou": 0.8},
                         team="a", semantic_only=True),
        LeaderboardEntry("Instance-NeRF", {"miou": 0.43, "pq_things": 0.324, "sq_things": 0.7, "rq_things": 0.44},
                         reported=True, source="Instance-NeRF paper, Table 1", dataset="3D-FRONT"),
        LeaderboardEntry("Ours & co", {"miou": 0.5004, "pq_things": 0.4, "sq_things": 0.8, "rq_things": 0.5,
                                       "pq_scene_things": 0.3, "binary_acc": 0.95, "binary_miou": 0.8},
                         team="b", uses_gt_masks=True,
                         per_class={"chair": {"iou": 0.5, "pq": 0.4}, "background": {"iou": 0.9, "pq": 0.8}}),
        LeaderboardEntry("DM-NeRF", {"miou": 0.45, "pq_things": 0.4, "binary_acc": None}, team="c"),
    ]


def test_table_sorts_by_pq_marks_best_and_hides_instance_metrics_of_semantic_methods() -> None:
    model = build_table(_entries(), "nerfseg-v1", "test")
    # measured rows are ranked; the paper's row (another dataset) is in its own section, never ranked
    assert [r.entry.method for r in model.rows] == ["Ours & co", "DM-NeRF", "Semantic_NeRF"]
    assert [r.entry.method for r in model.reported_rows] == ["Instance-NeRF"]
    assert not any(c.best for c in model.reported_rows[0].cells)
    by = {r.entry.method: r for r in model.rows + model.reported_rows}
    keys = [c.key for c in model.columns]
    cell = lambda m, k: by[m].cells[keys.index(k)]  # noqa: E731
    assert cell("Ours & co", "miou").text == "50.0" and not cell("Ours & co", "miou").best
    assert cell("Semantic_NeRF", "miou").best and cell("Semantic_NeRF", "pq_things").text == "-"
    assert cell("Ours & co", "pq_things").best and cell("DM-NeRF", "pq_things").best  # tie at 40.0: both bold
    assert cell("DM-NeRF", "binary_acc").text == "-" and not cell("DM-NeRF", "binary_acc").best
    assert by["Instance-NeRF"].marks == "†" and by["Ours & co"].marks == "‡"
    assert "nerfseg-v1" in model.title
    assert any("Instance-NeRF paper, Table 1" in n for n in model.footnotes)


def test_markdown_csv_json_html() -> None:
    model = build_table(_entries(), "nerfseg-v1", "test")
    md = render([model], "md")
    assert "| Method | mIoU | PQ | SQ | RQ | PQ^scene | Binary acc. | Binary mIoU |" in md
    assert "| Ours & co‡ | 50.0 | **40.0** | **80.0** | **50.0** | **30.0** | **95.0** | **80.0** |" in md
    assert "| Semantic\\_NeRF | **61.2** | - | - | - | - | 90.0 | **80.0** |" in md
    assert "Instance-NeRF†" in md and "protocol nerfseg-v1" in md
    assert "| Instance-NeRF† | 3D-FRONT | 43.0 | 32.4 | 70.0 | 44.0 | - | - | - |" in md  # unranked: no bold
    assert md.index("Reported in papers") > md.index("| Semantic\\_NeRF |")
    rows = list(csv.reader(io.StringIO(render([model], "csv"))))
    assert rows[0][:3] == ["method", "team", "mIoU"] and rows[0][-4:] == ["reported", "source", "section", "dataset"]
    assert rows[4][0] == "Instance-NeRF" and rows[4][-4:] == ["1", "Instance-NeRF paper, Table 1", "reported (not ranked)", "3D-FRONT"]
    assert [r[-2] for r in rows[1:4]] == ["measured"] * 3
    data = json.loads(render([model], "json"))["tables"][0]
    assert data["rows"][0]["values"]["pq_things"] == 40.0 and "pq_things" in data["rows"][0]["best"]
    assert data["rows"][2]["values"]["pq_things"] is None and len(data["rows"]) == 3
    assert data["reported_rows"][0]["method"] == "Instance-NeRF" and data["reported_rows"][0]["dataset"] == "3D-FRONT"
    page = render([model], "html")
    assert "<strong>40.0</strong>" in page and "Ours &amp; co" in page and "table.sortable" in page
    assert 'id="leaderboard-reported"' in page and page.index('data-method="Instance-NeRF"') > page.index('id="leaderboard-reported"')


def test_per_class_table_skips_reported_rows() -> None:
    entries = _entries()
    iou = build_per_class_table(entries, "nerfseg-v1", "test", "iou")
    assert len(iou.columns) == 11 and all(not r.entry.reported for r in iou.rows)
    ours = next(r for r in iou.rows if r.entry.method == "Ours & co")
    assert ours.cells[[c.key for c in iou.columns].index("chair")].text == "50.0"
    pq = build_per_class_table(entries, "nerfseg-v1", "test", "pq")
    assert "background" not in [c.key for c in pq.columns]


def test_latex_escapes_names() -> None:
    assert latex_escape("a_b & 50% #1 {x} ~^\\") == r"a\_b \& 50\% \#1 \{x\} \textasciitilde{}\textasciicircum{}\textbackslash{}"
    tex = render([build_table(_entries(), "nerfseg-v1", "test")], "latex")
    assert r"\toprule" in tex and r"\textbf{40.0}" in tex and r"Instance-NeRF$^\dagger$" in tex
    assert r"Ours \& co$^\ddagger$" in tex and r"Semantic\_NeRF" in tex


def test_latex_compiles_with_booktabs(tmp_path: Path) -> None:
    pdflatex = shutil.which("pdflatex")
    if pdflatex is None:
        pytest.skip("pdflatex not installed (apt-get install texlive-latex-base texlive-latex-recommended)")
    entries = _entries()
    models = [build_table(entries, "nerfseg-v1", "test"), build_per_class_table(entries, "nerfseg-v1", "test", "pq")]
    body = render(models, "latex")
    doc = "\\documentclass{article}\n\\usepackage[T1]{fontenc}\n\\usepackage{booktabs}\n\\usepackage[margin=1cm,landscape]{geometry}\n" \
          "\\begin{document}\n" + body + "\\end{document}\n"
    (tmp_path / "table.tex").write_text(doc)
    proc = subprocess.run([pdflatex, "-interaction=nonstopmode", "-halt-on-error", "table.tex"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert (tmp_path / "table.pdf").stat().st_size > 1000
