"""A self-contained HTML report of one run: profile, leaderboard, and inline SVG plots."""

from __future__ import annotations

import json
from html import escape

from dagml.metrics import get_metric
from dagml.selection import rank

_STYLE = """body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:4px 8px;font-size:13px;text-align:left}th{background:#f3f3f3}
.failed{color:#a00}.num{text-align:right;font-variant-numeric:tabular-nums}code{font-size:12px}"""


def _fmt(value, digits=5) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _bars(rows, metric) -> str:
    """Validation and test score per family, as horizontal bars."""
    ok = [r for r in rows if r["status"] == "ok"]
    if not ok:
        return ""
    values = [v for r in ok for v in (r["val_score"], r["test_score"])]
    lo, hi = min(0.0, min(values)), max(values) or 1.0
    width, row_h = 360, 28
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width + 260}" height="{row_h * len(ok) + 24}">']
    for i, r in enumerate(ok):
        y = i * row_h + 4
        parts.append(f'<text x="0" y="{y + 14}" font-size="12">{escape(r["family"])}</text>')
        for j, (key, colour) in enumerate((("val_score", "#4a78b5"), ("test_score", "#e39a3b"))):
            w = (r[key] - lo) / (hi - lo) * width if hi > lo else 0
            parts.append(f'<rect x="200" y="{y + j * 11}" width="{w:.1f}" height="10" fill="{colour}"/>')
        parts.append(f'<text x="{205 + width}" y="{y + 14}" font-size="11">{_fmt(r["val_score"], 4)} / '
                     f'{_fmt(r["test_score"], 4)}</text>')
    parts.append(f'<text x="200" y="{row_h * len(ok) + 18}" font-size="11">blue: validation, orange: test '
                 f'({escape(metric.name)}, {"higher" if metric.greater_is_better else "lower"} is better)</text></svg>')
    return "".join(parts)


def _traces(trials: dict[str, list[dict]]) -> str:
    """Best loss so far against trial number, one line per family."""
    series = {}
    for family, rows in trials.items():
        best, points = None, []
        for r in rows:
            if r["status"] == "ok" and r["loss"] is not None:
                best = r["loss"] if best is None else min(best, r["loss"])
            if best is not None:
                points.append((r["trial"], best))
        if points:
            series[family] = points
    if not series:
        return ""
    xs = [x for pts in series.values() for x, _ in pts]
    ys = [y for pts in series.values() for _, y in pts]
    x_hi, y_lo, y_hi = max(xs) or 1, min(ys), max(ys)
    w, h, colours = 480, 200, ["#4a78b5", "#e39a3b", "#5a9e5a", "#b55a5a", "#8a6bb5", "#6bb5b0", "#999", "#b5a24a"]
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w + 220}" height="{h + 20}">'
             f'<rect x="0" y="0" width="{w}" height="{h}" fill="none" stroke="#ccc"/>']
    for i, (family, pts) in enumerate(sorted(series.items())):
        colour = colours[i % len(colours)]
        coords = " ".join(f"{x / x_hi * w:.1f},{(h - (y - y_lo) / ((y_hi - y_lo) or 1) * h):.1f}" for x, y in pts)
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{coords}"/>')
        parts.append(f'<text x="{w + 10}" y="{14 + 16 * i}" font-size="12" fill="{colour}">{escape(family)}</text>')
    parts.append(f'<text x="0" y="{h + 16}" font-size="11">best loss so far (lower is better) by trial</text></svg>')
    return "".join(parts)


def _over_partitions(history: list[dict], current: str) -> str:
    """The winner's scores partition by partition: drift shows as a falling test score."""
    if not history:
        return ""
    cells = ["<table><tr><th>partition</th><th>state</th><th>winner</th><th>validation</th><th>test</th>"
             "<th>promoted</th><th>stored model</th><th>champion after</th></tr>"]
    for h in history:
        style = ' style="font-weight:bold"' if h["partition"] == current else ""
        champion = f"{h['champion_family']} ({h['champion_partition']})" if h["champion_family"] else ""
        cells.append(f'<tr{style}><td>{escape(h["partition"])}</td><td>{escape(h["state"])}</td>'
                     f'<td>{escape(h["winner"] or "")}</td><td class="num">{_fmt(h["val_score"])}</td>'
                     f'<td class="num">{_fmt(h["test_score"])}</td>'
                     f'<td>{ {True: "yes", False: "no"}.get(h["promoted"], "")}</td>'
                     f'<td>{escape(stored_model(h.get("refit_rows"), h.get("refit_error")))}</td>'
                     f'<td>{escape(champion)}</td></tr>')
    return "".join(cells) + "</table>"


_COLUMN_KEYS = ("column_changes", "infinite_as_missing")


def _column_changes(profile: dict) -> str:
    """What the profile and the recipe did to columns before any family saw them; names quoted
    (repr) so a stray space shows."""
    if "column_changes" not in profile:  # a run recorded before dagml kept them
        return "<p>Not recorded for this run.</p>"
    changes = profile["column_changes"] or {}
    rows = [(c, f"dropped: {why}") for c, why in (changes.get("dropped") or {}).items()]
    rows += [(c, "date: became year, month, day of week and days since 1970-01-01") for c in changes.get("dates") or []]
    infinite = changes.get("infinite_as_missing", profile.get("infinite_as_missing")) or {}
    rows += [(c, f"{n} infinite value(s) treated as missing") for c, n in infinite.items()]
    if not rows:
        return "<p>None: every column was used as it came.</p>"
    return ("<table><tr><th>column</th><th>what dagml did</th></tr>" + "".join(
        f"<tr><td><code>{escape(repr(str(c)))}</code></td><td>{escape(what)}</td></tr>" for c, what in rows)
        + "</table>")


def stored_model(refit_rows, refit_error) -> str:
    """What the stored champion is, when it is not simply the model whose test score is shown."""
    if refit_rows:
        return f"refit on {refit_rows} rows"
    if refit_error:
        return f"the compared model (refit failed: {refit_error})"
    return ""


def _refit_note(promotion: dict) -> str:
    if not promotion.get("promoted"):
        return ""
    if promotion.get("refit_rows"):
        return (f"<p>The stored champion is a <b>refit on {promotion['refit_rows']} rows</b> (every row of the "
                "partition with a target) with the chosen hyperparameters; the test score is that of the model "
                "that was compared, fit without the test rows.</p>")
    if promotion.get("refit_error"):
        return (f"<p class='failed'>The refit on all rows failed ({escape(promotion['refit_error'])}): the "
                "champion is the compared model.</p>")
    return ""


def render_report(config, run: dict, rows: list[dict], trials: dict, promotion: dict,
                  history: list[dict] | None = None) -> str:
    metric = get_metric(run["metric"])
    body = [f"<h1>{escape(config.dag_id)} · {escape(run['partition'])}</h1>",
            f"<p>run <code>{escape(run['run_id'])}</code>; task {escape(run['task'])}; metric "
            f"{escape(metric.name)}; chosen by validation score, test score reported.</p>",
            f"<p><b>{'Promoted' if promotion['promoted'] else 'Not promoted'}</b>: {escape(promotion['reason'])}. "
            f"Champion: {escape(promotion['champion_family'])}.</p>", _refit_note(promotion),
            "<h2>Leaderboard</h2><table><tr><th>#</th><th>family</th><th>status</th><th>validation</th>"
            "<th>test</th><th>fit s</th><th>trials (failed)</th><th>best hyperparameters / error</th></tr>"]
    for i, r in enumerate(rank(rows, metric), 1):
        detail = r["error"] if r["status"] != "ok" else json.dumps(r["params"], sort_keys=True)
        body.append(
            f'<tr class="{escape(r["status"])}"><td>{i}</td><td>{escape(r["family"])}</td><td>{escape(r["status"])}</td>'
            f'<td class="num">{_fmt(r["val_score"])}</td><td class="num">{_fmt(r["test_score"])}</td>'
            f'<td class="num">{_fmt(r["fit_seconds"], 2)}</td><td class="num">{r["n_trials"] or 0} '
            f'({r["n_failed_trials"] or 0})</td><td><code>{escape(str(detail))}</code></td></tr>')
    body.append("</table>")
    body += ["<h2>Scores</h2>", _bars(rows, metric), "<h2>Search progress</h2>", _traces(trials),
             "<h2>Over partitions</h2>", _over_partitions(history or [], run["partition"])]
    profile = run.get("profile") or {}
    body.append("<h2>Data profile</h2><table>" + "".join(
        f"<tr><th>{escape(str(k))}</th><td>{escape(json.dumps(v))}</td></tr>" for k, v in profile.items()
        if k not in _COLUMN_KEYS) + "</table>")
    body += ["<h2>Columns dropped or transformed</h2>", _column_changes(profile)]
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(config.dag_id)} report</title>"
            f"<style>{_STYLE}</style></head><body>{''.join(body)}</body></html>")
