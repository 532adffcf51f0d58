"""What dagml does with awkward columns before any family sees them (the profile and the recipe).

- Duplicate column names are an error naming them (a CSV reader would silently rename the
  second ``a`` to ``a.1``; a Parquet file or a query may carry both).
- Infinite values are missing values. A column more than ``MOSTLY_INFINITE`` of whose rows
  are infinite is an error naming it: that is a broken source, not a few overflows.
- A constant column (one value in every row, a missing value counting as a value) is dropped.
- An identifier-like column is dropped. With at least ``IDENTIFIER_MIN_ROWS`` non-missing rows:
  text or categorical values distinct in at least ``IDENTIFIER_SHARE`` of the non-missing rows;
  or whole numbers (an integer column, or floats that are all whole) as distinct, that also fill
  at least ``IDENTIFIER_SHARE`` of the range from their minimum to their maximum (row numbers,
  auto-increment keys). A measurement (floats with fractions) never is one.
- A date column becomes four numeric features: year, month, day of week (Monday 0) and days
  since 1970-01-01. Date columns are datetime columns, and text columns of which at least
  ``DATE_SHARE`` of the non-missing values parse with one format (guessed from their first values).

Every message quotes a column's name (repr), so a stray space shows.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field

from dagml.errors import DataError

MOSTLY_INFINITE = 0.5
IDENTIFIER_SHARE = 0.95
IDENTIFIER_MIN_ROWS = 20
DATE_SHARE = 0.95
DATE_SAMPLE = 2000  # values tried when deciding whether a text column holds dates
DATE_PARTS = ("year", "month", "day_of_week", "days_since_1970")
_MANGLED = re.compile(r"^(.*)\.(\d+)$")


def quoted(columns) -> str:
    return ", ".join(repr(str(c)) for c in columns)


def duplicated(columns) -> list[str]:
    """Names given to more than one column, in first-seen order."""
    seen, twice = set(), []
    for c in map(str, columns):
        if c in seen and c not in twice:
            twice.append(c)
        seen.add(c)
    return twice


def refuse_duplicates(columns, where: str) -> None:
    twice = duplicated(columns)
    if twice:
        raise DataError(f"{where}: duplicate column name(s) {quoted(twice)}; every column needs its own name: "
                        "rename them in the source (in a query, with AS; for a CSV, source.options.names)")


def may_be_renamed_duplicates(columns) -> bool:
    """Whether pandas' CSV reader may have renamed a duplicate: a column ``a.1`` beside a column ``a``."""
    names = set(map(str, columns))
    return any((m := _MANGLED.match(c)) and m.group(1) in names for c in names)


def _float_columns(df) -> list:
    import pandas as pd

    return [c for c in df.columns if pd.api.types.is_float_dtype(df[c])]


def infinite_counts(df) -> dict[str, int]:
    """Infinite values per float column that has any."""
    import numpy as np

    counts = {c: int(np.isinf(df[c].to_numpy(dtype=float, na_value=np.nan)).sum()) for c in _float_columns(df)}
    return {str(c): n for c, n in counts.items() if n}


def refuse_mostly_infinite(counts: dict[str, int], rows: int) -> None:
    mostly = [c for c, n in counts.items() if n > MOSTLY_INFINITE * rows]
    if mostly:
        shares = ", ".join(f"{c!r} ({counts[c]} of {rows} rows)" for c in mostly)
        raise DataError(f"column(s) {shares} are mostly infinite (more than {MOSTLY_INFINITE:.0%} of rows); "
                        "fix the source or list them in drop_columns")


def finite(df):
    """``df`` with infinite values in float columns as missing values (a copy when there are any)."""
    import numpy as np

    columns = [c for c in _float_columns(df) if np.isinf(df[c].to_numpy(dtype=float, na_value=np.nan)).any()]
    if not columns:
        return df
    df = df.copy()
    for c in columns:
        df[c] = df[c].mask(np.isinf(df[c].to_numpy(dtype=float, na_value=np.nan)))
    return df


def constant_reason(s) -> str | None:
    missing = s.isna()
    if missing.all():
        value = None
    elif missing.any() or not (s == s.iloc[0]).all():  # a value and gaps is not constant: the gaps tell
        return None
    else:
        value = s.iloc[0]
    value = value.item() if hasattr(value, "item") else value  # 1, not np.int64(1)
    return f"constant (every row is {value!r})"


def _whole_numbers(values) -> bool:
    import pandas as pd

    if pd.api.types.is_bool_dtype(values) or not pd.api.types.is_numeric_dtype(values):
        return False
    if pd.api.types.is_integer_dtype(values):
        return True
    return bool((values == values.round()).all())


def identifier_reason(s) -> str | None:
    import pandas as pd

    values = s.dropna()
    n = len(values)
    if n < IDENTIFIER_MIN_ROWS:
        return None
    whole = _whole_numbers(values)
    text = pd.api.types.is_string_dtype(values) or isinstance(values.dtype, pd.CategoricalDtype) \
        or pd.api.types.is_object_dtype(values)
    if not (whole or text):
        return None
    distinct = values.nunique()
    if distinct < IDENTIFIER_SHARE * n:
        return None
    if not whole:
        return f"identifier-like ({distinct} distinct values in {n} rows)"
    span = float(values.max()) - float(values.min()) + 1
    if distinct >= IDENTIFIER_SHARE * span:
        return f"identifier-like ({distinct} distinct whole numbers in {n} rows, filling their range)"
    return None


def _is_text(s) -> bool:
    import pandas as pd

    return (pd.api.types.is_string_dtype(s) or pd.api.types.is_object_dtype(s)) and not isinstance(
        s.dtype, pd.CategoricalDtype)


def date_format(s) -> tuple[bool, str | None]:
    """(is a date column, the format its text parses with; None for a datetime column)."""
    import pandas as pd
    from pandas.tseries.api import guess_datetime_format

    if pd.api.types.is_datetime64_any_dtype(s):
        return True, None
    if not _is_text(s):
        return False, None
    values = s.dropna()
    if len(values) > DATE_SAMPLE:
        values = values.iloc[:: len(values) // DATE_SAMPLE]
    values = values.astype(str).str.strip()
    values = values[values != ""]
    if values.empty or pd.to_numeric(values, errors="coerce").notna().mean() > 0.5:  # numbers as text are not dates
        return False, None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "parsing in %d/%m/%Y format when dayfirst=False": both are tried
        guesses = [guess_datetime_format(v, dayfirst=first) for first in (False, True) for v in values.unique()[:20]]
    # ISO first (the same dates with or without a time of day), then month-first, then day-first:
    # on a tie the earlier wins, so 2024-01-02 is never read as the 1st of February
    iso = ["ISO8601"] if any(g and g.startswith("%Y-%m-%d") for g in guesses) else []
    best, best_share = None, 0.0
    for fmt in dict.fromkeys(iso + [g for g in guesses if g and not g.startswith("%Y-%m-%d")]):
        share = float(parse_dates(values, fmt).notna().mean())
        if share > best_share:
            best, best_share = fmt, share
    return (True, best) if best_share >= DATE_SHARE else (False, None)


def parse_dates(s, fmt: str | None):
    """Naive UTC timestamps; what does not parse is missing (NaT)."""
    import pandas as pd

    if pd.api.types.is_datetime64_any_dtype(s):
        return s.dt.tz_convert("UTC").dt.tz_localize(None) if s.dt.tz is not None else s
    text = s.astype(object).where(s.notna(), None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "could not infer format": parsed one by one, as intended
        parsed = pd.to_datetime(text, format=fmt, errors="coerce", utc=True)
    return pd.Series(parsed, index=s.index).dt.tz_localize(None)


@dataclass
class ColumnPlan:
    """What the recipe does with the feature columns: drop some (with the reason), expand dates."""

    dropped: dict[str, str] = field(default_factory=dict)
    dates: dict[str, str | None] = field(default_factory=dict)


def plan(features) -> ColumnPlan:
    import pandas as pd

    out = ColumnPlan()
    for col in features.columns:
        s = features[col]
        if pd.api.types.is_timedelta64_dtype(s):
            out.dropped[col] = "a duration (timedelta): not used as a feature"
            continue
        reason = constant_reason(s)
        if reason is None:
            is_date, fmt = date_format(s)
            if is_date:
                out.dates[col] = fmt
                continue
            reason = identifier_reason(s)
        if reason is not None:
            out.dropped[col] = reason
    return out
