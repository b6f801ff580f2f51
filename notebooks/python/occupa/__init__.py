"""Occupa from Python: the command line's impact evaluations, profiles and forecasts on
pandas, polars and pyarrow tables, with the same numbers.

Every function takes a table and the options of the matching ``occupa`` command as
keyword arguments (the study files' field names), runs the Rust engine with the GIL
released, and returns what the command prints: a dict for ``evaluate`` and ``cluster``,
a DataFrame of the forecasts for ``forecast``. Errors raise :class:`OccupaError` with the
engine's message.

A table is read as the command line reads the same table saved as Parquet: numeric and
boolean columns are numbers; text and categorical columns (pandas ``category``, polars
``Categorical``) are their labels, so a covariate among them enters as dummies; a missing
value (NaN, None, ``pd.NA``) is a missing cell, which an evaluation drops with its row
and counts. pandas frames go through pyarrow without their index.

>>> import pandas as pd, occupa
>>> df = pd.DataFrame({"d": [0, 1] * 50, "y": [float(i % 7) for i in range(100)],
...                    "x": [float(i % 5) for i in range(100)]})
>>> r = occupa.evaluate(df, treatment="d", outcome="y", covariates=["x"], method="ols")
>>> r["method"]
'ols'
"""

from __future__ import annotations

import json as _json
from typing import Any, Iterable, Optional

from . import _occupa
from ._occupa import OccupaError

__all__ = ["OccupaError", "evaluate", "cluster", "forecast", "__version__"]
__version__: str = _occupa.version()


def _arrow(table: Any) -> Any:
    """The table as an Arrow C stream producer. pandas goes through pyarrow without its
    index (as ``to_csv(index=False)`` would write it); polars and pyarrow tables are read
    as they are."""
    module = type(table).__module__ or ""
    if module.startswith("pandas"):
        try:
            import pyarrow
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise OccupaError(
                "a pandas DataFrame crosses into Occupa through pyarrow: pip install pyarrow"
            ) from e
        return pyarrow.Table.from_pandas(table, preserve_index=False)
    if hasattr(table, "__arrow_c_stream__"):
        return table
    raise OccupaError(
        f"a {type(table).__name__} is not a table Occupa can read: pass a pandas, polars "
        "or pyarrow table"
    )


def _spec(fixed: dict, options: dict) -> str:
    spec = {k: v for k, v in {**fixed, **options}.items() if v is not None}
    for k, v in list(spec.items()):
        if isinstance(v, tuple):
            spec[k] = list(v)
    return _json.dumps(spec)


def evaluate(
    table: Any,
    *,
    outcome: str,
    method: str,
    treatment: Optional[str] = None,
    covariates: Iterable[str] = (),
    estimand: Optional[str] = None,
    **options: Any,
) -> dict:
    """Counterfactual impact evaluation, as ``occupa evaluate --json``.

    ``method`` is psm, ipw, aipw, ra, ols, did or rdd; ``covariates`` are terms as the
    command line takes them (``age``, ``age^2``, ``a*b``; a text column enters as
    dummies). Other options use the study files' names: ``cluster``, ``exact``,
    ``caliper``, ``trim=(0.05, 0.95)``, ``by``, ``time``, ``unit``, ``running``,
    ``cutoff``, ``bootstrap``, ``seed``… Returns the command line's JSON as a dict.
    """
    spec = _spec(
        {
            "method": method,
            "outcome": outcome,
            "treatment": treatment,
            "covariates": list(covariates),
            "estimand": estimand,
        },
        options,
    )
    return _json.loads(_occupa.evaluate(_arrow(table), spec))


def cluster(
    table: Any,
    *,
    columns: Iterable[str],
    method: str,
    k: Optional[int] = None,
    k_range: Optional[str] = None,
    seed: int = 0,
    **options: Any,
) -> dict:
    """Profiles of people, as ``occupa cluster --json``: ``method`` is kmeans, gmm, lca or
    kprototypes; one ``k`` or a ``k_range`` such as ``"2..6"``. The dict's ``labels``
    gives each row's cluster (from 0; None for a row left out)."""
    spec = _spec(
        {
            "method": method,
            "columns": list(columns),
            "k": k,
            "k_range": k_range,
            "seed": seed,
        },
        options,
    )
    return _json.loads(_occupa.cluster(_arrow(table), spec))


def forecast(
    table: Any,
    *,
    horizon: int,
    id: Any = "id",
    time: str = "date",
    value: str = "value",
    model: str = "auto",
    levels: Iterable[float] = (80.0, 95.0),
    **options: Any,
) -> Any:
    """Forecasts of many series, as ``occupa forecast``: a long table, one row per
    series and period. Returns the command line's CSV as a pandas DataFrame (a dict of
    columns without pandas), with the command's JSON summary in ``.attrs["summary"]``."""
    ids = [id] if isinstance(id, str) else list(id)
    spec = _spec(
        {
            "horizon": horizon,
            "id": ids,
            "time": time,
            "value": value,
            "model": model,
            "levels": [float(x) for x in levels],
        },
        options,
    )
    out = _json.loads(_occupa.forecast(_arrow(table), spec))
    try:
        import pandas
    except ImportError:  # pragma: no cover - depends on the environment
        return out
    columns = out["forecasts"]
    # The CSV's order: id, time, model, mean, then lo and hi per level.
    first = ["id", "time", "model", "mean"]
    rest = sorted(
        (c for c in columns if c not in first),
        key=lambda c: (float(c[3:]), c.startswith("hi")),
    )
    frame = pandas.DataFrame({c: columns[c] for c in first + rest})
    frame.attrs["summary"] = out["summary"]
    return frame
