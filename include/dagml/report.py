"""A self-contained HTML report of one run: its leaderboard, trigger values, plots (plotly, its
JavaScript inlined once, so the file opens with no internet), history and data profile."""

from __future__ import annotations

import json
from html import escape

from dagml import charts
from dagml import leaderboard as board

_STYLE = """body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:4px 8px;font-size:13px;text-align:left}th{background:#f3f3f3}
.failed{color:#a00}.num{text-align:right;font-variant-numeric:tabular-nums}code{font-size:12px}"""


def _fmt(value, digits=5) -> str:
    return "" if value is None else f"{value:.{digits}f}"


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


# a refit_error that is a decision, not a failure: the refit would have outlasted its seconds
NOT_REFIT = "not refit: "


def _why_not_refit(refit_error: str) -> str:
    return refit_error if refit_error.startswith(NOT_REFIT) else f"refit failed: {refit_error}"


def stored_model(refit_rows, refit_error) -> str:
    """What the stored champion is, when it is not simply the model whose test score is shown."""
    if refit_rows:
        return f"refit on {refit_rows} rows"
    if refit_error:
        return f"the compared model ({_why_not_refit(refit_error)})"
    return ""


def registered(version, error) -> str:
    """What the model registry holds of a run's winner (empty without a registry)."""
    if error:
        return f"not registered ({error})"
    return f"version {version}" if version else ""


def _refit_note(promotion: dict) -> str:
    if not promotion.get("promoted"):
        return ""
    if promotion.get("refit_rows"):
        return (f"<p>The stored champion is a <b>refit on {promotion['refit_rows']} rows</b> (every row of the "
                "partition with a target) with the chosen hyperparameters; the test score is that of the model "
                "that was compared, fit without the test rows.</p>")
    if promotion.get("refit_error"):
        return (f"<p class='failed'>The champion is the compared model "
                f"({escape(_why_not_refit(promotion['refit_error']))}).</p>")
    return ""


def _leaderboard_table(entries: list[dict]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h, _ in board.CELLS)
    rows = []
    for e in entries:
        tds = "".join(f'<td{" class=num" if h in board.NUMERIC else ""}>{escape(c)}</td>'
                      for (h, _), c in zip(board.CELLS, board.cells(e)))
        rows.append(f'<tr class="{escape(e["status"])}">{tds}</tr>')
    return f"<table class='leaderboard'><tr>{head}</tr>{''.join(rows)}</table>"


def _plots(figures: list) -> str:
    return "".join(f"<div class='plot'>{charts.fragment(f)}</div>" for f in figures)


def _champion_section(diagnostics: dict | None) -> str:
    if diagnostics is None:
        return "<p>Not recorded for this run.</p>"
    if "error" in diagnostics:
        return f"<p class='failed'>Could not be computed: {escape(diagnostics['error'])}</p>"
    return (f"<p>The chosen model on this run's {diagnostics['rows']} test rows ({escape(diagnostics['metric'])} "
            f"{_fmt(diagnostics['test_score'])}).</p>" + _plots(charts.champion_figures(diagnostics)))


def render_report(config, run: dict, rows: list[dict], trials: dict, promotion: dict,
                  history: list[dict] | None = None, diagnostics: dict | None = None) -> str:
    """``rows``: the run's stored leaderboard rows; ``trials``: {family: stored trials};
    ``history``: ``partition_history``; ``diagnostics``: ``ResultsStore.diagnostics``."""
    metric = run["metric"]
    entries = board.entries(rows, metric, run.get("selected_family"))
    trigger = board.trigger_text(run.get("trigger"))
    body = [f"<h1>{escape(config.dag_id)} · {escape(run['partition'])}</h1>",
            f"<p>run <code>{escape(run['run_id'])}</code>; task {escape(run['task'])}; metric "
            f"{escape(metric)}; chosen by validation score, test score reported.</p>",
            f"<p>Trigger values: <code>{escape(trigger)}</code></p>" if trigger else "",
            f"<p><b>{'Promoted' if promotion['promoted'] else 'Not promoted'}</b>: {escape(promotion['reason'])}. "
            f"Champion: {escape(promotion['champion_family'])}.</p>", _refit_note(promotion),
            "<h2>Leaderboard</h2>", _leaderboard_table(entries),
            "<h2>Scores</h2>", _plots([charts.scores_by_family(entries, metric)]),
            "<h2>Search progress</h2>", _plots([charts.search_traces(trials, metric)]),
            "<h2>The chosen model</h2>", _champion_section(diagnostics),
            "<h2>Over partitions</h2>", _plots([charts.over_partitions(history or [], metric)]),
            _over_partitions(history or [], run["partition"])]
    profile = run.get("profile") or {}
    body.append("<h2>Data profile</h2><table>" + "".join(
        f"<tr><th>{escape(str(k))}</th><td>{escape(json.dumps(v))}</td></tr>" for k, v in profile.items()
        if k not in _COLUMN_KEYS) + "</table>")
    body += ["<h2>Columns dropped or transformed</h2>", _column_changes(profile)]
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(config.dag_id)} report</title>"
            f"<style>{_STYLE}</style><script>{charts.plotly_js()}</script></head>"
            f"<body>{''.join(body)}</body></html>")
