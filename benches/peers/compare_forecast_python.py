"""10,000 monthly series through the Python package against statsforecast, and the
distributed path on a local Dask cluster of 1 and 2 worker processes, on the same data.

Data (the same for every tool): by default the simulator's labour-demand series of
`make_demand_series.py` (seed 42; level x annual growth x monthly season x gamma-Poisson
noise), 132 months each, the last 12 held out (h = 12); with `--data m3`, M3 monthly from
$OCCUPA_DATA_DIR/m3 (its 18 test months held out, h = 18), tiled to the size asked: copy 0
is M3 itself, copy c >= 1 each series (train and test) times seeded log-normal noise
(sd 0.03, seed = c). Season 12 for every tool.

Models: occupa `ets` (the AICc choice among the ETS models) against statsforecast
`AutoETS(season_length=12)`, occupa `theta` (standard theta) against statsforecast
`Theta(season_length=12)`; 80 and 95 % intervals. occupa runs with `calibrate=False`, the
setting the distributed path requires, so its intervals are the models' own, like
statsforecast's. Timed:
- occupa.forecast on the pandas frame, one process (the engine uses every core);
- statsforecast with n_jobs=1 and n_jobs=-1 (every core), after a warm-up fit on two
  series (import and compilation not timed);
- occupa.distributed.forecast on a LocalCluster of 1 and then 2 worker processes
  (threads_per_worker=1, RAYON_NUM_THREADS=1: one core each), the frame already in the
  workers' memory (persisted), 16 partitions; timed from the shuffle to the forecasts
  back on the driver; checked equal to the single-process run, number for number.
Accuracy: sMAPE (M3's, forecasts clipped at 0 on both sides as the engine clips counts)
and the share of held-out values inside the 95 % interval, over all series and horizons.

    python3 -m venv /tmp/fcvenv
    /tmp/fcvenv/bin/pip install statsforecast pandas pyarrow "dask[dataframe,distributed]" \\
        target/wheels/occupa-*.whl
    /tmp/fcvenv/bin/python benches/peers/compare_forecast_python.py              # 10,000
    /tmp/fcvenv/bin/python benches/peers/compare_forecast_python.py --series 500
    OCCUPA_DATA_DIR=../shared/data /tmp/fcvenv/bin/python \\
        benches/peers/compare_forecast_python.py --data m3
Options: --models ets,theta  --sf-jobs 1,-1  --workers 1,2  (an empty list skips a tool).
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import pandas as pd

HERE = os.path.dirname(os.path.abspath(__file__))
PARTITIONS = 16


def demand(n: int):
    """The simulator's series, 132 months: 120 to fit, 12 held out."""
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "demand.csv")
        subprocess.run(
            [sys.executable, os.path.join(HERE, "make_demand_series.py"), path, str(n), "132"],
            check=True,
        )
        df = pd.read_csv(path, dtype={"date": str})
    df["t"] = df.groupby("id", sort=False).cumcount() + 1
    train, test = df[df["t"] <= 120].copy(), df[df["t"] > 120].copy()
    return train, test, 12


def m3(n: int):
    """M3 monthly tiled to n series: copy 0 as published, the others with seeded noise."""
    root = os.environ.get("OCCUPA_DATA_DIR")
    if not root:
        sys.exit("--data m3 reads $OCCUPA_DATA_DIR/m3: set OCCUPA_DATA_DIR")
    tr = pd.read_csv(os.path.join(root, "m3", "m3_monthly_train.csv"))
    te = pd.read_csv(os.path.join(root, "m3", "m3_monthly_test.csv"))
    ids = list(dict.fromkeys(tr["unique_id"]))
    trains, tests = [], []
    for c in range(math.ceil(n / len(ids))):
        take = ids[: n - c * len(ids)]
        a, b = tr[tr["unique_id"].isin(take)].copy(), te[te["unique_id"].isin(take)].copy()
        if c:
            rng = np.random.default_rng(c)
            a["y"] *= np.exp(rng.normal(0, 0.03, len(a)))
            b["y"] *= np.exp(rng.normal(0, 0.03, len(b)))
        for x in (a, b):
            x["unique_id"] = x["unique_id"] + f"_{c}"
        trains.append(a)
        tests.append(b)
    cols = {"unique_id": "id", "y": "value"}
    train = pd.concat(trains).rename(columns=cols)
    test = pd.concat(tests).rename(columns=cols)
    train["date"] = train["t"]
    return train, test, 18


def scores(fc: pd.DataFrame, test: pd.DataFrame) -> tuple:
    """sMAPE and 95 % coverage; `fc` holds each series' horizons in order, in columns
    id, mean, lo_95, hi_95."""
    fc = fc.assign(k=fc.groupby("id", sort=False).cumcount())
    held = test.assign(k=test.groupby("id", sort=False).cumcount())
    j = held.merge(fc, on=["id", "k"], how="left", validate="one_to_one")
    if j["mean"].isna().any():
        raise SystemExit(f"{j['mean'].isna().sum()} held-out values without a forecast")
    y, f = j["value"].to_numpy(), np.clip(j["mean"].to_numpy(), 0, None)
    den = np.abs(y) + np.abs(f)
    smape = np.mean(np.where(den > 0, 200 * np.abs(y - f) / np.where(den > 0, den, 1), 0))
    cover = np.mean((y >= j["lo_95"].to_numpy()) & (y <= j["hi_95"].to_numpy()))
    return float(smape), float(100 * cover)


def run_occupa(train, h, model):
    import occupa

    t0 = time.perf_counter()
    fc = occupa.forecast(train, horizon=h, model=model, season=12, calibrate=False)
    return fc, time.perf_counter() - t0


def run_statsforecast(train, h, model, jobs):
    from statsforecast import StatsForecast
    from statsforecast.models import AutoETS, Theta

    make = {"ets": AutoETS, "theta": Theta}[model]
    df = train.rename(columns={"id": "unique_id", "t": "ds", "value": "y"})
    df = df[["unique_id", "ds", "y"]]
    warm = df[df["unique_id"].isin(df["unique_id"].unique()[:2])]
    StatsForecast(models=[make(season_length=12)], freq=1, n_jobs=1).forecast(
        df=warm, h=h, level=[80, 95]
    )
    sf = StatsForecast(models=[make(season_length=12)], freq=1, n_jobs=jobs)
    t0 = time.perf_counter()
    fc = sf.forecast(df=df, h=h, level=[80, 95])
    secs = time.perf_counter() - t0
    name = type(sf.models[0]).__name__
    names = {name: "mean", f"{name}-lo-95": "lo_95", f"{name}-hi-95": "hi_95"}
    return fc.rename(columns={"unique_id": "id", **names}), secs


def run_distributed(train, h, models, workers):
    import dask.dataframe as dd
    from dask.distributed import Client, LocalCluster

    import occupa.distributed as od

    out = {}
    cluster = LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        silence_logs=logging.ERROR,
        env={"RAYON_NUM_THREADS": "1"},
    )
    columns = ["id", "date", "value"]
    with cluster, Client(cluster) as client:
        client.wait_for_workers(workers)
        frame = dd.from_pandas(train[columns], npartitions=PARTITIONS).persist()
        # The workers import occupa and the shuffle machinery once, not timed.
        warm = dd.from_pandas(train[train["id"].isin(train["id"].unique()[:4])][columns], 2)
        od.forecast(warm, horizon=h, model="theta", season=12).compute()
        for model in models:
            t0 = time.perf_counter()
            fc = od.forecast(frame, horizon=h, model=model, season=12, partitions=PARTITIONS)
            fc = fc.compute()
            out[model] = (fc, time.perf_counter() - t0)
    return out


def same(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    key = ["id", "time"]
    a = a.sort_values(key).reset_index(drop=True)
    b = b.sort_values(key).reset_index(drop=True)
    return len(a) == len(b) and all(a[c].tolist() == b[c].tolist() for c in a.columns)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--series", type=int, default=10_000)
    p.add_argument("--data", choices=["demand", "m3"], default="demand")
    p.add_argument("--models", default="ets,theta")
    p.add_argument("--sf-jobs", default="1,-1")
    p.add_argument("--workers", default="1,2")
    a = p.parse_args()

    def ints(s):
        return [int(x) for x in s.split(",") if x.strip()]

    models = [m for m in a.models.split(",") if m]
    train, test, h = (demand if a.data == "demand" else m3)(a.series)
    print(
        f"{a.data}: {train['id'].nunique()} series, {len(train)} values to fit, h = {h}, "
        f"season 12; {os.cpu_count()} cores; python {sys.version.split()[0]}"
    )
    rows, single = [], {}
    for model in models:
        fc, secs = run_occupa(train, h, model)
        single[model] = fc
        rows.append((model, "occupa.forecast, 1 process", secs, *scores(fc, test), ""))
        for jobs in ints(a.sf_jobs):
            fc, secs = run_statsforecast(train, h, model, jobs)
            rows.append((model, f"statsforecast n_jobs={jobs}", secs, *scores(fc, test), ""))
    for w in ints(a.workers):
        for model, (fc, secs) in run_distributed(train, h, models, w).items():
            check = "= single" if same(fc, single[model]) else "DIFFERS from single"
            run = f"occupa.distributed, {w} worker(s)"
            rows.append((model, run, secs, *scores(fc, test), check))
    print(
        f"\n{'model':<7}{'run':<36}{'seconds':>9}{'sf / this':>11}{'sMAPE':>8}{'cov95':>7}"
        "  numbers"
    )
    for model, run, secs, smape, cover, check in rows:
        peers = [r[2] for r in rows if r[0] == model and r[1].startswith("statsforecast")]
        # Against the faster statsforecast run of the same model.
        ratio = f"{min(peers) / secs:9.1f}x" if peers else ""
        print(f"{model:<7}{run:<36}{secs:>9.2f}{ratio:>11}{smape:>8.3f}{cover:>7.1f}  {check}")
    for model in models:
        d = {r[1]: r[2] for r in rows if r[0] == model}
        one = d.get("occupa.distributed, 1 worker(s)")
        two = d.get("occupa.distributed, 2 worker(s)")
        if one and two:
            print(f"{model}: 2 workers {one / two:.2f}x the speed of 1")


if __name__ == "__main__":
    main()
