"""Occupa from Python: the command line's impact evaluations, profiles, forecasts and
anonymisations on pandas, polars and pyarrow tables, with the same numbers; research
releases and studies.

Every function takes a table and the options of the matching ``occupa`` command as
keyword arguments (the study files' field names), runs the Rust engine with the GIL
released, and returns what the command prints: a dict for ``evaluate`` and ``cluster``,
a DataFrame of the forecasts for ``forecast``, the released table and its risk report for
``anonymise_table``. :func:`read_release` opens a research release (never a store);
:func:`occupa.study.run` runs a study file as ``occupa study run`` does. Errors raise
:class:`OccupaError` with the engine's message.

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
import os as _os
from dataclasses import dataclass as _dataclass
from typing import Any, Iterable, Optional

from . import _occupa
from ._occupa import OccupaError

__all__ = [
    "OccupaError",
    "evaluate",
    "cluster",
    "forecast",
    "anonymise_table",
    "read_release",
    "Release",
    "study",
    "__version__",
]
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
    levels = [float(x) for x in levels]
    spec = _spec(
        {
            "horizon": horizon,
            "id": ids,
            "time": time,
            "value": value,
            "model": model,
            "levels": levels,
        },
        options,
    )
    out = _json.loads(_occupa.forecast(_arrow(table), spec))
    try:
        import pandas
    except ImportError:  # pragma: no cover - depends on the environment
        return out
    columns = out["forecasts"]
    frame = pandas.DataFrame({c: columns[c] for c in _forecast_columns(levels)})
    frame.attrs["summary"] = out["summary"]
    return frame


@_dataclass(frozen=True)
class Profile:
    """A fitted employability index: ``report`` is ``occupa profile fit --json`` as a
    dict (``auc``, ``brier``, ``calibration_slope``, ``calibration_intercept`` on the later
    persons, ``by_group``, ``fairness``, ``coefficients``, ``marginal_effects``, ``drift``…);
    ``model`` the fitted model's JSON, as a scoring rule keeps it."""

    report: dict
    model: str

    def score(self, table: Any) -> Any:
        """Scores each row: the probability of the outcome, the risk of not reaching it,
        the risk class (0 when not scored) and why a row was not scored. A pandas
        DataFrame (a dict of columns without pandas), in the table's row order."""
        p, classes, why = _occupa.profile_score(_arrow(table), self.model)
        outcome = self.report.get("outcome", "outcome")
        columns = {
            f"p_{outcome}": p,
            "risk": [1.0 - x if x == x else x for x in p],
            "class": classes,
            "not_scored": why,
        }
        try:
            import pandas
        except ImportError:  # pragma: no cover - depends on the environment
            return columns
        return pandas.DataFrame(columns)


def profile_fit(
    table: Any,
    *,
    covariates: Iterable[str],
    validate_from: str,
    outcome: str = "employed_12m",
    model: str = "logit",
    period: str = "intake_month",
    **options: Any,
) -> Profile:
    """The employability index, as ``occupa profile fit``: ``model`` is logit, probit or
    boosting, fitted on the rows whose ``period`` comes before ``validate_from`` and
    validated on the later ones. Other options use the command's names: ``covariance``
    ("model" or "robust"), ``train_from``, ``validate_to``, ``min_level``, ``groups``,
    ``classes``, ``threshold``, ``boosting={"iterations": 200, ...}``."""
    spec = _spec(
        {
            "outcome": outcome,
            "covariates": list(covariates),
            "model": model,
            "period": period,
            "validate_from": validate_from,
        },
        options,
    )
    report, fitted = _occupa.profile_fit(_arrow(table), spec)
    return Profile(report=_json.loads(report), model=fitted)


def _level_name(level: float) -> str:
    """The engine's name of an interval level: 80 -> "80", 99.5 -> "99_5"."""
    level = float(level)
    return str(int(level)) if level.is_integer() else repr(level).replace(".", "_")


def _forecast_columns(levels: Iterable[float]) -> list:
    """The command line's CSV columns: id, time, model, mean, then lo and hi per level in
    the order the levels were given."""
    names = ["id", "time", "model", "mean"]
    for level in levels:
        for side in ("lo", "hi"):
            name = f"{side}_{_level_name(level)}"
            if name not in names:
                names.append(name)
    return names


def anonymise_table(
    table: Any,
    *,
    qi: Iterable[str],
    k: int,
    sensitive: Optional[str] = None,
    builtin: Optional[dict] = None,
    hierarchies: Optional[str] = None,
    drop: Iterable[str] = (),
    keep: Iterable[str] = (),
    quarantine: bool = False,
    **options: Any,
) -> tuple:
    """A k-anonymous (and l-diverse or t-close) release of a table, as ``occupa
    anonymise-table``: the optimal generalisation of the quasi-identifiers ``qi`` with
    hierarchies from ``builtin`` (``{"age": "age", "score": "ordinal:0-30:5,10"}``: age,
    date, municipality, citizenship, flat, ordinal) or files ``hierarchies/<column>.csv``.

    Every column must be declared, as on the command line: a quasi-identifier, the
    ``sensitive`` one, left out (``drop``) or released as it is (``keep``), so that a date
    or a municipality nobody thought of cannot go out untouched; a column holding tax
    codes, e-mail addresses, long numbers or names is refused unless dropped. Other
    options by their command-line names: ``l``, ``l_variant``, ``c``, ``t``,
    ``max_suppression``, ``metric``, ``gs_factor``, ``local_suppression``, ``max_risk``,
    ``risk_threshold``. A release above the risk policy raises :class:`OccupaError`.

    Rows whose value a built-in hierarchy cannot place (an impossible date, an unknown
    municipality) are an error naming them; with ``quarantine=True`` they are left out and
    listed in the report's ``"quarantine"`` (row, column, reason; never the value).

    Returns ``(released, report)``: the released table, of the input's kind (pandas,
    polars or pyarrow), with the input's rows in order (suppressed ones with ``*``), the
    quasi-identifiers as text and the other released columns as they were; and the risk
    report as a dict (``risk-report.json``).
    """
    builtins = [f"{c}={kind}" for c, kind in (builtin or {}).items()]
    spec = _spec(
        {
            "qi": list(qi),
            "k": k,
            "sensitive": sensitive,
            "builtin": builtins,
            "hierarchies": None if hierarchies is None else _os.fspath(hierarchies),
            "drop": list(drop),
            "keep": list(keep),
        },
        options,
    )
    report, header, generalised, rows, left_out = _occupa.anonymise_table(
        _arrow(table), spec, quarantine
    )
    report = _json.loads(report)
    report["quarantine"] = [
        {"row": line - 2, "column": column, "reason": reason}
        for line, column, reason in left_out
    ]
    return _released(table, header, dict(generalised), rows), report


def _released(table: Any, header: list, generalised: dict, rows: list) -> Any:
    """The input's rows `rows`, its columns `header`, the generalised ones replaced."""
    module = type(table).__module__ or ""
    if module.startswith("pandas"):
        import pandas

        out = table.iloc[rows][header].reset_index(drop=True)
        for c, values in generalised.items():
            out[c] = pandas.Series(values, dtype=object)
        return out
    if module.startswith("polars"):
        import polars

        out = table.select(header)[rows]
        return out.with_columns(
            [polars.Series(c, values, dtype=polars.String) for c, values in generalised.items()]
        )
    import pyarrow

    out = pyarrow.table(table).select(header).take(pyarrow.array(rows, type=pyarrow.int64()))
    for c, values in generalised.items():
        out = out.set_column(out.schema.get_field_index(c), c, pyarrow.array(values, pyarrow.string()))
    return out


@_dataclass(frozen=True)
class Release:
    """A research release made by ``occupa anonymise``: one row per person in
    ``persons`` (their jobs in ``employment``, their services in ``services``, joined by
    ``id``), the risk report and the data dictionary. ``*`` is a value generalised away;
    a missing value is unknown or not applicable."""

    path: str
    persons: Any
    employment: Any
    services: Any
    report: dict
    dictionary: str


def read_release(path: Any, *, backend: str = "pandas") -> Release:
    """Opens the research release in the folder ``path`` as pandas (or ``backend="polars"``)
    frames. A column whose every value is a number is numeric, the others text (a
    generalised value such as ``30-39`` or ``*`` keeps its column as text).

    Only releases are read: a store (identifiable, pooled data) is refused, as the study
    runner refuses it; a tenant's staff read their own store through a study with
    ``tenant=`` (:func:`occupa.study.run`)."""
    root = _os.fspath(path)
    if _os.path.exists(_os.path.join(root, "store.json")):
        raise OccupaError(
            f"{root} is a store (identifiable, pooled data): Python reads a research release; "
            f"make one with occupa anonymise --data {root} --policy POLICY.toml --out DIR"
        )
    report_path = _os.path.join(root, "risk-report.json")
    if not _os.path.isfile(report_path):
        raise OccupaError(
            f"{root} is not a research release (no risk-report.json): make one with occupa anonymise"
        )
    with open(report_path, encoding="utf-8") as f:
        report = _json.load(f)
    dictionary = ""
    if _os.path.isfile(_os.path.join(root, "DICTIONARY.md")):
        with open(_os.path.join(root, "DICTIONARY.md"), encoding="utf-8") as f:
            dictionary = f.read()
    frames = {}
    for name in ("persons", "employment", "services"):
        file = _os.path.join(root, f"{name}.csv")
        frames[name] = _read_csv(file, backend) if _os.path.isfile(file) else None
    if frames["persons"] is None:
        raise OccupaError(f"{root}: the release has no persons.csv")
    return Release(root, frames["persons"], frames["employment"], frames["services"], report, dictionary)


def _read_csv(file: str, backend: str) -> Any:
    """Text first, then a column is numeric only when every value is a number (as the
    engine reads a column), so that `*` or a band never turns a column into NaNs."""
    if backend == "polars":
        import polars

        frame = polars.read_csv(file, infer_schema=False)
        casts = []
        for c in frame.columns:
            values = frame[c].drop_nulls()
            cast = values.cast(polars.Float64, strict=False)
            if len(values) and cast.null_count() == 0:
                casts.append(polars.col(c).cast(polars.Float64))
        return frame.with_columns(casts) if casts else frame
    if backend != "pandas":
        raise OccupaError(f"backend {backend!r}: use pandas or polars")
    import pandas

    frame = pandas.read_csv(file, dtype=str, keep_default_na=False)
    for c in frame.columns:
        values = frame[c][frame[c] != ""]
        numbers = pandas.to_numeric(values, errors="coerce")
        if len(values) and not numbers.isna().any():
            frame[c] = pandas.to_numeric(frame[c].replace("", None))
        else:
            frame[c] = frame[c].replace("", None)
    return frame


from . import study  # noqa: E402  (the submodule uses the names above)
