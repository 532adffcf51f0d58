"""The dagml pages as server-rendered HTML: tables from ``dagml.leaderboard``, plots from
``dagml.charts`` (plotly, its JavaScript served by this app), a small poll while a run searches."""

from __future__ import annotations

import json
from collections import OrderedDict
from html import escape
from urllib.parse import quote

from fastapi import Request

STYLE = """
body{font-family:system-ui,sans-serif;margin:16px;color:#222}
table{border-collapse:collapse;margin:8px 0 16px}th,td{border-bottom:1px solid #ddd;padding:4px 8px;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}tr.selected{background:#eef6ee}
.failed{color:#b00}.muted{color:#777}.charts{display:flex;flex-wrap:wrap;gap:12px}.chart{width:560px}
.box{border:1px solid #e6b3b3;background:#fff4f4;padding:8px 12px;margin:8px 0}
nav a{margin-right:12px}
"""


def _base(request: Request) -> str:
    return request.scope.get("root_path", "")


def _page(request: Request, title: str, body: str, plots: bool = False, script: str = "") -> str:
    base = _base(request)
    js = f'<script src="{base}/static/plotly.min.js"></script>' if plots else ""
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title>{js}"
            f"<style>{STYLE}</style></head><body><nav><a href='{base}/'>all datasets</a></nav>"
            f"<h1>{escape(title)}</h1>{body}{script}</body></html>")


def message(request: Request, title: str, text: str) -> str:
    return _page(request, str(title), f"<p class='box'>{escape(text)}</p>")


def _num(value, digits: int = 4) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _age(seconds: float | None) -> str:
    if seconds is None:
        return ""
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"


def _table(headers: list[str], rows: list[list[str]], row_classes: list[str] | None = None, **attrs) -> str:
    extra = "".join(f" {k.replace('_', '-')}='{escape(v)}'" for k, v in attrs.items())
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join(f"<tr class='{c}'>{''.join(cells)}</tr>" for cells, c in
                   zip(rows, row_classes or [""] * len(rows)))
    return f"<table{extra}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _td(text, numeric: bool = False, cls: str = "") -> str:
    classes = " ".join(c for c in ("num" if numeric else "", cls) if c)
    return f"<td class='{classes}'>{escape(str(text))}</td>" if classes else f"<td>{escape(str(text))}</td>"


def _run_href(base: str, dag_id: str, run_id: str) -> str:
    return f"{base}/datasets/{quote(dag_id)}/runs/{quote(run_id, safe='')}"


def _airflow_run_href(dag_id: str, run_id: str) -> str:
    return f"/dags/{quote(dag_id)}/runs/{quote(run_id, safe='')}"


def _link(href: str, text: str, top: bool = False) -> str:
    return f"<a href='{escape(href)}'{' target=_top' if top else ''}>{escape(text)}</a>"


def sparkline(values: list[float]) -> str:
    """A dataset's winners' test scores over partitions as a plotly line in a table cell."""
    if len(values) < 2:
        return ""
    from dagml import charts

    label = f"test score over partitions: {min(values):.4f} to {max(values):.4f}"
    return (f"<div class='sparkline' role='img' aria-label='{label}'>"
            f"{charts.fragment(charts.sparkline(values, label), static=True)}</div>")


def _charts(figures: list) -> str:
    from dagml import charts

    return "<div class='charts'>" + "".join(
        f"<div class='chart'>{charts.fragment(fig)}</div>" for fig in figures) + "</div>"


def datasets(request: Request, items: list[dict]) -> str:
    base = _base(request)
    rows = []
    for d in items:
        champ, last = d["champion"] or {}, d["last_run"]
        dag_id, last_id = d["dag_id"], last["run_id"]
        rows.append([
            f"<td>{_link(f'{base}/datasets/{dag_id}', dag_id)}</td>",
            _td(champ.get("family", "no champion yet")), _td(_num(champ.get("test_score")), True),
            _td(champ.get("partition", "")), _td(_age(champ.get("age_seconds")), True),
            f"<td>{_link(_run_href(base, dag_id, last_id), last['partition'])}</td>",
            _td(last["state"], cls="failed" if last["state"] == "failed" else ""),
            f"<td>{sparkline([s['test_score'] for s in d['scores']])}</td>"])
    if not rows:
        return _page(request, "dagml datasets", "<p>No dataset you may read has a recorded run yet.</p>")
    headers = ["dataset", "champion", "test score", "partition", "age", "last run", "state",
               "winner's test score over partitions"]
    return _page(request, "dagml datasets", _table(headers, rows, id="datasets"),
                 plots=any(len(d["scores"]) >= 2 for d in items))


def dataset(request: Request, d: dict) -> str:
    from dagml import charts

    base, dag_id, metric = _base(request), d["dag_id"], d["metric"]
    champ = d["champion"]
    head = (f"<p>{_link(f'/dags/{dag_id}', 'the DAG in Airflow', top=True)} · metric: {escape(str(metric))}"
            + (f" · champion: <b>{escape(champ['family'])}</b> (test {_num(champ['test_score'])}, partition "
               f"{escape(champ['partition'])})" if champ else " · no champion yet") + "</p>")
    plots = _charts([charts.over_partitions(d["runs"], metric)]) if metric else ""
    history = _table(["promoted", "family", "partition", "test score", "retired", "why promoted"], [
        [_td(h["promoted_at"]), _td(h["family"]), _td(h["partition"]), _td(_num(h["test_score"]), True),
         _td(h["retired_at"] or "active"), _td(h["reason"] or "")] for h in reversed(d["champion_history"])],
        id="champions")
    runs = _table(["partition", "run", "state", "winner", "validation", "test", "promoted", "failed task"], [
        [_td(r["partition"]), f"<td>{_link(_run_href(base, dag_id, r['run_id']), r['run_id'])}</td>",
         _td(r["state"], cls="failed" if r["state"] == "failed" else ""), _td(r["winner"] or ""),
         _td(_num(r["val_score"]), True), _td(_num(r["test_score"]), True), _td("yes" if r["promoted"] else ""),
         _td(r["failed_task"] or "")] for r in reversed(d["runs"])], id="runs")
    body = f"{head}{plots}<h2>Champion history</h2>{history}<h2>Runs</h2>{runs}"
    return _page(request, f"dagml · {dag_id}", body, plots=bool(plots))


def _leaderboard(entries: list[dict]) -> str:
    from dagml import leaderboard

    headers = [h for h, _ in leaderboard.CELLS]
    rows = [[_td(text, numeric=h in leaderboard.NUMERIC) for (h, _), text in zip(leaderboard.CELLS, leaderboard.cells(e))]
            for e in entries]
    classes = ["selected" if e["selected"] else ("failed" if e["status"] != "ok" else "") for e in entries]
    return _table(headers, rows, classes, id="leaderboard")


def _trials_by_family(run: dict) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for row in run["trials"]:
        out.setdefault(row["family"], []).append(row)
    return out


def _trials_text(search: dict) -> str:
    """``12 of 50`` while a search runs; ``2 (finished)`` once it ended (a small space ends early)."""
    if search.get("finished"):
        return f"{search['done']} (finished)"
    return f"{search['done']} of {search['planned'] or '?'}"


def _progress(request: Request, run: dict, progress: dict) -> str:
    """Each search's trials done of planned and best so far, polled from the JSON route every 2 s."""
    url = f"{_base(request)}/api/datasets/{run['dag_id']}/runs/{run['run_id']}/progress"
    rows = [[_td(s["family"]), _td(_trials_text(s), True), _td(_num(s["best"]), True)] for s in progress["searches"]]
    table = _table(["search", "trials", "best so far"], rows, id="progress")
    script = """<script>
(function(){const url=%s;
async function poll(){try{const r=await fetch(url,{credentials:'same-origin'});if(!r.ok)return;const p=await r.json();
document.getElementById('trials-done').textContent=p.trials_done;
const body=document.querySelector('#progress tbody');body.innerHTML='';
for(const s of p.searches){const tr=document.createElement('tr');
const trials=s.finished?s.done+' (finished)':s.done+' of '+(s.planned??'?');
for(const [v,n] of [[s.family,0],[trials,1],[s.best==null?'':s.best.toFixed(4),1]]){
const td=document.createElement('td');td.textContent=v;if(n)td.className='num';tr.appendChild(td);}body.appendChild(tr);}
if(p.state!=='running'){location.reload();return;}}catch(e){}setTimeout(poll,2000);}
setTimeout(poll,2000);})();
</script>""" % json.dumps(url)
    body = (f"<p>Searching: <b id='trials-done'>{progress['trials_done']}</b> trials done so far "
            f"(this page refreshes by itself).</p>{table}")
    return body + script


def run(request: Request, r: dict, progress: dict | None) -> str:
    from dagml import leaderboard

    base, dag_id = _base(request), r["dag_id"]
    links = (f"<p>{_link(f'{base}/datasets/{dag_id}', dag_id)} · partition {escape(r['partition'])} · "
             f"state <b class='{'failed' if r['state'] == 'failed' else ''}' id='state'>{escape(r['state'])}</b> · "
             f"{_link(_airflow_run_href(dag_id, r['run_id']), 'the run in Airflow', top=True)}"
             + (f" · {_link(_run_href(base, dag_id, r['run_id']) + '/report', 'its HTML report')}"
                if r["has_report"] else "") + "</p>")
    parts = [links]
    if r["state"] == "failed":
        more = (r["error"] or "").strip()
        detail = f"<pre>{escape(more)}</pre>" if "\n" in more else ""  # the whole message, when it has more lines
        parts.append(f"<div class='box' id='failure'><b>{escape(r['failure'])}</b><br>failed in task "
                     f"<code>{escape(str(r['failed_task']))}</code>{detail}</div>")
    if r.get("trigger"):
        parts.append(f"<p id='trigger'>Trigger values: {escape(leaderboard.trigger_text(r['trigger']))}</p>")
    if progress is not None:
        parts.append(_progress(request, r, progress))
    if r["leaderboard"]:
        parts.append(f"<h2>Leaderboard ({escape(str(r['metric']))})</h2>{_leaderboard(r['leaderboard'])}")
    if r["promotion_reason"]:
        parts.append(f"<p>Promotion: {escape(r['promotion_reason'])}</p>")
    if r.get("registry_version") or r.get("registry_error"):
        from dagml.report import registered

        parts.append(f"<p id='registry' class='{'failed' if r['registry_error'] else ''}'>Model registry: "
                     f"{escape(registered(r['registry_version'], r['registry_error']))}</p>")
    plots = _run_plots(r)
    parts.append(plots)
    return _page(request, f"dagml · {dag_id} · {r['run_id']}", "".join(parts),
                 plots="plotly-graph-div" in plots)


# A finished run's plots never change (a re-run of its partition has another finish time), and
# drawing them costs most of the page (plotly validates each figure in Python): keep the last few.
_PLOTS: OrderedDict = OrderedDict()
_PLOTS_KEPT = 32


def _run_plots(r: dict) -> str:
    key = (r["dag_id"], r["run_id"], r["finished_at"])
    if r["state"] != "running" and key in _PLOTS:
        _PLOTS.move_to_end(key)
        return _PLOTS[key]
    html = _draw_run_plots(r)
    if r["state"] != "running":
        _PLOTS[key] = html
        while len(_PLOTS) > _PLOTS_KEPT:
            _PLOTS.popitem(last=False)
    return html


def _draw_run_plots(r: dict) -> str:
    from dagml import charts

    parts, figures = [], []
    if r["metric"] and r["trials"]:
        figures.append(charts.search_traces(_trials_by_family(r), r["metric"]))
    if r["metric"] and r["leaderboard"]:
        figures.append(charts.scores_by_family(r["leaderboard"], r["metric"]))
    champion = charts.champion_figures(r["diagnostics"])
    if figures:
        parts.append(f"<h2>Searches</h2>{_charts(figures)}")
    if champion:
        parts.append(f"<h2>The chosen model on the test rows ({escape(str(r['selected_family']))})</h2>"
                     f"{_charts(champion)}")
    elif r["diagnostics"] and r["diagnostics"].get("error"):
        parts.append(f"<p class='muted'>Diagnostics could not be computed: {escape(r['diagnostics']['error'])}</p>")
    return "".join(parts)
