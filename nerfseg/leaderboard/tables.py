# Over 600 lines on purpose: the one table model and its five renderers stay together, so every format agrees.
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
import re
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
    benchmark: str | None = None  # GT fingerprint of the benchmark a measured row was evaluated on
    benchmark_name: str | None = None
    dataset: str | None = None  # a reported row: the dataset the source measured on (e.g. "3D-FRONT")
    submitted_at: float | None = None  # a measured row: when its submission was uploaded (unix time)
    links: dict[str, str] = field(default_factory=dict)  # "paper" / "code" / "project" -> http(s) URL (meta_links)


#: meta.json keys that become links on the leaderboard page, and the link's label
META_LINK_KEYS: tuple[tuple[str, str], ...] = (("paper", "paper"), ("code", "code"), ("url", "project"))
MAX_URL_CHARS = 2000


def safe_url(url: Any) -> str | None:
    """An http(s) URL from a submitter's meta.json, or None: no ``javascript:`` or ``data:`` links, nothing
    with whitespace or control characters (a URL is one token), nothing absurdly long."""
    if not isinstance(url, str):
        return None
    url = url.strip()
    if not url.lower().startswith(("http://", "https://")) or len(url) > MAX_URL_CHARS:
        return None
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        return None
    return url


def meta_links(meta: dict[str, Any] | None) -> dict[str, str]:
    """The links a row shows, from meta.json's ``paper``, ``code`` and ``url`` (project page), http(s) only;
    a project page equal to the paper or code link is not repeated."""
    out: dict[str, str] = {}
    for key, label in META_LINK_KEYS:
        url = safe_url((meta or {}).get(key))
        if url and url not in out.values():
            out[label] = url
    return out


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
    """What every renderer draws: a title, columns, sorted rows with best cells marked, and footnotes.

    ``rows`` are the results measured on one benchmark (``benchmark``, its name in the title), ranked.
    ``reported_rows`` are numbers copied from papers, usually on another dataset: every renderer draws them in
    their own, labelled section, unranked and never competing for the best value of a column.
    """

    name: str  # machine name: "leaderboard", "per_class_iou", ...
    title: str
    columns: list[Column]
    rows: list[TableRow]
    footnotes: list[str]
    protocol: str
    split: str
    reported_rows: list[TableRow] = field(default_factory=list)
    benchmark: str | None = None  # the benchmark's label ("nerfseg-demo (6 scenes, mini, seed 0) [GT 1a2b...]")

    @property
    def reported_title(self) -> str:
        return "Reported in papers, not measured on this benchmark (not ranked)"


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
        sources = "; ".join(f"{r.label}: {r.entry.source}" + (f", on {r.entry.dataset}" if r.entry.dataset else "")
                            for r in reported)
        notes.append(f"{REPORTED_MARK} Reported in the cited source, not evaluated here ({sources}).")
    if any(r.entry.uses_gt_masks for r in rows):
        notes.append(f"{GT_MASKS_MARK} Uses ground-truth masks.")
    return notes


def benchmark_label(name: str | None, fingerprint: str | None) -> str:
    """How a page names a benchmark: its name and the start of its GT fingerprint (two builds differ there)."""
    if fingerprint is None:
        return "benchmark not recorded (results from before benchmark identities)"
    return f"{name or 'unnamed benchmark'} [GT {fingerprint[:12]}]"


def build_table(entries: Sequence[LeaderboardEntry], protocol: str, split: str,
                benchmark: str | None = None) -> TableModel:
    """The paper's Table 1: one row per method measured on one benchmark, sorted by PQ (things), best value per
    column marked; reported rows (copied from papers) in their own unranked section.

    ``benchmark`` is the label in the title; by default the benchmark the measured rows name.
    """
    measured = [e for e in entries if not e.reported]
    reported = sorted((e for e in entries if e.reported), key=lambda e: ((e.dataset or "").lower(), e.method.lower()))
    if benchmark is None and measured:
        benchmark = benchmark_label(measured[0].benchmark_name, measured[0].benchmark)
    ordered = _sort_entries(measured, SORT_KEY)
    labels = _labels(ordered)
    rows = [_row(entry, label) for entry, label in zip(ordered, labels, strict=True)]
    _mark_best(rows, len(MAIN_COLUMNS))
    reported_rows = [_row(entry, entry.method) for entry in reported]
    notes = _footnotes(rows + reported_rows)
    notes.append(
        "Values x100. PQ, SQ, RQ and PQ^scene over the 10 object (thing) classes; "
        "'-': the method produces no instances. Sorted by PQ."
    )
    where = f"{benchmark}, " if benchmark else ""
    title = f"nerfseg leaderboard: {where}protocol {protocol}, {split} split"
    return TableModel("leaderboard", title, list(MAIN_COLUMNS), rows, notes, protocol, split, reported_rows, benchmark)


def _row(entry: LeaderboardEntry, label: str) -> TableRow:
    cells = []
    for col in MAIN_COLUMNS:
        v = None if (col.instance and entry.semantic_only) else finite_or_none(entry.values.get(col.key))
        cells.append(Cell(v, format_value(v)))
    marks = (REPORTED_MARK if entry.reported else "") + (GT_MASKS_MARK if entry.uses_gt_masks else "")
    return TableRow(label, cells, entry, marks)


def build_per_class_table(
    entries: Sequence[LeaderboardEntry], protocol: str, split: str, metric: str = "iou", benchmark: str | None = None
) -> TableModel:
    """Per-class numbers of the evaluated rows (reported rows have none): IoU over 11 classes, PQ over things."""
    if metric == "iou":
        class_names = list(CLASS_NAMES)
    else:
        class_names = [CLASS_NAMES[i] for i in THING_CLASSES]
    columns = [Column(name, name, name.replace("_", r"\_"), html.escape(name), metric != "iou") for name in class_names]
    evaluated = [e for e in entries if not e.reported]
    if benchmark is None and evaluated:
        benchmark = benchmark_label(evaluated[0].benchmark_name, evaluated[0].benchmark)
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
    where = f"{benchmark}, " if benchmark else ""
    title = f"nerfseg per-class {what}: {where}protocol {protocol}, {split} split"
    return TableModel(f"per_class_{metric}", title, columns, rows, notes, protocol, split, [], benchmark)


# ---------------------------------------------------------------------------------------------
# Escaping: every text that comes from a submitter or a paper (method, team, source, dataset, benchmark
# name) is escaped for the format it is written in, once, in the renderer.

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_LINE_BREAKS = re.compile(r"\r\n|[\r\n\u2028\u2029\x85]")


def one_line(text: str) -> str:
    """Newlines become spaces and other control characters disappear: a name is one line in every format."""
    return _CONTROL.sub("", _LINE_BREAKS.sub(" ", str(text)).replace("\t", " "))


_MD_SPECIAL = re.compile(r"([\\|*_`\[\]#])")
_MD_ENTITY = re.compile(r"&(?=#?[0-9A-Za-z]+;)")


def md_escape(text: str) -> str:
    """Markdown cell text: pipes and emphasis/link/code markup backslash-escaped, ``<``/``>`` (HTML) and an ``&``
    that would start a character reference written as entities, one line."""
    text = _MD_SPECIAL.sub(r"\\\1", one_line(text))
    text = _MD_ENTITY.sub("&amp;", text)
    return text.replace("<", "&lt;").replace(">", "&gt;")


_md_escape = md_escape  # the name used before; kept for callers

#: a spreadsheet reads a cell starting with one of these as a formula (OWASP "CSV injection")
CSV_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(text: str | None) -> str:
    """A text cell for CSV: a leading formula character is neutralised with a leading apostrophe (what
    spreadsheets document for "treat as text"); the csv module quotes separators and newlines."""
    text = "" if text is None else str(text)
    return "'" + text if text.startswith(CSV_FORMULA_START) else text


# ---------------------------------------------------------------------------------------------
# Markdown


def _md_table(columns: Sequence[Column], rows: Sequence[TableRow], extra: tuple[str, Callable[[TableRow], str]] | None = None) -> list[str]:
    head = ["Method"] + ([extra[0]] if extra else []) + [c.header for c in columns]
    lines = ["| " + " | ".join(md_escape(h) for h in head) + " |",
             "|:--|" + ("--|" if extra else "") + "|".join("--:" for _ in columns) + "|"]
    for row in rows:
        cells = [f"**{c.text}**" if c.best else c.text for c in row.cells]
        first = [f"{md_escape(row.label)}{row.marks}"] + ([md_escape(extra[1](row))] if extra else [])
        lines.append("| " + " | ".join(first) + " | " + " | ".join(cells) + " |")
    return lines


def render_markdown(model: TableModel) -> str:
    lines = [f"**{md_escape(model.title)}**", ""]
    lines += _md_table(model.columns, model.rows)
    if not model.rows:
        lines.append("| (no results yet) |" + "|".join(" " for _ in model.columns) + "|")
    if model.reported_rows:
        lines += ["", f"**{md_escape(model.reported_title)}**", ""]
        lines += _md_table(model.columns, model.reported_rows, ("Dataset", lambda r: r.entry.dataset or "not stated"))
    for note in model.footnotes:  # one paragraph each
        lines += ["", md_escape(note)]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# CSV


def render_csv(model: TableModel) -> str:
    """One CSV table: measured rows (ranked) then reported rows; ``section`` and ``dataset`` say which is which."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["method", "team", *[c.header for c in model.columns], "reported", "source", "section", "dataset"])
    for row in model.rows:
        e = row.entry
        w.writerow([csv_cell(row.label), csv_cell(e.team), *[c.text for c in row.cells], int(e.reported),
                    csv_cell(e.source), "measured", csv_cell(model.benchmark)])
    for row in model.reported_rows:
        e = row.entry
        w.writerow([csv_cell(row.label), csv_cell(e.team), *[c.text for c in row.cells], 1, csv_cell(e.source),
                    "reported (not ranked)", csv_cell(e.dataset or "not stated")])
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
.table-scroll { overflow-x: auto; max-width: 100%; margin: 1em 0; -webkit-overflow-scrolling: touch; }
.table-scroll table.leaderboard { margin: 0; }
table.leaderboard th, table.leaderboard td { white-space: nowrap; }
table.leaderboard tr > :first-child { position: sticky; left: 0; background: #fff; z-index: 1;
  white-space: normal; min-width: 12em; max-width: 20em; }
.table-scroll caption { position: sticky; left: 0; text-align: left; max-width: calc(100vw - 2em); }
@media (max-width: 640px) {
  table.leaderboard { font-size: 80%; }
  table.leaderboard th, table.leaderboard td { padding: .2em .4em; }
  table.leaderboard tr > :first-child { min-width: 7em; max-width: 40vw; }
}
"""


@dataclass(frozen=True)
class HtmlColumn:
    """An extra column of the HTML table after the method (the server's team, date and links): ``cell`` gives a
    row's cell as (escaped HTML, sort value)."""

    header: str
    cell: Callable[[TableRow], tuple[str, str]]
    css: str = ""


def render_html_table(model: TableModel, method_href: Callable[[TableRow], str | None] | None = None,
                      extra_columns: Sequence[HtmlColumn] = ()) -> str:
    """A sortable ``<table>``; ``method_href`` turns a row's label into a link (the server's method pages),
    ``extra_columns`` follow the method column in the ranked table. Reported rows follow in a second table
    (``id="<name>-reported"``), labelled and never ranked. Each table sits in a ``div.table-scroll``: on a
    narrow screen the table scrolls sideways (method column pinned) instead of widening the page."""
    esc = html.escape
    out = ['<div class="table-scroll">', f'<table class="leaderboard sortable" id="{esc(model.name)}">',
           f"<caption>{esc(model.title)}</caption>"]
    out.append('<thead><tr><th data-sort="text">Method</th>')
    out.extend(f'<th data-sort="text" class="{esc(c.css)}">{esc(c.header)}</th>' for c in extra_columns)
    out.extend(f'<th class="num" data-sort="num">{c.html}</th>' for c in model.columns)
    out.append("</tr></thead><tbody>")
    out += _html_rows(model.rows, method_href, extra_columns=extra_columns)
    out.append("</tbody></table></div>")
    if model.reported_rows:
        out.append('<div class="table-scroll">')
        out.append(f'<table class="leaderboard sortable reported" id="{esc(model.name)}-reported">')
        out.append(f"<caption>{esc(model.reported_title)}</caption>")
        out.append('<thead><tr><th data-sort="text">Method</th><th data-sort="text">Dataset</th>')
        out.extend(f'<th class="num" data-sort="num">{c.html}</th>' for c in model.columns)
        out.append("</tr></thead><tbody>")
        out += _html_rows(model.reported_rows, None, dataset=True)
        out.append("</tbody></table></div>")
    if model.footnotes:
        out.append('<div class="footnotes">' + "".join(f"<p>{esc(n)}</p>" for n in model.footnotes) + "</div>")
    return "\n".join(out)


def _html_rows(rows: Sequence[TableRow], method_href: Callable[[TableRow], str | None] | None,
               dataset: bool = False, extra_columns: Sequence[HtmlColumn] = ()) -> list[str]:
    esc = html.escape
    out = []
    for row in rows:
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
        for col in extra_columns:
            cell, value = col.cell(row)
            out.append(f'<td class="{esc(col.css)}" data-value="{esc(value)}">{cell}</td>')
        if dataset:
            out.append(f'<td data-value="{esc(e.dataset or "")}">{esc(e.dataset or "not stated")}</td>')
        for c in row.cells:
            value = "" if c.value is None else f"{100.0 * c.value:.6f}"
            text = f"<strong>{c.text}</strong>" if c.best else c.text
            out.append(f'<td class="num" data-value="{value}">{text}</td>')
        out.append("</tr>")
    return out


def render_html(models: Sequence[TableModel]) -> str:
    """A standalone HTML document (for ``leaderboard show --format html``), sortable without a server."""
    title = html.escape(models[0].title if models else "nerfseg leaderboard")
    body = "\n".join(render_html_table(m) for m in models)
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
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
    "|": r"\textbar{}",
    REPORTED_MARK: r"$^\dagger$",
    GT_MASKS_MARK: r"$^\ddagger$",
}


def latex_escape(text: str) -> str:
    """Escape text for LaTeX so a method name like ``my_net & co`` cannot break the table: specials escaped,
    one line (a blank line inside a tabular ends the paragraph and breaks the table)."""
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in one_line(text))


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
    if model.reported_rows:
        lines.append(r"\midrule")
        lines.append(r"\multicolumn{" + str(n + 1) + r"}{l}{\emph{" + latex_escape(model.reported_title) + r"}} \\")
        for row in model.reported_rows:
            where = f" ({row.entry.dataset})" if row.entry.dataset else ""
            lines.append(latex_escape(row.label + row.marks + where) + " & " + " & ".join(c.text for c in row.cells) + r" \\")
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
    """JSON form: ``rows`` are the measured rows (ranked), ``reported_rows`` the papers' rows (unranked)."""
    return {
        "name": model.name,
        "title": model.title,
        "benchmark": model.benchmark,
        "protocol": model.protocol,
        "split": model.split,
        "columns": [{"key": c.key, "header": c.header} for c in model.columns],
        "rows": _rows_to_dicts(model, model.rows),
        "reported_rows": _rows_to_dicts(model, model.reported_rows),
        "footnotes": model.footnotes,
    }


def _rows_to_dicts(model: TableModel, table_rows: Sequence[TableRow]) -> list[dict[str, Any]]:
    rows = []
    for row in table_rows:
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
                "benchmark": e.benchmark,
                "dataset": e.dataset,
                "submitted_at": e.submitted_at,
                "links": dict(e.links),
            }
        )
    return rows


def render(models: Sequence[TableModel], fmt: str) -> str:
    """Render one or more tables (the leaderboard, then per-class tables) in one of ``FORMATS``."""
    if fmt == "md":
        return "\n".join(render_markdown(m) for m in models)
    if fmt == "csv":
        parts = []
        for i, m in enumerate(models):
            parts.append(("" if i == 0 else f"\n# {csv_cell(one_line(m.title))}\n") + render_csv(m))
        return "".join(parts)
    if fmt == "html":
        return render_html(models)
    if fmt == "latex":
        return "\n".join(render_latex(m) for m in models)
    if fmt == "json":
        return json.dumps({"tables": [table_to_dict(m) for m in models]}, indent=2) + "\n"
    raise ValueError(f"unknown table format {fmt!r}; expected one of {FORMATS}")
