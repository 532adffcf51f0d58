"""Every dagml plot, drawn with plotly, for the HTML report and the Airflow plugin's pages alike.

Each function takes plain data as the results DB stores it and returns a
``plotly.graph_objects.Figure``; ``fragment`` turns a figure into an HTML ``<div>`` that needs
plotly's JavaScript on the page once (``plotly_js()`` gives it, from the installed package: no
internet needed). Inputs:

- ``trials``: ``{family: ResultsStore.trials(...)}`` (rows with ``trial``, ``status``, ``loss``);
- ``entries``: ``dagml.leaderboard.entries(...)`` (or stored leaderboard rows);
- ``history``: ``dagml.store.history.partition_history(...)``;
- ``diagnostics``: ``ResultsStore.diagnostics(...)`` (see ``dagml.diagnostics.compute``).

A figure with nothing to draw says so in its title instead of failing.
"""

from __future__ import annotations

from dagml.metrics import get_metric

HEIGHT = 360
VALIDATION, TEST = "#4a78b5", "#e39a3b"


def _figure(title: str, x: str, y: str, height: int = HEIGHT):
    import plotly.graph_objects as go

    # a light look set by hand: plotly's named templates ("plotly_white") are validated anew for
    # every figure, which took ~20-40 ms of a page's time per figure
    axis = {"showgrid": True, "gridcolor": "#e5e5e5", "zeroline": False, "linecolor": "#999", "automargin": True}
    # (given to the constructor: a Figure made bare first copies in the default template)
    return go.Figure(layout={
        "title": title, "xaxis": {**axis, "title": x}, "yaxis": {**axis, "title": y}, "height": height,
        "template": "none", "plot_bgcolor": "white", "paper_bgcolor": "white", "font": {"size": 12},
        "margin": {"l": 60, "r": 20, "t": 50, "b": 50}, "legend": {"orientation": "h", "y": -0.2}})


def _direction(metric: str) -> str:
    return "higher is better" if get_metric(metric).greater_is_better else "lower is better"


def search_traces(trials: dict[str, list[dict]], metric: str):
    """Best validation score so far against trial number, one line per family's search."""
    import plotly.graph_objects as go

    m = get_metric(metric)
    fig = _figure(f"Search progress: best {metric} so far ({_direction(metric)})", "trial", metric)
    for family, rows in sorted(trials.items()):
        best, xs, ys = None, [], []
        for r in rows:
            if r["status"] == "ok" and r["loss"] is not None:
                best = r["loss"] if best is None else min(best, r["loss"])
            if best is not None:
                xs.append(r["trial"])
                ys.append(-best if m.greater_is_better else best)  # hyperopt minimised metric.loss(score)
        if xs:
            fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers", name=family, line_shape="hv"))
    return fig


def scores_by_family(entries: list[dict], metric: str):
    """Validation and test score of each family that finished, in leaderboard order."""
    import plotly.graph_objects as go

    ok = [e for e in entries if e["status"] == "ok"]
    fig = _figure(f"{metric} by family ({_direction(metric)}; chosen by validation)", "family", metric)
    families = [e["family"] for e in ok]
    fig.add_trace(go.Bar(x=families, y=[e["val_score"] for e in ok], name="validation", marker_color=VALIDATION))
    fig.add_trace(go.Bar(x=families, y=[e["test_score"] for e in ok], name="test", marker_color=TEST))
    fig.update_layout(barmode="group")
    return fig


def over_partitions(history: list[dict], metric: str):
    """The winner's validation and test score partition by partition (drift shows as a falling
    test score); promoted partitions are marked."""
    import plotly.graph_objects as go

    done = [h for h in history if h["test_score"] is not None]
    fig = _figure(f"Winner's {metric} over partitions ({_direction(metric)})", "partition", metric)
    x = [h["partition"] for h in done]
    fig.add_trace(go.Scatter(x=x, y=[h["val_score"] for h in done], name="validation", mode="lines+markers",
                             line_color=VALIDATION, text=[h["winner"] for h in done]))
    fig.add_trace(go.Scatter(x=x, y=[h["test_score"] for h in done], name="test", mode="lines+markers",
                             line_color=TEST, text=[h["winner"] for h in done]))
    promoted = [h for h in done if h["promoted"]]
    fig.add_trace(go.Scatter(x=[h["partition"] for h in promoted], y=[h["test_score"] for h in promoted],
                             name="promoted", mode="markers", marker={"symbol": "star", "size": 12, "color": "#2a2"},
                             text=[h["winner"] for h in promoted]))
    fig.update_xaxes(type="category")
    return fig


def roc(diagnostics: dict):
    """ROC curve of the chosen model on the test rows (binary tasks)."""
    import plotly.graph_objects as go

    curve = diagnostics["roc"]
    fig = _figure(f"ROC on {diagnostics['rows']} test rows (AUC {curve['auc']:.4f})", "false positive rate",
                  "true positive rate")
    fig.add_trace(go.Scatter(x=curve["fpr"], y=curve["tpr"], mode="lines", name="model", line_shape="hv"))
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="chance", line={"dash": "dot", "color": "#999"}))
    return fig


def precision_recall(diagnostics: dict):
    """Precision-recall curve of the chosen model on the test rows (binary tasks, second class positive)."""
    import plotly.graph_objects as go

    curve = diagnostics["pr"]
    positive = diagnostics["classes"][1]
    fig = _figure(f"Precision-recall for {positive!r} (average precision {curve['average_precision']:.4f})",
                  "recall", "precision")
    fig.add_trace(go.Scatter(x=curve["recall"], y=curve["precision"], mode="lines", name="model", line_shape="hv"))
    return fig


def confusion(diagnostics: dict):
    """Confusion matrix on the test rows: rows are the actual class, columns the predicted one."""
    import plotly.graph_objects as go

    labels, matrix = diagnostics["confusion"]["labels"], diagnostics["confusion"]["matrix"]
    fig = _figure(f"Confusion matrix on {diagnostics['rows']} test rows", "predicted", "actual",
                  height=max(HEIGHT, 40 * len(labels) + 120))
    fig.add_trace(go.Heatmap(z=matrix, x=labels, y=labels, colorscale="Blues", text=matrix, texttemplate="%{text}",
                             hovertemplate="actual %{y}, predicted %{x}: %{z}<extra></extra>"))
    fig.update_xaxes(type="category")
    fig.update_yaxes(type="category", autorange="reversed")
    return fig


def predicted_vs_actual(diagnostics: dict):
    """Predicted against actual values on (a sample of) the test rows (regression)."""
    import plotly.graph_objects as go

    points = diagnostics["points"]
    actual, predicted = points["actual"], points["predicted"]
    fig = _figure(f"Predicted vs actual ({len(actual)} of {points['of_rows']} test rows)", "actual", "predicted")
    fig.add_trace(go.Scatter(x=actual, y=predicted, mode="markers", name="rows", marker={"size": 5, "opacity": 0.6}))
    if actual:
        lo, hi = min(actual + predicted), max(actual + predicted)
        fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="perfect",
                                 line={"dash": "dot", "color": "#999"}))
    return fig


def residuals(diagnostics: dict):
    """Residual (actual − predicted) against the prediction (regression)."""
    import plotly.graph_objects as go

    points = diagnostics["points"]
    residual = [a - p for a, p in zip(points["actual"], points["predicted"])]
    fig = _figure("Residuals (actual − predicted)", "predicted", "residual")
    fig.add_trace(go.Scatter(x=points["predicted"], y=residual, mode="markers", name="rows",
                             marker={"size": 5, "opacity": 0.6}))
    fig.add_hline(y=0, line_dash="dot", line_color="#999")
    return fig


def importance(diagnostics: dict, top: int = 25):
    """Permutation importance on the test rows: how much the score worsens when a column is shuffled."""
    import plotly.graph_objects as go

    shown = diagnostics["importance"][:top][::-1]  # the most important at the top
    fig = _figure(f"Permutation importance ({diagnostics['metric']} lost when shuffled, "
                  f"{diagnostics['importance_repeats']} repeats on {diagnostics['importance_rows']} test rows)",
                  f"{diagnostics['metric']} lost", "", height=max(HEIGHT, 22 * len(shown) + 120))
    fig.add_trace(go.Bar(x=[d["mean"] for d in shown], y=[d["feature"] for d in shown], orientation="h",
                         error_x={"type": "data", "array": [d["std"] for d in shown]}, name="importance"))
    fig.update_yaxes(type="category")
    return fig


def champion_figures(diagnostics: dict | None) -> list:
    """The figures that fit the chosen model's task: ROC and precision-recall (binary), a
    confusion matrix (classification), predicted vs actual and residuals (regression), and
    permutation importance. None at all for diagnostics that were not recorded or failed."""
    if not diagnostics or "error" in diagnostics:
        return []
    figures = []
    if "roc" in diagnostics:
        figures += [roc(diagnostics), precision_recall(diagnostics)]
    if "confusion" in diagnostics:
        figures.append(confusion(diagnostics))
    if "points" in diagnostics:
        figures += [predicted_vs_actual(diagnostics), residuals(diagnostics)]
    if diagnostics.get("importance"):
        figures.append(importance(diagnostics))
    return figures


def sparkline(values: list[float], label: str):
    """A bare line of ``values`` (a dataset's winners' test scores over partitions) for a table
    cell: no axes, no hover chrome; ``label`` names it for screen readers and tests."""
    import plotly.graph_objects as go

    fig = go.Figure(go.Scatter(y=values, mode="lines", line={"color": TEST, "width": 1.5}, hoverinfo="y"), layout={
        "template": "none", "width": 160, "height": 32, "margin": {"l": 2, "r": 2, "t": 2, "b": 2},
        "xaxis": {"visible": False}, "yaxis": {"visible": False}, "showlegend": False,
        "plot_bgcolor": "rgba(0,0,0,0)", "paper_bgcolor": "rgba(0,0,0,0)",
        "meta": {"label": label}})
    return fig


def fragment(fig, div_id: str | None = None, static: bool = False) -> str:
    """A figure as an HTML ``<div>`` (plus its drawing script), without plotly's JavaScript;
    ``static``: no toolbar, zoom or hover (a sparkline in a table cell)."""
    config = {"staticPlot": True} if static else {"displaylogo": False, "responsive": True}
    return fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id, config=config)


def plotly_js() -> str:
    """plotly.js from the installed package (about 4.8 MB), for one ``<script>`` per page."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()
