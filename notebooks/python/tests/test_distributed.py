"""The distributed paths give the single-process numbers: forecasts of many series and
evaluations by group run on a local Dask cluster of two worker processes equal
``occupa.forecast`` and ``occupa.evaluate`` in this process, series by series and group by
group, every number to the last bit.

M3 monthly is read from ``$OCCUPA_DATA_DIR/m3`` (skipped without it, failed under CI).
A Spark run is checked too where pyspark is installed (not in CI: a 456 MB package)."""

from __future__ import annotations

import logging
import math
import os
import random
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import occupa

IN_CI = bool(os.environ.get("CI"))


def need(module: str):
    """Dask is an optional dependency of the package but a requirement of its tests."""
    try:
        return __import__(module, fromlist=["_"])
    except ImportError:
        if IN_CI:
            pytest.fail(f"{module} is missing: pip install -r tests/requirements.txt")
        pytest.skip(f"{module} is not installed (pip install 'occupa[dask]')")


@pytest.fixture(scope="module")
def client():
    distributed = need("dask.distributed")
    # One engine thread per worker process, so that two workers are two cores' worth.
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        silence_logs=logging.ERROR,
        env={"RAYON_NUM_THREADS": "1"},
    )
    with cluster, distributed.Client(cluster) as c:
        yield c


@pytest.fixture(scope="module")
def dd():
    return need("dask.dataframe")


@pytest.fixture(scope="module")
def m3_monthly() -> pd.DataFrame:
    root = os.environ.get("OCCUPA_DATA_DIR")
    path = Path(root) / "m3" / "m3_monthly_train.csv" if root else None
    if path is None or not path.exists():
        why = f"M3 monthly not found ({path or 'OCCUPA_DATA_DIR is not set'})"
        if IN_CI:
            pytest.fail(why)
        pytest.skip(why)
    df = pd.read_csv(path)
    # Every sixth series: 238 of the 1,428, lengths 48 to 126.
    ids = sorted(df["unique_id"].unique())[::6]
    df = df[df["unique_id"].isin(ids)]
    return df.rename(columns={"unique_id": "id", "t": "date", "y": "value"})


def monthly_series(seed: int = 5) -> pd.DataFrame:
    """72 seasonal monthly series of counts in three regions, dated on the first of the
    month, with integer ids: most observed every month, every twelfth one every other
    month (whole in the table, it is read on the table's monthly grid) and every twelfth
    one once."""
    rng = random.Random(seed)
    rows = []
    for s in range(72):
        start, length = rng.randint(0, 24), rng.randint(30, 60)
        level, trend, amp = rng.uniform(20, 200), rng.uniform(-0.3, 0.8), rng.uniform(0, 30)
        for k in range(1 if s % 12 == 7 else length):
            if s % 12 == 5 and k % 2:
                continue
            m = start + k
            y = level + trend * k + amp * math.sin(2 * math.pi * m / 12) + rng.gauss(0, 6)
            rows.append(
                {
                    "id": 7 * s + 3,
                    "region": ("nord", "centro", "sud")[s % 3],
                    "date": f"{2015 + m // 12}-{m % 12 + 1:02d}-01",
                    "value": max(0.0, round(y)),
                }
            )
    return pd.DataFrame(rows)


def quarterly_series(seed: int = 9) -> pd.DataFrame:
    """40 quarterly series dated on quarter ends, ten of them with a single quarter: a
    partition holding only those would on its own be read as monthly."""
    rng = random.Random(seed)
    rows = []
    for s in range(40):
        start = rng.randint(0, 8)
        for k in range(1 if s % 4 == 0 else rng.randint(16, 30)):
            q = start + k
            year, month = 2010 + q // 4, 3 * (q % 4) + 3
            day = 31 if month in (3, 12) else 30
            rows.append(
                {
                    "id": f"q{s:02d}",
                    "date": f"{year}-{month:02d}-{day}",
                    "value": 50 + 2 * k + 8 * (q % 4) + rng.gauss(0, 3),
                }
            )
    return pd.DataFrame(rows)


def by_series(frame: pd.DataFrame, by=("id", "time")) -> pd.DataFrame:
    return frame.sort_values(list(by), kind="stable").reset_index(drop=True)


def assert_same_forecasts(got: pd.DataFrame, want: pd.DataFrame, keys=("id", "time")):
    assert list(got.columns) == list(want.columns)
    got, want = by_series(got, keys), by_series(want, keys)
    assert len(got) == len(want)
    for c in want.columns:
        assert got[c].tolist() == want[c].tolist(), c


def test_importing_occupa_does_not_import_dask():
    code = "import sys, occupa, occupa.distributed; print('dask' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("model", ["ets", "theta"])
# dask.compute of the frame and its summary together (so the forecasts run once) warns
# that it mixes a frame and a delayed object; nothing is computed twice.
@pytest.mark.filterwarnings("ignore:Computing mixed collections")
def test_m3_forecasts_equal_the_single_process_run_series_by_series(client, dd, m3_monthly, model):
    import dask
    import occupa.distributed as od

    want = occupa.forecast(m3_monthly, horizon=18, model=model, season=12, calibrate=False)
    frame = dd.from_pandas(m3_monthly, npartitions=5)
    fc, summary = od.forecast(frame, horizon=18, model=model, season=12, summary=True)
    got, summary = dask.compute(fc, summary)
    assert_same_forecasts(got, want)
    ws = want.attrs["summary"]
    assert summary["partitions"] == 5
    for k in ("series", "forecast", "models_used", "season", "negative_means_clipped"):
        assert summary[k] == ws[k], k
    for k in ("notes", "failed", "constant", "left_out"):
        assert sorted(map(str, summary[k])) == sorted(map(str, ws[k])), k


def test_calendar_series_on_many_small_partitions_equal_the_whole_table(client, dd):
    import occupa.distributed as od

    for table, horizon in ((monthly_series(), 12), (quarterly_series(), 4)):
        want = occupa.forecast(table, horizon=horizon, model="ets", calibrate=False)
        frame = dd.from_pandas(table, npartitions=3)
        got = od.forecast(frame, horizon=horizon, model="ets", partitions=16).compute()
        assert_same_forecasts(got, want)


def month_ends_for(table: pd.DataFrame, ids) -> pd.DataFrame:
    """The same table with the series `ids` dated on the last day of each month."""
    dates = pd.to_datetime(table["date"])
    ends = (dates + pd.offsets.MonthEnd(0)).dt.strftime("%Y-%m-%d")
    return table.assign(date=table["date"].where(~table["id"].isin(ids), ends))


ODD = [7 * s + 3 for s in (5, 17, 29)]  # seen every other month
DTYPES = {
    "str": lambda t: t,
    "string[pyarrow]": lambda t: t.astype({"date": "string[pyarrow]"}),
    "category": lambda t: t.astype({"date": "category"}),
    "date32[pyarrow]": lambda t: t.assign(
        date=pd.to_datetime(t["date"]).dt.date.astype("date32[pyarrow]")
    ),
}


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize(
    "case",
    [
        # Alone, series seen every other month are read two months a step (season 1).
        (monthly_series, 12, ODD),
        # Alone, single quarters are read as months.
        (quarterly_series, 4, ["q00", "q04", "q08"]),
        # Alone, month-end dates give month-end labels; in the table, first days.
        (lambda: month_ends_for(monthly_series(), [3, 10]), 12, [3, 10]),
    ],
    ids=["every-other-month", "single-quarters", "month-ends"],
)
def test_a_piece_read_on_another_grid_is_anchored_to_the_table_grid(case, dtype):
    """A partition whose series alone would be read on another grid of periods is
    forecast as in the whole table, whatever the type of its time column."""
    import occupa.distributed as od

    make, horizon, ids = case
    table = DTYPES[dtype](make())
    spec = {
        "horizon": horizon, "id": ["id"], "time": "date", "value": "value",
        "options": {"model": "theta", "calibrate": False},
    }
    grid = od._grid_facts(table, ["id"], "date")
    piece = table[table["id"].isin(ids)]
    assert od._effective(od._grid_facts(piece, ["id"], "date")) != od._effective(grid)
    whole = occupa.forecast(table, horizon=horizon, model="theta", calibrate=False)
    want = whole[whole["id"].isin({str(i) for i in ids})].reset_index(drop=True)
    alone = occupa.forecast(piece, horizon=horizon, model="theta", calibrate=False)
    assert by_series(alone)["time"].tolist() != by_series(want)["time"].tolist()
    got, summary = od._forecast_piece(piece, spec, grid)
    assert_same_forecasts(got, want)
    assert summary["series"] == len(ids) and summary["forecast"] == len(ids)


def test_by_group_runs_equal_one_occupa_forecast_per_group(client, dd):
    """With by, every option is allowed (auto, calibration): each group is one batch."""
    import occupa.distributed as od

    table = monthly_series()
    parts = []
    for region, rows in table.groupby("region", sort=True):
        fc = occupa.forecast(rows, horizon=6, model="auto")
        fc.insert(0, "region", region)
        parts.append(fc)
    want = pd.concat(parts, ignore_index=True)
    got = od.forecast(dd.from_pandas(table, npartitions=4), horizon=6, model="auto", by="region")
    got = got.compute()
    assert_same_forecasts(got, want.astype(got.dtypes.to_dict()), keys=("region", "id", "time"))


def test_a_hierarchy_is_reconciled_within_each_group(client, dd):
    import occupa.distributed as od

    rng = random.Random(3)
    rows = []
    for region in ("nord", "sud"):
        for p in range(3):
            for sector in ("A", "B"):
                level = rng.uniform(30, 90)
                for m in range(36):
                    rows.append(
                        {
                            "region": region, "province": f"{region[0]}{p}", "sector": sector,
                            "date": f"{2020 + m // 12}-{m % 12 + 1:02d}",
                            "value": level + 5 * math.sin(m / 2) + rng.gauss(0, 2),
                        }
                    )
    table = pd.DataFrame(rows)
    options = dict(horizon=6, id=["province", "sector"], model="theta", hierarchy="sector")
    parts = []
    for region, g in table.groupby("region", sort=True):
        fc = occupa.forecast(g, **options)
        fc.insert(0, "region", region)
        parts.append(fc)
    want = pd.concat(parts, ignore_index=True)
    got = od.forecast(dd.from_pandas(table, npartitions=3), by="region", **options).compute()
    assert_same_forecasts(got, want.astype(got.dtypes.to_dict()), keys=("region", "id", "time"))
    assert (got["id"] == "Total").sum() == 2 * 6


def test_what_pools_across_series_does_change_a_series_with_its_batch():
    """Why those options are refused: the same short series (20 months, too short to hold
    out 6 and keep 24) forecast beside one other series takes that series' best method
    under auto even with select="series"; with calibration a long series' intervals (not
    its means) move with its companions."""
    table = monthly_series()
    first = table.groupby("id").size().idxmax()
    short = table[table["id"] == first].iloc[:20].assign(id=999_999)

    def beside(companion, **options):
        pair = pd.concat([table[table["id"] == companion], short])
        return occupa.forecast(pair, horizon=6, **options)

    auto = dict(model="auto", select="series", calibrate=False)
    models = {beside(c, **auto).query("id == '999999'")["model"].iat[0] for c in (3, 10)}
    assert models == {"ETS(A,N,N)", "Comb(SES,Holt,Damped)"}
    # Five series of six held-out months: 30 scores, enough to calibrate.
    batches = [table[table["id"].isin(ids)] for ids in ([3, 10, 17, 24, 31], [3, 59, 66, 73, 80])]
    a, b = (occupa.forecast(x, horizon=6, model="ets").query("id == '3'") for x in batches)
    assert a["mean"].tolist() == b["mean"].tolist()
    assert a["hi_95"].tolist() != b["hi_95"].tolist()


def test_options_that_pool_across_series_are_refused(dd):
    import occupa.distributed as od

    frame = dd.from_pandas(monthly_series(), npartitions=2)
    for options, why in (
        ({}, "model='auto'"),
        ({"model": "auto", "select": "series"}, "model='auto'"),
        ({"model": "ets", "calibrate": True}, "calibrate=True"),
        ({"model": "ets", "hierarchy": "region"}, "hierarchy"),
    ):
        with pytest.raises(occupa.OccupaError, match=why):
            od.forecast(frame, horizon=6, **options)
    # The engine checks the options on the driver, before anything runs.
    with pytest.raises(occupa.OccupaError, match="unknown field `seasons`"):
        od.forecast(frame, horizon=6, model="ets", seasons=12)
    with pytest.raises(occupa.OccupaError, match="not a distributed frame"):
        od.forecast(monthly_series(), horizon=6, model="ets")


def evaluation_frame(seed: int = 7) -> pd.DataFrame:
    rng = random.Random(seed)
    rows = []
    for authority, n in (("TO", 500), ("MI", 400), ("RM", 450), ("NA", 350), ("BA", 300)):
        shift = rng.uniform(-0.5, 0.5)
        for _ in range(n):
            age = rng.randint(18, 64)
            edu = rng.choice(["low", "mid", "high"])
            x = rng.gauss(0.0, 1.0)
            p = 1 / (1 + math.exp(-(-0.3 + shift + 0.5 * x + (0.4 if edu == "low" else 0.0))))
            d = int(rng.random() < p)
            effect = 1.0 + 0.5 * shift
            y = 2.0 + 0.03 * age + 0.8 * x + effect * d + rng.gauss(0.0, 1.0)
            rows.append({"authority": authority, "d": d, "y": y, "age": age, "x": x, "edu": edu})
    # An authority with no treated person: its evaluation fails and says why.
    for i in range(8):
        rows.append(
            {"authority": "AO", "d": 0, "y": 1.0 + i, "age": 30 + i, "x": 0.1 * i, "edu": "mid"}
        )
    return pd.DataFrame(rows)


def scrub(v):
    """Timings differ from run to run."""
    if isinstance(v, dict):
        return {k: scrub(x) for k, x in v.items() if k != "seconds"}
    if isinstance(v, list):
        return [scrub(x) for x in v]
    return v


@pytest.mark.parametrize("method", ["aipw", "psm"])
def test_evaluations_by_group_equal_one_evaluate_per_group(client, dd, method):
    import occupa.distributed as od

    table = evaluation_frame()
    options = dict(treatment="d", outcome="y", covariates=["age", "x", "edu"], method=method)
    got = od.evaluate_by(dd.from_pandas(table, npartitions=4), by="authority", **options)
    assert got["authority"].tolist() == sorted(table["authority"].unique())
    for row in got.to_dict("records"):
        rows = table[table["authority"] == row["authority"]]
        if row["authority"] == "AO":
            with pytest.raises(occupa.OccupaError) as e:
                occupa.evaluate(rows, **options)
            assert row["error"] == str(e.value) and math.isnan(row["estimate"])
            continue
        want = occupa.evaluate(rows, **options)
        assert scrub(row["result"]) == scrub(want)
        assert row["error"] is None
        assert (row["estimate"], row["se"]) == (want["estimate"], want["se"])
        assert [row["ci_low"], row["ci_high"]] == want["ci95"]
        assert (row["n_treated"], row["n_control"]) == (want["n_treated"], want["n_control"])
    # The same loop in this process on a pandas table gives the same table.
    local = od.evaluate_by(table, by="authority", **options)
    pd.testing.assert_frame_equal(
        local.drop(columns="result"), got.drop(columns="result"),
        check_exact=True, check_dtype=False,
    )
    assert scrub(local["result"].tolist()) == scrub(got["result"].tolist())
    with pytest.raises(occupa.OccupaError, match="AO"):
        od.evaluate_by(table, by="authority", errors="raise", **options)


def test_spark_gives_the_same_numbers():
    """Spark's groupBy().applyInPandas path, where pyspark is installed (not in CI)."""
    pyspark = pytest.importorskip("pyspark", reason="pyspark is not installed (not in CI)")
    import occupa.distributed as od
    from pyspark.sql import SparkSession

    os.environ["PYSPARK_PYTHON"] = sys.executable
    spark = (
        SparkSession.builder.master("local[2]")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .getOrCreate()
    )
    try:
        table = quarterly_series()
        want = occupa.forecast(table, horizon=4, model="ets", calibrate=False)
        got = od.forecast(spark.createDataFrame(table), horizon=4, model="ets", partitions=12)
        assert_same_forecasts(got.toPandas().astype(want.dtypes.to_dict()), want)
        table = monthly_series()
        parts = []
        for region, rows in table.groupby("region", sort=True):
            fc = occupa.forecast(rows, horizon=6, model="auto")
            fc.insert(0, "region", region)
            parts.append(fc)
        want = pd.concat(parts, ignore_index=True)
        got = od.forecast(spark.createDataFrame(table), horizon=6, model="auto", by="region")
        got = got.toPandas().astype(want.dtypes.to_dict())
        assert_same_forecasts(got, want, keys=("region", "id", "time"))
        ev = evaluation_frame()
        options = dict(treatment="d", outcome="y", covariates=["age", "x", "edu"], method="ipw")
        got = od.evaluate_by(spark.createDataFrame(ev), by="authority", **options)
        local = od.evaluate_by(ev, by="authority", **options)
        assert scrub(got["result"].tolist()) == scrub(local["result"].tolist())
    finally:
        spark.stop()
    assert pyspark.__version__
