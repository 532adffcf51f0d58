"""The synthetic partition of bench/largedata.py: seeded, mixed columns, 5% missing."""

from __future__ import annotations

N_NUMERIC, N_INTEGER, N_LOW, N_HIGH = 30, 5, 10, 5  # 50 feature columns
MISSING = 0.05


def frame(rows: int, seed: int = 42):
    """``rows`` rows: 30 float and 5 integer columns, 10 low-cardinality categoricals (3 to 12
    values), 5 high-cardinality ones (1,000 to 50,000 values), 5% of every feature missing, and a
    binary target ``y`` that depends on some of each."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    columns, logit = {}, np.zeros(rows)
    for i in range(N_NUMERIC):
        x = rng.normal(size=rows)
        if i < 8:
            logit += (0.6 / (1 + i)) * (x if i % 2 else np.tanh(2 * x))
        columns[f"num{i}"] = x
    for i in range(N_INTEGER):
        x = rng.integers(0, 100, rows)
        if i == 0:
            logit += 0.01 * (x - 50)
        columns[f"int{i}"] = x
    for i in range(N_LOW):
        levels = 3 + i
        codes = rng.integers(0, levels, rows)
        if i < 3:
            logit += rng.normal(scale=0.5, size=levels)[codes]
        columns[f"low{i}"] = pd.Categorical.from_codes(codes, [f"l{i}_{k}" for k in range(levels)])
    for i, levels in enumerate((1_000, 5_000, 10_000, 20_000, 50_000)):
        codes = rng.integers(0, levels, rows)
        if i == 0:
            logit += rng.normal(scale=0.3, size=levels)[codes]
        columns[f"high{i}"] = pd.Categorical.from_codes(codes, [f"h{i}_{k}" for k in range(levels)])
    df = pd.DataFrame(columns)
    for name in df.columns:  # 5% missing in every feature, the integers then become floats
        df.loc[rng.random(rows) < MISSING, name] = None
    for name in df.columns:  # as a CSV or a warehouse export would give them: text, not categoricals
        if isinstance(df[name].dtype, pd.CategoricalDtype):
            df[name] = df[name].astype(str).where(df[name].notna(), None)
    df["y"] = np.where(logit + rng.logistic(size=rows) > 0, "yes", "no")
    return df


def write(path, rows: int, seed: int = 42) -> None:
    frame(rows, seed).to_parquet(path, index=False)
