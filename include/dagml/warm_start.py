"""Warm start: points that earlier partitions' searches found, re-entered into today's space.

A stored point is hyperopt's own raw point (``trial["misc"]["vals"]`` flattened to
``{label: value}``; an ``hp.choice`` value is the option's index). The space it re-enters
may differ from the one it came from: a family's space can depend on the row count (kNN's
``n_neighbors`` bound) or gain and lose hyperparameters between releases. So each point is
checked against the current space: labels the space lacks are ignored; a number outside a
bounded distribution is clipped to its bounds; a point that lacks an active label, or whose
choice index no longer exists, or that holds a non-number, is dropped. Nothing here raises
for a bad stored point; every drop and clip is logged (logger ``dagml.search``).
"""

from __future__ import annotations

import logging
import math
import numbers

log = logging.getLogger("dagml.search")

_BOUNDED = ("uniform", "quniform", "loguniform", "qloguniform")


def hyperparameters(space) -> dict:
    """label -> (distribution node, conditions, is_choice), read from the space's pyll graph.

    ``conditions`` is a set of tuples of (choice label, index): the label is active when all
    the pairs of any one tuple hold; an empty tuple means always."""
    from hyperopt.pyll import as_apply

    found: dict = {}

    def walk(node, conds):
        if node.name == "switch":  # hp.choice / hp.pchoice: an index, then one branch per option
            index, *options = node.inputs()
            walk(index, conds)
            found[index.arg["label"].obj][2] = True
            for i, option in enumerate(options):
                walk(option, conds + ((index.arg["label"].obj, i),))
        elif node.name == "hyperopt_param":
            found.setdefault(node.arg["label"].obj, [node.arg["obj"], set(), False])[1].add(conds)
        else:
            for child in node.inputs():
                walk(child, conds)

    walk(as_apply(space), ())
    return {label: tuple(v) for label, v in found.items()}


def grid_points(space, limit: int = 64) -> list[dict] | None:
    """Every point of a space made only of choices (raw points: option indices), or None when the
    space has a continuous hyperparameter or more than ``limit`` points. Searching such a space
    past its size only repeats points (the baseline has two)."""
    import itertools

    params = hyperparameters(space)
    if not params or not all(is_choice for _, _, is_choice in params.values()):
        return None
    labels = sorted(params)
    sizes = [_n_options(params[label][0]) for label in labels]
    if math.prod(sizes) > limit * 16:
        return None
    points, seen = [], set()
    for combo in itertools.product(*map(range, sizes)):
        full = dict(zip(labels, combo))
        point = {label: i for label, i in full.items()
                 if any(all(full.get(choice) == j for choice, j in conds) for conds in params[label][1])}
        key = tuple(sorted(point.items()))
        if key not in seen:
            seen.add(key)
            points.append(point)
    return points if len(points) <= limit else None


def reenter(space, vals, family: str = "") -> dict | None:
    """``vals`` as a point valid in ``space`` (only its active labels), or None to drop it."""
    try:
        params = hyperparameters(space)
    except Exception as exc:  # a space this module cannot read: no warm start rather than no search
        log.warning("%s: warm start off, cannot read the space (%s: %s)", family, type(exc).__name__, exc)
        return None
    if not isinstance(vals, dict):
        log.warning("%s: warm-start point dropped: not a {label: value} mapping: %r", family, vals)
        return None
    point = {}
    for label, value in vals.items():
        if label not in params:
            log.info("%s: warm-start point: label %r (value %r) is not in the space; ignored", family, label, value)
            continue
        node, _, is_choice = params[label]
        if not isinstance(value, numbers.Real) or isinstance(value, bool) or not math.isfinite(value):
            log.warning("%s: warm-start point dropped: %s = %r is not a finite number", family, label, value)
            return None
        if is_choice:
            n = _n_options(node)
            if value != int(value) or not 0 <= value < n:
                log.warning("%s: warm-start point dropped: %s = %r is not an index of its %d options",
                            family, label, value, n)
                return None
            point[label] = int(value)
            continue
        value = value.item() if hasattr(value, "item") else value  # numpy scalars
        low, high = _bounds(node)
        slack = 1e-9 * max(1.0, abs(low), abs(high))  # exp() may differ from numpy's by an ulp at a bound
        if value < low - slack or value > high + slack:
            clipped = min(max(value, low), high)
            log.info("%s: warm-start point: %s = %r clipped to %r (bounds %r..%r)", family, label, value,
                     clipped, low, high)
            value = clipped
        point[label] = value
    active = {label for label, (_, conditions, _) in params.items()
              if any(all(point.get(choice) == i for choice, i in conds) for conds in conditions)}
    for label in sorted(active - point.keys()):
        log.warning("%s: warm-start point dropped: it has no value for %s: %r", family, label, vals)
        return None
    return {label: v for label, v in point.items() if label in active}  # hyperopt wants inactive ones absent


def _arg(node, name):
    from hyperopt.pyll import rec_eval
    from hyperopt.pyll.base import MissingArgument

    arg = node.arg.get(name, MissingArgument)
    return None if arg is MissingArgument else rec_eval(arg)


def _n_options(node) -> int:
    if node.name == "categorical":
        return len(_arg(node, "p"))
    low, high = _arg(node, "low"), _arg(node, "high")  # hp.choice: randint(n_options)
    return low if high is None else high - low


def _bounds(node) -> tuple[float, float]:
    """The smallest and largest value the distribution draws (what ``hyperopt.pyll.stochastic`` returns)."""
    name = node.name
    if name == "randint":
        low, high = _arg(node, "low"), _arg(node, "high")
        return (0, low - 1) if high is None else (low, high - 1)
    if name not in _BOUNDED:  # normal, lognormal...: unbounded
        return -math.inf, math.inf
    low, high = _arg(node, "low"), _arg(node, "high")
    if "log" in name:
        low, high = math.exp(low), math.exp(high)
    if name.startswith("q"):
        q = _arg(node, "q")
        low, high = round(low / q) * q, round(high / q) * q
    return low, high
