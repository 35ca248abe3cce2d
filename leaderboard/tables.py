"""Leaderboard tables in the paper's Table 1 layout, rendered as markdown, CSV, HTML, LaTeX (booktabs) or JSON.

Why a table model and several renderers: the same numbers go into a README, a spreadsheet, the web page and a
paper. Building the model once (sorting, best-per-column, "-" for methods without instances, footnotes for rows
copied from papers) keeps every format saying the same thing; renderers only decide the markup.

Numbers are stored as fractions in [0, 1] and shown x100 with one decimal, like the paper. Pure Python: this
module needs neither the database nor the web stack.
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from nerfseg.spec import CLASS_NAMES, THING_CLASSES

FORMATS = ("md", "csv", "html", "latex", "json")
REPORTED_MARK = "†"
GT_MASKS_MARK = "‡"


@dataclass
class LeaderboardEntry:
    """One method's numbers for one protocol and split: evaluated here, or reported in a paper."""

    method: str
    values: dict[str, float | None]  # summary metric key (report["summary"] names) -> fraction or None
    team: str | None = None
    reported: bool = False  # True: copied from a paper, not evaluated here
    source: str | None = None  # where a reported row comes from ("paper, Table 1")
    semantic_only: bool = False  # the method produces no instances: instance columns show "-"
    uses_gt_masks: bool = False
    method_id: int | None = None
    submission_id: int | None = None
    submission_key: str | None = None
    finished_at: float | None = None
    per_class: dict[str, dict[str, float | None]] = field(default_factory=dict)


@dataclass(frozen=True)
class Column:
    """A table column: which summary metric it shows and how each format spells its header."""

    key: str
    header: str
    latex: str
    html: str
    instance: bool  # an instance metric: "-" for semantic-only methods


#: The paper's Table 1 columns (instance columns over the 10 thing classes, the paper's PQ), plus PQ^scene.
MAIN_COLUMNS: tuple[Column, ...] = (
    Column("miou", "mIoU", "mIoU", "mIoU", False),
    Column("pq_things", "PQ", "PQ", "PQ", True),
    Column("sq_things", "SQ", "SQ", "SQ", True),
    Column("rq_things", "RQ", "RQ", "RQ", True),
    Column("pq_scene_things", "PQ^scene", r"PQ$^{\mathrm{scene}}$", "PQ<sup>scene</sup>", True),
    Column("binary_acc", "Binary acc.", "Binary acc.", "Binary acc.", False),
    Column("binary_miou", "Binary mIoU", "Binary mIoU", "Binary mIoU", False),
)
MAIN_KEYS: tuple[str, ...] = tuple(c.key for c in MAIN_COLUMNS)
SORT_KEY = "pq_things"


@dataclass
class Cell:
    value: float | None  # fraction, None when not available or not applicable
    text: str  # x100 with one decimal, or "-"
    best: bool = False


@dataclass
class TableRow:
    label: str
    cells: list[Cell]
    entry: LeaderboardEntry
    marks: str = ""  # footnote marks after the label (REPORTED_MARK, GT_MASKS_MARK)


@dataclass
class TableModel:
    """What every renderer draws: a title, columns, sorted rows with best cells marked, and footnotes."""

    name: str  # machine name: "leaderboard", "per_class_iou", ...
    title: str
    columns: list[Column]
    rows: list[TableRow]
    footnotes: list[str]
    protocol: str
    split: str


# ---------------------------------------------------------------------------------------------
# Building


def finite_or_none(value: Any) -> float | None:
    """A metric value as a float, or None for missing/NaN/non-numeric (shown as '-')."""
    if value is None or isinstance(value, bool):
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def format_value(value: float | None) -> str:
    """A fraction shown as the paper does: x100, one decimal; missing -> '-'."""
    v = finite_or_none(value)
    return "-" if v is None else f"{100.0 * v:.1f}"


def _mark_best(rows: list[TableRow], n_columns: int) -> None:
    """Bold the best value of each column; ties at the shown precision are all bold (a reader cannot tell them apart)."""
    for j in range(n_columns):
        shown = [round(100.0 * r.cells[j].value, 1) for r in rows if r.cells[j].value is not None]
        if not shown:
            continue
        best = max(shown)
        if best <= 0.0:  # nothing to praise in a column of zeros
            continue
        for r in rows:
            c = r.cells[j]
            c.best = c.value is not None and round(100.0 * c.value, 1) == best


def _labels(entries: Sequence[LeaderboardEntry]) -> list[str]:
    """Method names, with the team added only where two teams use the same name."""
    counts: dict[str, int] = {}
    for e in entries:
        counts[e.method] = counts.get(e.method, 0) + 1
    return [f"{e.method} ({e.team})" if counts[e.method] > 1 and e.team else e.method for e in entries]


def _sort_entries(entries: Sequence[LeaderboardEntry], key: str) -> list[LeaderboardEntry]:
    def sort_key(e: LeaderboardEntry) -> tuple:
        # PQ first; ties go to multi-view consistency (PQ^scene), then mIoU; rows without a value go last
        out: list[Any] = []
        for k, instance in ((key, True), ("pq_scene_things", True), ("miou", False)):
            v = None if (instance and e.semantic_only) else finite_or_none(e.values.get(k))
            out += [v is None, -(v or 0.0)]
        return (*out, e.method.lower(), e.team or "")

    return sorted(entries, key=sort_key)


def _footnotes(rows: list[TableRow]) -> list[str]:
    notes = []
    reported = [r for r in rows if r.entry.reported]
    if reported:
        sources = "; ".join(f"{r.label}: {r.entry.source}" for r in reported)
        notes.append(f"{REPORTED_MARK} Reported in the cited source, not evaluated here ({sources}).")
    if any(r.entry.uses_gt_masks for r in rows):
        notes.append(f"{GT_MASKS_MARK} Uses ground-truth masks.")
    return notes


def build_table(entries: Sequence[LeaderboardEntry], protocol: str, split: str) -> TableModel:
    """The paper's Table 1: one row per method, sorted by PQ (things), best value per column marked."""
    ordered = _sort_entries(entries, SORT_KEY)
    labels = _labels(ordered)
    rows = []
    for entry, label in zip(ordered, labels, strict=True):
        cells = []
        for col in MAIN_COLUMNS:
            v = None if (col.instance and entry.semantic_only) else finite_or_none(entry.values.get(col.key))
            cells.append(Cell(v, format_value(v)))
        marks = (REPORTED_MARK if entry.reported else "") + (GT_MASKS_MARK if entry.uses_gt_masks else "")
        rows.append(TableRow(label, cells, entry, marks))
    _mark_best(rows, len(MAIN_COLUMNS))
    notes = _footnotes(rows)
    notes.append(
        "Values x100. PQ, SQ, RQ and PQ^scene over the 10 object (thing) classes; "
        "'-': the method produces no instances. Sorted by PQ."
    )
    title = f"nerfseg leaderboard: protocol {protocol}, {split} split"
    return TableModel("leaderboard", title, list(MAIN_COLUMNS), rows, notes, protocol, split)


def build_per_class_table(
    entries: Sequence[LeaderboardEntry], protocol: str, split: str, metric: str = "iou"
) -> TableModel:
    """Per-class numbers of the evaluated rows (reported rows have none): IoU over 11 classes, PQ over things."""
    if metric == "iou":
        class_names = list(CLASS_NAMES)
    else:
        class_names = [CLASS_NAMES[i] for i in THING_CLASSES]
    columns = [Column(name, name, name.replace("_", r"\_"), html.escape(name), metric != "iou") for name in class_names]
    evaluated = [e for e in entries if not e.reported]
    ordered = _sort_entries(evaluated, SORT_KEY)
    rows = []
    for entry, label in zip(ordered, _labels(ordered), strict=True):
        cells = []
        for col in columns:
            raw = entry.per_class.get(col.key, {}).get(metric)
            v = None if (col.instance and entry.semantic_only) else finite_or_none(raw)
            cells.append(Cell(v, format_value(v)))
        rows.append(TableRow(label, cells, entry, GT_MASKS_MARK if entry.uses_gt_masks else ""))
    _mark_best(rows, len(columns))
    what = "IoU" if metric == "iou" else metric.upper()
    notes = _footnotes(rows) + [f"Per-class {what} x100; '-': class absent or no instances."]
    title = f"nerfseg per-class {what}: protocol {protocol}, {split} split"
    return TableModel(f"per_class_{metric}", title, columns, rows, notes, protocol, split)


# ---------------------------------------------------------------------------------------------
# Markdown


def _md_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("*", "\\*").replace("_", "\\_")


def render_markdown(model: TableModel) -> str:
    lines = [f"**{_md_escape(model.title)}**", ""]
    lines.append("| Method | " + " | ".join(_md_escape(c.header) for c in model.columns) + " |")
    lines.append("|:--|" + "|".join("--:" for _ in model.columns) + "|")
    for row in model.rows:
        cells = [f"**{c.text}**" if c.best else c.text for c in row.cells]
        lines.append(f"| {_md_escape(row.label)}{row.marks} | " + " | ".join(cells) + " |")
    if not model.rows:
        lines.append("| (no results yet) |" + "|".join(" " for _ in model.columns) + "|")
    for note in model.footnotes:  # one paragraph each
        lines += ["", _md_escape(note)]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# CSV


def render_csv(model: TableModel) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["method", "team", *[c.header for c in model.columns], "reported", "source"])
    for row in model.rows:
        e = row.entry
        w.writerow([row.label, e.team or "", *[c.text for c in row.cells], int(e.reported), e.source or ""])
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------
# HTML

#: Vanilla JS that sorts any ``table.sortable`` by a clicked header; missing values ("-") always sort last.
SORT_SCRIPT = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  var heads = table.querySelectorAll("thead th");
  heads.forEach(function (th, col) {
    th.style.cursor = "pointer";
    th.addEventListener("click", function () {
      var numeric = th.dataset.sort === "num";
      var dir = th.dataset.dir === (numeric ? "desc" : "asc") ? (numeric ? "asc" : "desc") : (numeric ? "desc" : "asc");
      heads.forEach(function (h) { delete h.dataset.dir; h.removeAttribute("aria-sort"); });
      th.dataset.dir = dir;
      th.setAttribute("aria-sort", dir === "asc" ? "ascending" : "descending");
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[col].dataset.value, y = b.cells[col].dataset.value;
        if (numeric) {
          var xm = x === undefined || x === "", ym = y === undefined || y === "";
          if (xm || ym) { return xm === ym ? 0 : (xm ? 1 : -1); }
          x = parseFloat(x); y = parseFloat(y);
        } else { x = (x || "").toLowerCase(); y = (y || "").toLowerCase(); }
        var c = x < y ? -1 : (x > y ? 1 : 0);
        return dir === "asc" ? c : -c;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
"""

TABLE_CSS = """
table.leaderboard { border-collapse: collapse; margin: 1em 0; }
table.leaderboard caption { text-align: left; font-weight: bold; margin-bottom: .4em; }
table.leaderboard th, table.leaderboard td { padding: .25em .7em; border-bottom: 1px solid #ddd; }
table.leaderboard td.num, table.leaderboard th.num { text-align: right; font-variant-numeric: tabular-nums; }
table.leaderboard thead th { border-bottom: 2px solid #333; user-select: none; }
table.leaderboard tr.reported td { color: #555; font-style: italic; }
.footnotes { font-size: 90%; color: #444; }
"""


def render_html_table(model: TableModel, method_href: Callable[[TableRow], str | None] | None = None) -> str:
    """A sortable ``<table>``; ``method_href`` turns a row's label into a link (the server's method pages)."""
    esc = html.escape
    out = [f'<table class="leaderboard sortable" id="{esc(model.name)}">', f"<caption>{esc(model.title)}</caption>"]
    out.append('<thead><tr><th data-sort="text">Method</th>')
    out.extend(f'<th class="num" data-sort="num">{c.html}</th>' for c in model.columns)
    out.append("</tr></thead><tbody>")
    for row in model.rows:
        e = row.entry
        href = method_href(row) if method_href else None
        label = esc(row.label)
        if href:
            label = f'<a href="{esc(href)}">{label}</a>'
        if e.reported:
            label += f'<sup title="{esc("reported: " + (e.source or ""))}">{REPORTED_MARK}</sup>'
        if e.uses_gt_masks:
            label += f'<sup title="uses ground-truth masks">{GT_MASKS_MARK}</sup>'
        cls = ' class="reported"' if e.reported else ""
        out.append(f'<tr{cls} data-method="{esc(e.method)}"><td data-value="{esc(row.label)}">{label}</td>')
        for c in row.cells:
            value = "" if c.value is None else f"{100.0 * c.value:.6f}"
            text = f"<strong>{c.text}</strong>" if c.best else c.text
            out.append(f'<td class="num" data-value="{value}">{text}</td>')
        out.append("</tr>")
    out.append("</tbody></table>")
    if model.footnotes:
        out.append('<div class="footnotes">' + "".join(f"<p>{esc(n)}</p>" for n in model.footnotes) + "</div>")
    return "\n".join(out)


def render_html(models: Sequence[TableModel]) -> str:
    """A standalone HTML document (for ``leaderboard show --format html``), sortable without a server."""
    title = html.escape(models[0].title if models else "nerfseg leaderboard")
    body = "\n".join(render_html_table(m) for m in models)
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f"<style>{TABLE_CSS}</style></head>\n<body>\n{body}\n<script>{SORT_SCRIPT}</script>\n</body></html>\n"
    )


# ---------------------------------------------------------------------------------------------
# LaTeX

_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    REPORTED_MARK: r"$^\dagger$",
    GT_MASKS_MARK: r"$^\ddagger$",
}


def latex_escape(text: str) -> str:
    """Escape text for LaTeX so a method name like ``my_net & co`` cannot break the table."""
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def render_latex(model: TableModel) -> str:
    """A booktabs ``table`` (needs ``\\usepackage{booktabs}``); best values in bold, footnotes under the rule."""
    n = len(model.columns)
    lines = [
        "% nerfseg leaderboard table; needs \\usepackage{booktabs}",
        r"\begin{table}[t]",
        r"\centering",
        r"\caption{" + latex_escape(model.title) + r" ($\times$100).}",
        r"\begin{tabular}{l" + "r" * n + "}",
        r"\toprule",
        "Method & " + " & ".join(c.latex for c in model.columns) + r" \\",
        r"\midrule",
    ]
    for row in model.rows:
        cells = [rf"\textbf{{{c.text}}}" if c.best else c.text for c in row.cells]
        lines.append(latex_escape(row.label + row.marks) + " & " + " & ".join(cells) + r" \\")
    if not model.rows:
        lines.append(r"\multicolumn{" + str(n + 1) + r"}{l}{(no results yet)} \\")
    lines.append(r"\bottomrule")
    lines.append(r"\end{tabular}")
    if model.footnotes:
        lines.append(r"\par\smallskip")
        lines.append(r"{\footnotesize " + r" \\ ".join(latex_escape(f) for f in model.footnotes) + "}")
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# JSON


def table_to_dict(model: TableModel) -> dict[str, Any]:
    rows = []
    for row in model.rows:
        e = row.entry
        rows.append(
            {
                "method": e.method,
                "label": row.label,
                "team": e.team,
                "reported": e.reported,
                "source": e.source,
                "semantic_only": e.semantic_only,
                "uses_gt_masks": e.uses_gt_masks,
                "method_id": e.method_id,
                "submission_id": e.submission_id,
                "values": {c.key: (None if cell.value is None else round(100.0 * cell.value, 1))
                           for c, cell in zip(model.columns, row.cells, strict=True)},
                "raw": {c.key: cell.value for c, cell in zip(model.columns, row.cells, strict=True)},
                "best": [c.key for c, cell in zip(model.columns, row.cells, strict=True) if cell.best],
            }
        )
    return {
        "name": model.name,
        "title": model.title,
        "protocol": model.protocol,
        "split": model.split,
        "columns": [{"key": c.key, "header": c.header} for c in model.columns],
        "rows": rows,
        "footnotes": model.footnotes,
    }


def render(models: Sequence[TableModel], fmt: str) -> str:
    """Render one or more tables (the leaderboard, then per-class tables) in one of ``FORMATS``."""
    if fmt == "md":
        return "\n".join(render_markdown(m) for m in models)
    if fmt == "csv":
        parts = []
        for i, m in enumerate(models):
            parts.append(("" if i == 0 else f"\n# {m.title}\n") + render_csv(m))
        return "".join(parts)
    if fmt == "html":
        return render_html(models)
    if fmt == "latex":
        return "\n".join(render_latex(m) for m in models)
    if fmt == "json":
        return json.dumps({"tables": [table_to_dict(m) for m in models]}, indent=2) + "\n"
    raise ValueError(f"unknown table format {fmt!r}; expected one of {FORMATS}")
