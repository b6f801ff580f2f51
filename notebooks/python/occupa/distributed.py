"""Occupa on a cluster: many-series forecasts and evaluations by group on Dask or Spark,
with the single-process numbers.

The engine ships to the workers as the installed ``occupa`` package (every worker needs
it, as it needs pandas); these functions only say how the rows are split and run
:func:`occupa.forecast` or :func:`occupa.evaluate` on each piece where it lies. Neither
Dask nor Spark is imported with ``occupa``: install ``occupa[dask]`` (or pyspark) and
import this module.

**Forecasts of many series** (``forecast`` without ``by``): every series is made whole in
one partition (a shuffle on the identifier) and each partition is forecast as a batch.
This equals ``occupa.forecast`` of the whole table series by series, to the last bit, only
with options under which a series' forecast depends on that series alone, so the others
are refused with :class:`occupa.OccupaError`:

- ``model`` must be named (``ets``, ``theta``, ``autotheta``, ``comb``, ``arima``,
  ``ets:MAdM``…): ``model="auto"`` with ``select="group"`` (its default) gives every
  series the method that did best over the batch, and with ``select="series"`` still
  gives it to a series that cannot be backtested (too short, constant), so a series'
  forecast would depend on how the series were split.
- ``calibrate`` is False (here by default): calibration widens every series' intervals
  by factors pooled over the held-out errors of the whole batch.
- ``hierarchy`` and ``reconcile`` are refused: reconciliation ties every node to the total
  of all series.
- ``select`` is harmless with a named model and passes through.

The period grid (the step between periods, hence the season and the labels of the
forecast periods; whether dates are month ends; ``YYYYMM`` months) is a property of the
whole table: a partition whose series alone would be read on another grid (say, every
series in it observed every other month, or a single period each) is given a two-row
anchor series on the table's grid, forecast with it and dropped, so that its series are
read as in the whole table.

**Forecasts by group** (``forecast(..., by=[...])``): one ``occupa.forecast`` per group
(per region, per sector…), every option allowed (auto with ``select="group"``,
calibration, a hierarchy reconciled within the group); it equals ``occupa.forecast`` run
on each group's rows, with the group's columns in front.

**Evaluations by group** (:func:`evaluate_by`): one ``occupa.evaluate`` per group (per
authority, per profile), a table of the estimates back on the driver.

>>> import dask.dataframe as dd, occupa.distributed  # doctest: +SKIP
>>> from dask.distributed import Client  # doctest: +SKIP
>>> client = Client("tcp://scheduler:8786")  # doctest: +SKIP
>>> series = dd.read_parquet("series/")  # id, date, value  # doctest: +SKIP
>>> fc = occupa.distributed.forecast(series, horizon=12, model="ets")  # doctest: +SKIP
>>> fc.to_parquet("forecasts/")  # doctest: +SKIP
"""

from __future__ import annotations

import datetime as _dt
import json as _json
import math as _math
import re as _re
from functools import reduce as _reduce
from math import gcd as _gcd
from typing import Any, Iterable, Optional, Sequence

import occupa as _occupa
from occupa import OccupaError

__all__ = ["forecast", "evaluate_by", "POOLING_OPTIONS"]

#: Forecast options under which one series' forecast depends on the other series of its
#: batch, with why; ``forecast`` without ``by`` refuses them.
POOLING_OPTIONS = {
    "model='auto'": "with select='group' every series, with select='series' a series "
    "that cannot be backtested, takes the method that did best over the batch",
    "calibrate=True": "the intervals are widened by factors pooled over the held-out "
    "errors of every series in the batch",
    "hierarchy": "reconciliation ties every node to the total of all series",
}


# ---------------------------------------------------------------------------------------
# What kind of frame


def _is_dask(frame: Any) -> bool:
    return (type(frame).__module__ or "").startswith("dask") and hasattr(
        frame, "map_partitions"
    )


def _is_spark(frame: Any) -> bool:
    return (type(frame).__module__ or "").startswith("pyspark.sql") and hasattr(
        frame, "groupBy"
    )


def _columns(x: Any) -> list:
    return [x] if isinstance(x, str) else list(x)


class _SpecChecked(Exception):
    pass


class _SpecOnly:
    """Stands for a table so that the engine checks a spec without data: it checks the
    spec first and only then asks for the table's stream, which this refuses."""

    def __arrow_c_stream__(self, requested_schema=None):
        raise _SpecChecked


def _check_spec(call, **kwargs) -> None:
    """The engine's own check of the options (unknown names, bad values), on the driver,
    before any data moves: a typo fails here, not on every worker."""
    try:
        call(_SpecOnly(), **kwargs)
    except _SpecChecked:
        return


# ---------------------------------------------------------------------------------------
# Forecast output: columns and types


def _forecast_columns(levels: Iterable[float]) -> list:
    # The columns and order occupa.forecast gives its DataFrame.
    return _occupa._forecast_columns(levels)


def _forecast_meta(levels: Iterable[float]):
    import pandas

    cols = _forecast_columns(levels)
    # Built as occupa.forecast builds its frame, so the text columns get the dtype this
    # pandas gives lists of str (object before pandas 3, str from 3).
    one = {c: (["x"] if c in ("id", "time", "model") else [0.0]) for c in cols}
    return pandas.DataFrame(one).iloc[:0]


def _conform(out, meta):
    return out.reset_index(drop=True).astype(meta.dtypes.to_dict())


# ---------------------------------------------------------------------------------------
# The period grid, read as the engine reads it (engine/src/forecast/input.rs)

_INT = _re.compile(r"[+-]?\d+\Z")
_DATE = _re.compile(r"([+-]?\d+)-(\d{1,2})-(\d{1,2})\Z")
_MISSING = {
    "", "na", ".", "nan", "n.d.", "n.d", "nd", "n/d", "n/a", "#n/d", "#n/a", "null",
    "-", "?",
}


def _number_label(v: float) -> Optional[str]:
    # Rust's "{}" of an f64, for the integral values that can be periods.
    if not _math.isfinite(v) or not float(v).is_integer() or abs(v) >= 2**63:
        return None
    return str(int(v))


def _cell_label(value: Any) -> Optional[str]:
    """The label the engine reads from one cell of a text column: a number's text if the
    cell reads as a number, else the trimmed text; None if it is missing or cannot be a
    period this module can place."""
    if value is None:
        return None
    if isinstance(value, float):
        return None if _math.isnan(value) else _number_label(value)
    t = str(value).strip()
    if t.lower() in _MISSING:
        return None
    if t.lower() in ("true", "false"):
        return None
    if "_" not in t:
        try:
            v = float(t)
        except ValueError:
            return t
        if _math.isfinite(v):
            return _number_label(v)
    return t


def _parse_period(label: str):
    """(format, position, month end) as the engine's parse_period gives them."""
    s = label.strip()
    if _INT.match(s):
        return ("index", int(s), False)
    upper = s.upper()
    if "Q" in upper:
        y, q = upper.split("Q", 1)
        y = y.rstrip("- ")
        if not (_INT.match(y) and _INT.match(q)):
            return None
        q = int(q)
        return ("quarter", int(y) * 12 + (q - 1) * 3, False) if 1 <= q <= 4 else None
    m = _DATE.match(s)
    if m:
        try:
            d = _dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        except ValueError:
            return None
        month_end = (d + _dt.timedelta(days=1)).month != d.month
        return ("date", d.year * 12 + d.month - 1, month_end)
    cut = [i for i in (s.find("-"), s.find("/")) if i >= 0]
    if not cut:
        return None
    y, mo = s[: min(cut)], s[min(cut) + 1 :]
    if not (_INT.match(y) and _INT.match(mo)) or not 1 <= int(mo) <= 12:
        return None
    return ("month", int(y) * 12 + int(mo) - 1, False)


def _is_yyyymm(label: str) -> bool:
    t = label.strip()
    return (
        len(t) == 6
        and t.isdigit()
        and 1900 <= int(t[:4]) <= 2100
        and 1 <= int(t[4:]) <= 12
    )


def _series_gcd(codes, positions) -> int:
    """The gcd of the gaps between consecutive periods within each series."""
    import numpy

    if len(positions) < 2:
        return 0
    order = numpy.lexsort((positions, codes))
    c, p = codes[order], positions[order]
    same = c[1:] == c[:-1]
    gaps = numpy.abs(numpy.diff(p)[same])
    return int(numpy.gcd.reduce(gaps)) if len(gaps) else 0


def _grid_facts(part, ids: Sequence[str], time: str) -> Optional[dict]:
    """What the engine infers from this batch's periods, or None where a label is one
    this module does not read as the engine does (the engine then decides alone)."""
    import numpy
    import pandas

    if len(part) == 0:
        return {"formats": [], "month_end": True, "yyyymm": True, "step": 0, "step_ym": 0}
    col = part[time]
    # Dates (datetime.date, Arrow date32) read as YYYY-MM-DD, as the engine reads them;
    # timestamps read with their time of day, which neither this nor the engine takes.
    codes_t, uniques = pandas.factorize(col, use_na_sentinel=True)
    if (codes_t < 0).any():
        return None
    numeric = pandas.api.types.is_numeric_dtype(col.dtype)
    parsed = []
    for u in uniques:
        label = _number_label(float(u)) if numeric else _cell_label(u)
        p = _parse_period(label) if label is not None else None
        if p is None:
            return None
        parsed.append((label, *p))
    formats = sorted({p[1] for p in parsed})
    yyyymm = all(_is_yyyymm(p[0]) for p in parsed)
    positions = numpy.array([p[2] for p in parsed], dtype=numpy.int64)[codes_t]
    series = part.groupby(list(ids), sort=False, dropna=False, observed=True).ngroup()
    series = series.to_numpy(dtype=numpy.int64)
    step = _series_gcd(series, positions)
    step_ym = 0
    if yyyymm and formats == ["index"]:
        step_ym = _series_gcd(series, (positions // 100) * 12 + positions % 100 - 1)
    return {
        "formats": formats,
        "month_end": all(p[3] for p in parsed),
        "yyyymm": yyyymm,
        "step": step,
        "step_ym": step_ym,
    }


def _combine_facts(parts: list, time: str) -> Optional[dict]:
    if any(f is None for f in parts):
        return None
    formats = sorted({x for f in parts for x in f["formats"]})
    if len(formats) > 1:
        raise OccupaError(
            f"column '{time}' mixes period formats ({', '.join(formats)}) across the "
            "table; write every period the same way"
        )
    return {
        "formats": formats,
        "month_end": all(f["month_end"] for f in parts),
        "yyyymm": all(f["yyyymm"] for f in parts),
        "step": _reduce(_gcd, (f["step"] for f in parts), 0),
        "step_ym": _reduce(_gcd, (f["step_ym"] for f in parts), 0),
    }


def _effective(f: dict):
    """(format, step, month end) the engine works with, given what it read."""
    fmt = f["formats"][0] if f["formats"] else "index"
    step = f["step"]
    if fmt == "index" and f["yyyymm"]:
        fmt, step = "yyyymm", f["step_ym"]
    if step == 0:
        step = 3 if fmt == "quarter" else 1
    return fmt, step, (f["month_end"] if fmt == "date" else False)


def _anchor_times(fmt: str, step: int, month_end: bool, like) -> list:
    """Two periods `step` apart on the table's grid, written as the time column writes
    them, and not month ends or YYYYMM-shaped unless the whole table's are."""
    import pandas

    p0 = 2000 * 12
    ps = [p0, p0 + step]
    numeric = pandas.api.types.is_numeric_dtype(like.dtype)
    if fmt == "index":
        # 1 and 1 + step: integers, and not YYYYMM-shaped.
        labels = [1, 1 + step]
        return labels if numeric else [str(x) for x in labels]
    if fmt == "yyyymm":
        labels = [(p // 12) * 100 + p % 12 + 1 for p in ps]
        return labels if numeric else [str(x) for x in labels]
    if numeric:
        raise ValueError("calendar periods in a numeric column")
    if fmt == "month":
        return [f"{p // 12}-{p % 12 + 1:02d}" for p in ps]
    if fmt == "quarter":
        return [f"{p // 12}Q{p % 12 // 3 + 1}" for p in ps]
    dates = []
    for p in ps:
        d = _dt.date(p // 12, p % 12 + 1, 1)
        if month_end:
            nxt = _dt.date(d.year + (d.month == 12), d.month % 12 + 1, 1)
            d = nxt - _dt.timedelta(days=1)
        dates.append(d)
    sample = like.dropna().iloc[0] if like.notna().any() else None
    if isinstance(sample, _dt.date) and not isinstance(sample, _dt.datetime):
        return dates
    return [d.isoformat() for d in dates]


def _anchor_id(col):
    """A value of the id column no series in this partition has, and its label."""
    import pandas

    if pandas.api.types.is_bool_dtype(col.dtype):
        raise ValueError("a boolean identifier")
    if pandas.api.types.is_numeric_dtype(col.dtype):
        top = col.max(skipna=True)
        v = 0 if pandas.isna(top) else int(top) + 1
        return v, _number_label(float(v))
    taken = {str(x).strip() for x in col.dropna().unique()}
    v = "~occupa-anchor"
    while v in taken:
        v += "~"
    return v, v


def _with_anchor(part, ids, time, value, grid):
    """The partition with a two-row series in front that puts it on the table's grid;
    returns it with the anchor's label (its forecast comes first in the output)."""
    import pandas

    fmt, step, month_end = grid
    rows = {}
    labels = []
    for c in ids:
        v, label = _anchor_id(part[c])
        rows[c] = [v, v]
        labels.append(label)
    rows[time] = _anchor_times(fmt, step, month_end, part[time])
    rows[value] = [1.0, 2.0]
    anchor = pandas.DataFrame(rows)
    body = part.copy()
    for c in list(ids) + [time]:
        if isinstance(body[c].dtype, pandas.CategoricalDtype):
            # A new level is not in the categories; the engine reads the labels either way.
            body[c] = body[c].astype(object)
        anchor[c] = anchor[c].astype(object if body[c].dtype == object else body[c].dtype)
    return pandas.concat([anchor, body], ignore_index=True), "/".join(labels)


# ---------------------------------------------------------------------------------------
# Forecasts on the workers

_NOTHING_FORECAST = ("no series could be forecast", "no series has a value")


_UNREAD = object()


def _forecast_piece(part, spec: dict, grid_all: Optional[dict], own: Any = _UNREAD):
    """One batch: the forecasts and the engine's summary (None for an empty piece).
    With `grid_all` (the whole table's grid), a piece read on another grid is anchored;
    `own` is the piece's grid if already read."""
    meta = _forecast_meta(spec["options"].get("levels", (80.0, 95.0)))
    if len(part) == 0:
        return meta, None
    ids, time, value, horizon = spec["id"], spec["time"], spec["value"], spec["horizon"]
    anchor = None
    if grid_all is not None:
        if own is _UNREAD:
            own = _grid_facts(part, ids, time)
        if own is not None and _effective(own) != _effective(grid_all):
            try:
                part, anchor = _with_anchor(part, ids, time, value, _effective(grid_all))
            except ValueError as e:
                raise OccupaError(
                    f"the series of one partition sit on another grid of periods than the "
                    f"whole table ({_effective(own)[:2]} against "
                    f"{_effective(grid_all)[:2]}) and cannot be anchored to it ({e}); "
                    "repartition so that partitions hold more series"
                ) from None
    try:
        out = _occupa.forecast(
            part, horizon=horizon, id=ids, time=time, value=value, **spec["options"]
        )
    except OccupaError as e:
        # Within the whole table these series would be listed as failed or left out
        # and the others forecast: here the partition gives no rows and says why.
        if any(s in str(e) for s in _NOTHING_FORECAST):
            return meta, {"series": 0, "forecast": 0, "partitions_without_forecasts": [str(e)]}
        raise
    summary = dict(out.attrs.get("summary", {}))
    if anchor is not None:
        head = out.iloc[:horizon]
        if len(head) != horizon or (head["id"] != anchor).any():
            raise OccupaError("internal: the anchor series was not forecast first")
        summary = _without(summary, anchor, head["model"].iloc[0])
        out = out.iloc[horizon:]
    return _conform(out, meta), summary


def _without(summary: dict, label: str, model: str) -> dict:
    s = dict(summary)
    s["series"] = s.get("series", 1) - 1
    s["forecast"] = s.get("forecast", 1) - 1
    used = dict(s.get("models_used", {}))
    used[model] = used.get(model, 1) - 1
    s["models_used"] = {k: v for k, v in used.items() if v > 0}
    for key in ("notes", "failed"):
        s[key] = [n for n in s.get(key, []) if not n.startswith(label + ": ")]
    for key in ("constant", "left_out"):
        s[key] = [c for c in s.get(key, []) if c.get("id") != label]
    return s


def _merge_summaries(summaries: list) -> dict:
    """The partitions' summaries as one: counts added, lists joined."""
    parts = [s for s in summaries if s is not None]
    out: dict = {"partitions": len(summaries)}
    for k in ("series", "forecast", "negative_means_clipped"):
        out[k] = sum(s.get(k, 0) for s in parts)
    used: dict = {}
    for s in parts:
        for m, n in s.get("models_used", {}).items():
            used[m] = used.get(m, 0) + n
    out["models_used"] = dict(sorted(used.items()))
    for k in ("left_out", "constant", "notes", "failed", "partitions_without_forecasts"):
        out[k] = [x for s in parts for x in s.get(k, [])]
    for k in ("horizon", "season", "season_note", "model_asked", "columns_not_used"):
        seen = [s[k] for s in parts if k in s]
        if seen:
            out[k] = seen[0]
    return out


def _merge_by_group(parts: list) -> dict:
    return {k: v for p in parts for k, v in p.items()}


def _forecast_groups(part, spec: dict, by: list):
    """One occupa.forecast per group of `by` in this partition, the group's columns in
    front; summaries by group key."""
    import pandas

    meta = _forecast_meta(spec["options"].get("levels", (80.0, 95.0)))
    frames, summaries = [], {}
    for key, rows in part.groupby(by, sort=True, dropna=True, observed=True):
        key = key if isinstance(key, tuple) else (key,)
        out = _occupa.forecast(
            rows,
            horizon=spec["horizon"],
            id=spec["id"],
            time=spec["time"],
            value=spec["value"],
            **spec["options"],
        )
        summaries[key] = out.attrs.get("summary", {})
        out = _conform(out, meta)
        for c, v in reversed(list(zip(by, key))):
            out.insert(0, c, pandas.Series([v] * len(out), dtype=part[c].dtype))
        frames.append(out)
    head = part[by].iloc[:0].reset_index(drop=True)
    empty = pandas.concat([head, meta], axis=1)
    if not frames:
        return empty, summaries
    return pandas.concat(frames, ignore_index=True).astype(empty.dtypes.to_dict()), summaries


def _per_series_options(options: dict) -> dict:
    """The options, checked to keep each series' forecast its own (POOLING_OPTIONS)."""
    opts = dict(options)
    model = str(opts.get("model", "auto"))
    if model.lower() == "auto":
        raise OccupaError(
            "model='auto' is not split across partitions: with select='group' every "
            "series, and with select='series' a series that cannot be backtested (too "
            "short, constant), takes the method that did best over the batch, so a "
            "series' forecast would depend on how the series were split. Name the model "
            "(ets, theta, autotheta, comb, arima…), or forecast by groups with by=[...] "
            "(one auto choice per group)"
        )
    if opts.get("calibrate", False):
        raise OccupaError(
            "calibrate=True is not split across partitions: the intervals are widened by "
            "factors pooled over the held-out errors of every series of the batch. Leave "
            "calibrate=False, or forecast by groups with by=[...] (calibrated per group)"
        )
    for name in ("hierarchy", "reconcile"):
        if opts.get(name) is not None:
            raise OccupaError(
                f"{name} is not split across partitions: reconciliation ties every node "
                "to the total of all series. Forecast the hierarchy with occupa.forecast "
                "in one process, or one hierarchy per group with by=[...]"
            )
    opts["calibrate"] = False
    return opts


def forecast(
    frame: Any,
    *,
    horizon: int,
    id: Any = "id",
    time: str = "date",
    value: str = "value",
    by: Any = None,
    partitions: Optional[int] = None,
    summary: bool = False,
    **options: Any,
) -> Any:
    """Forecasts of many series on a Dask or Spark cluster, with ``occupa.forecast``'s
    numbers and columns (``id, time, model, mean, lo_80, hi_80, …``).

    ``frame`` is a Dask DataFrame or a Spark DataFrame in long form, one row per series
    and period; ``options`` are ``occupa.forecast``'s (``model``, ``season``,
    ``levels``, ``select``, ``windows``…). Returns a lazy Dask DataFrame (or Spark
    DataFrame) of the forecasts, in no particular row order.

    Without ``by``, each series is forecast on its own, and the result equals
    ``occupa.forecast(whole_table, ..., calibrate=False)`` series by series, exactly.
    Options that would make a series' forecast depend on the others are refused
    (:data:`POOLING_OPTIONS`): ``model`` must be named (not ``"auto"``), ``calibrate``
    is False, no ``hierarchy``. Every series is first made whole in one partition (a
    shuffle on ``id``), then each partition is one batch on one worker (the engine runs
    it on all the cores it may use: ``RAYON_NUM_THREADS`` in the worker's environment,
    else every core of the machine). ``partitions`` sets how many: on Dask the
    partitions after the shuffle (default: the frame's), on Spark the hash buckets of
    series (default: ``spark.sql.shuffle.partitions``); a few per worker keeps every
    worker busy. A partition whose series alone would be read on another grid of periods
    than the whole table's is anchored to it (see the module's documentation); on Spark
    the grid is read in a first pass, when this function is called.

    With ``by`` (columns), each group is one ``occupa.forecast`` with every option,
    ``model="auto"``, calibration and a hierarchy included; the result equals
    ``occupa.forecast`` on each group's rows, with the ``by`` columns in front. Rows
    whose group is missing are left out.

    With ``summary=True`` (Dask only) returns ``(forecasts, summary)``, ``summary`` a
    ``dask.delayed`` dict: the engine's summaries of the partitions merged (``series``,
    ``forecast``, ``models_used``, ``negative_means_clipped`` added up; ``notes``,
    ``failed``, ``constant``, ``left_out`` joined, in partition order), or a dict of the
    groups' summaries by key with ``by``. Compute both at once,
    ``dask.compute(forecasts, summary)``, so that the forecasts run once (Dask warns
    that this mixes a frame and a delayed object; nothing runs twice).

    >>> import dask, dask.dataframe as dd, occupa.distributed  # doctest: +SKIP
    >>> hires = dd.read_parquet("hires/")  # doctest: +SKIP
    >>> # columns regione, provincia, settore, mese, assunzioni
    >>> fc = occupa.distributed.forecast(  # doctest: +SKIP
    ...     hires, horizon=12, id=["provincia", "settore"], time="mese",
    ...     value="assunzioni", model="ets")
    >>> fc.to_parquet("forecasts/")  # doctest: +SKIP
    >>> fc, summary = occupa.distributed.forecast(  # doctest: +SKIP
    ...     hires, horizon=12, id=["provincia", "settore"], time="mese",
    ...     value="assunzioni", model="theta", summary=True)
    >>> table, summary = dask.compute(fc, summary)  # doctest: +SKIP
    >>> summary["failed"]  # doctest: +SKIP
    []
    >>> # One reconciled hierarchy (sectors within the region) per region:
    >>> by_region = occupa.distributed.forecast(  # doctest: +SKIP
    ...     hires, horizon=12, id=["provincia", "settore"], time="mese",
    ...     value="assunzioni", by="regione", hierarchy="settore")
    """
    ids = _columns(id)
    by_cols = _columns(by) if by is not None else []
    opts = dict(options) if by_cols else _per_series_options(options)
    _check_spec(
        _occupa.forecast, horizon=horizon, id=ids, time=time, value=value, **opts
    )
    spec = {"horizon": horizon, "id": ids, "time": time, "value": value, "options": opts}
    if _is_dask(frame):
        return _forecast_dask(frame, spec, by_cols, partitions, summary)
    if _is_spark(frame):
        if summary:
            raise OccupaError("summary=True is for Dask; on Spark the frame is the result")
        return _forecast_spark(frame, spec, by_cols, partitions)
    raise OccupaError(
        f"a {type(frame).__name__} is not a distributed frame: pass a Dask or Spark "
        "DataFrame (for a table in memory, use occupa.forecast)"
    )


def _forecast_dask(frame, spec, by_cols, partitions, want_summary):
    import dask
    import dask.dataframe as dd
    import pandas

    meta = _forecast_meta(spec["options"].get("levels", (80.0, 95.0)))
    on = by_cols or spec["id"]
    missing = [c for c in on + [spec["time"], spec["value"]] if c not in frame.columns]
    if missing:
        raise OccupaError(f"column(s) {missing} not in the frame: {list(frame.columns)}")
    pieces = frame.shuffle(on=on, npartitions=partitions).to_delayed()
    if by_cols:
        run = dask.delayed(_forecast_groups, nout=2)
        results = [run(p, spec, by_cols) for p in pieces]
        head = frame._meta[by_cols].iloc[:0].reset_index(drop=True)
        meta = pandas.concat([head, meta], axis=1)
        merge = dask.delayed(_merge_by_group)
    else:
        facts = [dask.delayed(_grid_facts)(p, spec["id"], spec["time"]) for p in pieces]
        grid = dask.delayed(_combine_facts)(facts, spec["time"])
        run = dask.delayed(_forecast_piece, nout=2)
        results = [run(p, spec, grid, f) for p, f in zip(pieces, facts)]
        merge = dask.delayed(_merge_summaries)
    frames = [r[0] for r in results]
    out = dd.from_delayed(frames, meta=meta, verify_meta=False)
    if not want_summary:
        return out
    return out, merge([r[1] for r in results])


def _spark_schema(frame, by_cols, levels):
    from pyspark.sql.types import DoubleType, StringType, StructField, StructType

    fields = [frame.schema[c] for c in by_cols]
    for c in _forecast_columns(levels):
        kind = StringType() if c in ("id", "time", "model") else DoubleType()
        fields.append(StructField(c, kind, True))
    return StructType(fields)


def _spark_bucket(frame, ids, partitions):
    from pyspark.sql import functions as F

    n = partitions or int(frame.sparkSession.conf.get("spark.sql.shuffle.partitions"))
    name = "__occupa_bucket"
    while name in frame.columns:
        name += "_"
    return frame.withColumn(name, F.pmod(F.xxhash64(*ids), F.lit(n))), name


def _forecast_spark(frame, spec, by_cols, partitions):
    levels = spec["options"].get("levels", (80.0, 95.0))
    schema = _spark_schema(frame, by_cols, levels)
    if by_cols:

        def groups(pdf):
            return _forecast_groups(pdf, spec, by_cols)[0]

        return frame.groupBy(*by_cols).applyInPandas(groups, schema=schema)
    # Series to buckets by a hash of the identifier (whole series in one bucket); one
    # batch per bucket. The table's grid is read in a first pass over the buckets.
    bucketed, b = _spark_bucket(frame, spec["id"], partitions)
    ids, time = spec["id"], spec["time"]

    def facts(pdf):
        import pandas

        f = _grid_facts(pdf.drop(columns=[b]), ids, time)
        return pandas.DataFrame({"facts": [_json.dumps(f)]})

    rows = bucketed.groupBy(b).applyInPandas(facts, schema="facts string").collect()
    grid = _combine_facts([_json.loads(r["facts"]) for r in rows], time)

    def piece(pdf):
        return _forecast_piece(pdf.drop(columns=[b]), spec, grid)[0]

    return bucketed.groupBy(b).applyInPandas(piece, schema=schema)


# ---------------------------------------------------------------------------------------
# Evaluations by group

_ESTIMATES = (
    "method", "estimand", "estimate", "se", "ci_low", "ci_high", "p_value", "se_kind",
    "n_treated", "n_control", "rows", "dropped_missing", "dropped_by_design", "grade",
)


def _evaluate_groups(part, by: list, options: dict, errors: str):
    """One occupa.evaluate per group: the group's key columns, the result as JSON text
    and the engine's message where it could not run."""
    import pandas

    keys, results, failures = [], [], []
    for key, rows in part.groupby(by, sort=True, dropna=True, observed=True):
        key = key if isinstance(key, tuple) else (key,)
        try:
            r, e = _json.dumps(_occupa.evaluate(rows, **options)), None
        except OccupaError as err:
            if errors == "raise":
                raise OccupaError(f"group {dict(zip(by, key))}: {err}") from None
            r, e = None, str(err)
        keys.append(key)
        results.append(r)
        failures.append(e)
    out = pandas.DataFrame(
        {c: pandas.Series([k[i] for k in keys], dtype=part[c].dtype) for i, c in enumerate(by)}
    )
    out["result"] = pandas.Series(results, dtype=object)
    out["error"] = pandas.Series(failures, dtype=object)
    return out


def _estimates(raw, by: list):
    """The groups' rows: key, the estimate's fields, the error, the full dict."""
    import pandas

    rows = []
    for rec in raw.to_dict("records"):
        r = _json.loads(rec["result"]) if isinstance(rec["result"], str) else None
        row = {c: rec[c] for c in by}
        if r is None:
            row.update({k: None for k in _ESTIMATES})
        else:
            ci = r.get("ci95") or [None, None]
            row.update(
                {
                    "method": r.get("method"),
                    "estimand": r.get("estimand"),
                    "estimate": r.get("estimate"),
                    "se": r.get("se"),
                    "ci_low": ci[0],
                    "ci_high": ci[1],
                    "p_value": r.get("p_value"),
                    "se_kind": r.get("se_kind"),
                    "n_treated": r.get("n_treated"),
                    "n_control": r.get("n_control"),
                    "rows": r.get("rows"),
                    "dropped_missing": r.get("dropped_missing"),
                    "dropped_by_design": r.get("dropped_by_design"),
                    "grade": (r.get("diagnostics") or {}).get("overall"),
                }
            )
        row["error"] = rec["error"] if isinstance(rec["error"], str) else None
        row["result"] = r
        rows.append(row)
    out = pandas.DataFrame(rows, columns=by + list(_ESTIMATES) + ["error", "result"])
    # None, not NaN, where a group ran: pandas would make a column of text and None a
    # column of text and NaN.
    out["error"] = pandas.Series([r["error"] for r in rows], dtype=object)
    for c in ("estimate", "se", "ci_low", "ci_high", "p_value"):
        out[c] = out[c].astype("float64")
    for c in ("n_treated", "n_control", "rows", "dropped_missing", "dropped_by_design"):
        out[c] = out[c].astype("Int64")
    return out.sort_values(by, kind="stable").reset_index(drop=True)


def evaluate_by(
    frame: Any,
    *,
    by: Any,
    errors: str = "record",
    partitions: Optional[int] = None,
    **evaluate_options: Any,
):
    """One impact evaluation per group (per authority, per LCA profile…), run on the
    workers: ``occupa.evaluate(rows_of_the_group, **evaluate_options)`` for each value of
    the ``by`` column(s), exactly as a loop over the groups in one process gives it.

    ``frame`` is a Dask or Spark DataFrame (a pandas, polars or pyarrow table runs the
    same loop here). Returns a pandas DataFrame, one row per group sorted by ``by``: the
    group's columns, ``method, estimand, estimate, se, ci_low, ci_high`` (the 95 %
    interval), ``p_value, se_kind, n_treated, n_control, rows, dropped_missing,
    dropped_by_design, grade`` (the diagnostics' overall grade), ``error`` (the engine's
    message for a group it could not evaluate, with the estimates empty; with
    ``errors="raise"`` the first such group raises :class:`occupa.OccupaError`) and
    ``result`` (the whole dict ``occupa.evaluate`` returns). Rows whose group is missing
    are left out. The engine's own ``by`` (subgroups inside one evaluation) is not an
    option here: this ``by`` is the split.

    >>> import dask.dataframe as dd, occupa.distributed  # doctest: +SKIP
    >>> people = dd.read_parquet("analysis/")  # doctest: +SKIP
    >>> est = occupa.distributed.evaluate_by(  # doctest: +SKIP
    ...     people, by="authority", treatment="a3", outcome="employed_12m",
    ...     covariates=["age", "sex", "education"], method="aipw")
    >>> est[["authority", "estimate", "ci_low", "ci_high", "grade"]]  # doctest: +SKIP
    """
    by_cols = _columns(by)
    if errors not in ("record", "raise"):
        raise OccupaError(f"errors={errors!r}: use 'record' or 'raise'")
    _check_spec(_occupa.evaluate, **evaluate_options)
    if _is_dask(frame):
        import pandas

        head = frame._meta[by_cols].iloc[:0]
        meta = head.assign(
            result=pandas.Series([], dtype=object), error=pandas.Series([], dtype=object)
        )
        raw = (
            frame.shuffle(on=by_cols, npartitions=partitions)
            .map_partitions(_evaluate_groups, by_cols, evaluate_options, errors, meta=meta)
            .compute()
        )
    elif _is_spark(frame):
        from pyspark.sql.types import StringType, StructField, StructType

        schema = StructType(
            [frame.schema[c] for c in by_cols]
            + [StructField("result", StringType()), StructField("error", StringType())]
        )

        def groups(pdf):
            return _evaluate_groups(pdf, by_cols, evaluate_options, errors)

        raw = frame.groupBy(*by_cols).applyInPandas(groups, schema=schema).toPandas()
    else:
        raw = _evaluate_groups(_as_pandas(frame), by_cols, evaluate_options, errors)
    return _estimates(raw, by_cols)


def _as_pandas(table: Any):
    module = type(table).__module__ or ""
    if module.startswith("pandas"):
        return table
    if hasattr(table, "to_pandas"):
        return table.to_pandas()
    raise OccupaError(
        f"a {type(table).__name__} is not a table evaluate_by can split: pass a Dask or "
        "Spark DataFrame, or a pandas, polars or pyarrow table"
    )
