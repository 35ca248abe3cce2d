"""HTML building blocks of the leaderboard pages: the page frame, escaping, dates, table columns and plots.

Pages are plain server-side HTML with one small vanilla script (table sorting); plots are inline SVG drawn by
matplotlib on the server.
"""

from __future__ import annotations

import html
import io
import time
from typing import Any

from fastapi.responses import HTMLResponse

from nerfseg.leaderboard.store import MethodDetail
from nerfseg.leaderboard.tables import SORT_SCRIPT, TABLE_CSS, HtmlColumn
from nerfseg.spec import CLASS_NAMES

PAGE_CSS = TABLE_CSS + """
body { font-family: system-ui, sans-serif; max-width: 84em; margin: 1.5em auto; padding: 0 1em; color: #222; }
nav a { margin-right: 1em; }
.dataset { background: #f6f8fa; border-left: 4px solid #4C72B0; padding: .5em .8em; }
code.fingerprint { word-break: break-all; }
td.links a { margin-right: .5em; }
.plot svg { max-width: 100%; height: auto; }
@media (max-width: 640px) {
  body { margin: .5em auto; padding: 0 .6em; }
  h1 { font-size: 1.4em; } h2 { font-size: 1.15em; }
}
.status { font-weight: bold; }
.status.rejected { color: #a00; } .status.evaluated { color: #070; }
.error { color: #a00; font-weight: bold; }
form label { display: block; margin: .5em 0; }
code { background: #f4f4f4; padding: 0 .2em; }
"""



def encodable(text: str) -> str:
    """``text`` with lone surrogates (undecodable bytes of an old record) escaped, so it encodes as UTF-8."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def esc(value: Any) -> str:
    """HTML-escaped text of any value (None: empty), safe to encode even for an old record's bad bytes."""
    return html.escape(encodable("" if value is None else str(value)))



def when_utc(t: float | None) -> str:
    """A time stamp as UTC date and time ("-" when missing)."""
    return "-" if t is None else time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t))


def html_page(title: str, body: str, refresh: int | None = None, status_code: int = 200) -> HTMLResponse:
    """A whole page: navigation, the shared CSS and the sorting script around ``body``."""
    meta = f'<meta http-equiv="refresh" content="{refresh}">' if refresh else ""
    doc = (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">{meta}<title>{esc(title)}</title>'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{PAGE_CSS}</style></head>\n'
        f'<body><nav><a href="/">Leaderboard</a><a href="/submit">Submit</a><a href="/docs">API</a></nav>\n'
        f"<h1>{esc(title)}</h1>\n{body}\n<script>{SORT_SCRIPT}</script></body></html>\n"
    )
    return HTMLResponse(doc, status_code=status_code)


def day_utc(t: float | None) -> str:
    """A table cell's date: the day only (the method page has the time)."""
    return "-" if t is None else time.strftime("%Y-%m-%d", time.gmtime(t))


def links_html(links: dict[str, str]) -> str:
    """``paper`` / ``code`` / ``project`` anchors; the URLs were checked by :func:`safe_url`."""
    return " ".join(f'<a href="{esc(url)}" rel="nofollow noopener" class="link-{esc(label)}">{esc(label)}</a>'
                    for label, url in links.items())


def scroll(table_html: str) -> str:
    """A table that scrolls sideways on a narrow screen instead of widening the page."""
    return f'<div class="table-scroll">{table_html}</div>'


#: the ranked table's extra columns on the web page: who submitted it, when, and where to read about it
BOARD_COLUMNS: tuple[HtmlColumn, ...] = (
    HtmlColumn("Team", lambda row: (esc(row.entry.team), row.entry.team or ""), "team"),
    HtmlColumn("Submitted", lambda row: (day_utc(row.entry.submitted_at),
                                         "" if row.entry.submitted_at is None else f"{row.entry.submitted_at:.0f}"),
               "date"),
    HtmlColumn("Links", lambda row: (links_html(row.entry.links), " ".join(row.entry.links)), "links"),
)


def dataset_html(name: str, fingerprint: str, stored: bool) -> str:
    """The benchmark every number on the page was measured on: its name and full GT fingerprint."""
    note = "" if stored else " (computed from the files: run <code>nerfseg benchmark-id --write</code> to store it)"
    return (f'<p class="dataset" id="dataset">Dataset: <strong id="dataset-name">{esc(name)}</strong><br>'
            f'GT fingerprint: <code class="fingerprint" id="dataset-fingerprint" title="sha256 of the val and test '
            f'ground truth (nerfseg benchmark-id)">{esc(fingerprint)}</code>{note}</p>')


def method_plot_svg(detail: MethodDetail) -> str:
    """Per-class IoU/PQ bars and per-scene PQ bars as inline SVG (matplotlib's object API: thread-safe, no pyplot)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9.0, 3.4), dpi=100)
    ax1, ax2 = fig.subplots(1, 2, gridspec_kw={"width_ratios": [2.2, 1.0]})
    names = [n for n in CLASS_NAMES if n in detail.per_class] or list(CLASS_NAMES)

    def vals(src: dict[str, dict[str, float | None]], keys: list[str], metric: str) -> list[float]:
        out = []
        for k in keys:
            v = src.get(k, {}).get(metric)
            out.append(0.0 if v is None else 100.0 * float(v))
        return out

    xs = list(range(len(names)))
    ax1.bar([x - 0.2 for x in xs], vals(detail.per_class, names, "iou"), width=0.4, label="IoU", color="#4C72B0")
    if not detail.semantic_only:
        ax1.bar([x + 0.2 for x in xs], vals(detail.per_class, names, "pq"), width=0.4, label="PQ", color="#DD8452")
    ax1.set_xticks(xs, names, rotation=45, ha="right", fontsize=8)
    ax1.set_ylim(0, 100)
    ax1.set_ylabel("x100")
    ax1.set_title("per class", fontsize=10)
    ax1.legend(fontsize=8)
    scenes = sorted(detail.per_scene)
    metric = "miou" if detail.semantic_only else "pq_things"
    ax2.bar(range(len(scenes)), vals(detail.per_scene, scenes, metric), color="#55A868")
    ax2.set_xticks(range(len(scenes)), scenes, rotation=45, ha="right", fontsize=8)
    ax2.set_ylim(0, 100)
    ax2.set_title(f"per scene ({'mIoU' if detail.semantic_only else 'PQ things'})", fontsize=10)
    fig.tight_layout()
    buf = io.StringIO()
    fig.savefig(buf, format="svg")
    svg = buf.getvalue()
    start = svg.find("<svg")
    return svg[start:] if start >= 0 else svg
