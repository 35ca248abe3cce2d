"""The public pages: the ranked table (``/``) and a method's page (``/methods/{id}``). The index names the
benchmark (name and GT fingerprint) and each row's team, upload date and paper/code links; tables scroll
inside the page on a phone."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from nerfseg.leaderboard.routes.context import Context, public_method
from nerfseg.leaderboard.routes.html_parts import (
    BOARD_COLUMNS,
    dataset_html,
    esc,
    html_page,
    method_plot_svg,
    scroll,
    when_utc,
)
from nerfseg.leaderboard.store import MethodDetail
from nerfseg.leaderboard.tables import build_table, format_value, meta_links, render_html_table, safe_url
from nerfseg.spec import CLASS_NAMES, DEFAULT_PROTOCOL

pages_router = APIRouter()

INSTANCE_METRICS = {"pq_things", "pq_scene", "pq_scene_things", "pq", "sq", "rq"}
SCENE_METRICS = ["miou", "pq_things", "pq_scene", "pq_scene_things", "binary_acc"]
CLASS_METRICS = ["iou", "pq", "sq", "rq"]


@pages_router.get("/", response_class=HTMLResponse, include_in_schema=False)
def index(ctx: Context, protocol: str = DEFAULT_PROTOCOL, split: str = "test") -> HTMLResponse:
    store, bench = ctx.store, ctx.bench
    entries = store.leaderboard(protocol, split, benchmark=bench.fingerprint)
    model = build_table(entries, protocol, split, bench.label)
    table = render_html_table(model, lambda row: None if row.entry.method_id is None else
                              f"/methods/{row.entry.method_id}?protocol={protocol}&split={split}", BOARD_COLUMNS)
    boards = store.boards(bench.fingerprint)
    if (protocol, split) not in boards:
        boards.insert(0, (protocol, split))
    links = " ".join(
        f'<a href="/?protocol={esc(p)}&amp;split={esc(s)}">{"<b>" if (p, s) == (protocol, split) else ""}'
        f'{esc(p)} / {esc(s)}{"</b>" if (p, s) == (protocol, split) else ""}</a>' for p, s in boards)
    body = (f"{dataset_html(bench.name, bench.fingerprint, bench.stored)}\n"
            f"<p>Protocol / split: {links}</p>\n{table}\n"
            '<p>Click a column header to sort. <a href="/submit">Submit a result</a>.</p>')
    return html_page(ctx.settings.title, body)


def _method_info(ctx: Context, detail: MethodDetail, protocol: str, split: str) -> list[str]:
    """The paragraphs above a method's numbers: benchmark, team, description, links and flags."""
    bench = ctx.bench
    links = meta_links(detail.submission.meta if detail.submission is not None else None)
    if not links and safe_url(detail.url):
        links = {"project": str(safe_url(detail.url))}
    info = [dataset_html(bench.name, bench.fingerprint, bench.stored),
            f"<p>Team: {esc(detail.team)}. Protocol {esc(protocol)}, {esc(split)} split.</p>"]
    if detail.description:
        info.append(f"<p>{esc(detail.description)}</p>")
    if links:
        info.append('<p class="links">' + " - ".join(
            f'{esc(label.capitalize())}: <a href="{esc(url)}" rel="nofollow noopener">{esc(url)}</a>'
            for label, url in links.items()) + "</p>")
    flags = [f"prior: {esc(detail.prior)}" if detail.prior else "",
             "uses ground-truth masks" if detail.uses_gt_masks else "",
             "semantic only (no instances)" if detail.semantic_only else ""]
    if any(flags):
        info.append("<p>" + "; ".join(f for f in flags if f) + "</p>")
    return info


def _num_cell(value: object) -> str:
    """A sortable numeric cell: the raw fraction to sort by, the x100 value to read."""
    return f"<td class='num' data-value='{'' if value is None else value}'>{format_value(value)}</td>"


def _head(cols: list[str]) -> str:
    return "".join(f'<th class="num" data-sort="num">{esc(c)}</th>' for c in cols)


def _method_tables(detail: MethodDetail) -> tuple[str, str, str]:
    """The summary, per-scene and per-class tables of a method's shown submission."""
    summary_rows = "".join(f"<tr><td>{esc(k)}</td><td class='num'>{format_value(v)}</td></tr>"
                           for k, v in sorted(detail.summary.items()))
    scene_rows = "".join(
        f"<tr><td data-value='{esc(sc)}'>{esc(sc)}</td>" + "".join(_num_cell(m.get(k)) for k in SCENE_METRICS)
        + f"<td class='num' data-value='{m.get('num_frames') or ''}'>"
        f"{'' if m.get('num_frames') is None else int(m['num_frames'])}</td></tr>"
        for sc, m in sorted(detail.per_scene.items()))
    class_rows = "".join(
        f"<tr><td data-value='{esc(c)}'>{esc(c)}</td>" + "".join(
            _num_cell(detail.per_class[c].get(k)) for k in CLASS_METRICS) + "</tr>"
        for c in CLASS_NAMES if c in detail.per_class)
    summary_table = scroll(f'<table class="leaderboard" id="summary"><tbody>{summary_rows}</tbody></table>')
    scene_table = scroll(f'<table class="leaderboard sortable" id="per-scene"><thead><tr><th data-sort="text">'
                         f'scene</th>{_head(SCENE_METRICS)}<th class="num" data-sort="num">frames</th></tr></thead>'
                         f'<tbody>{scene_rows}</tbody></table>')
    class_table = scroll(f'<table class="leaderboard sortable" id="per-class"><thead><tr><th data-sort="text">'
                         f'class</th>{_head(CLASS_METRICS)}</tr></thead><tbody>{class_rows}</tbody></table>')
    return summary_table, scene_table, class_table


@pages_router.get("/methods/{method_id}", response_class=HTMLResponse, include_in_schema=False)
def method_page(method_id: int, ctx: Context, protocol: str = DEFAULT_PROTOCOL, split: str = "test") -> HTMLResponse:
    detail = public_method(ctx, method_id, protocol, split)
    if detail is None:
        return html_page("Not found", "<p>No such method.</p>", status_code=404)
    info = _method_info(ctx, detail, protocol, split)
    if detail.submission is None:
        return html_page(detail.name, "\n".join(info) + "<p>No evaluated submission for this protocol yet.</p>")
    if detail.semantic_only:  # a method without instances shows "-" for every instance metric
        def hide(table: dict[str, dict[str, float | None]]) -> dict[str, dict[str, float | None]]:
            return {k: {m: (None if m in INSTANCE_METRICS else v) for m, v in row.items()} for k, row in table.items()}

        detail.per_scene, detail.per_class = hide(detail.per_scene), hide(detail.per_class)
    summary_table, scene_table, class_table = _method_tables(detail)
    history = "".join(f"<li>#{h['submission_id']} {when_utc(h.get('finished_at'))}: mIoU {format_value(h.get('miou'))}, "
                      f"PQ {format_value(h.get('pq_things'))}</li>" for h in detail.history)
    body = "\n".join(info) + f"""
<h2>Summary (x100), submission #{detail.submission.id}</h2>
<p>Submitted {when_utc(detail.submission.created_at)}, evaluated {when_utc(detail.submission.finished_at)}.</p>
{summary_table}
<h2>Plots</h2><div class="plot">{method_plot_svg(detail)}</div>
<h2>Per scene</h2>
{scene_table}
<h2>Per class</h2>
{class_table}
<h2>History</h2><ul>{history}</ul>"""
    return html_page(detail.name, body)
