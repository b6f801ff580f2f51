"""Occupa against statsforecast on M3, in the same run.

Runs statsforecast's AutoETS, Theta (STM) and AutoTheta on M3 monthly and quarterly (its
import and numba compilation excluded: a warm-up fit runs first), then Occupa's
`m3-forecast` binary on the same data, and prints sMAPE, MASE, coverage and seconds side by
side with the speed ratio.

    python -m venv /tmp/fc-venv && /tmp/fc-venv/bin/pip install statsforecast pandas
    cargo build --release -p occupa-benches --bin m3-forecast
    OCCUPA_DATA_DIR=../shared/data /tmp/fc-venv/bin/python benches/peers/compare_forecast.py [monthly|quarterly ...]
"""

import os
import subprocess
import sys
import time

import numpy as np
import pandas as pd

DATA = os.path.join(os.environ.get("OCCUPA_DATA_DIR", "../shared/data"), "m3")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(ROOT, "target", "release", "m3-forecast")
FREQ = {"monthly": (12, 18), "quarterly": (4, 8)}


def scores(train, test, fc, m, col):
    out = {"smape": [], "mase": [], "c80": [], "c95": []}
    tr = {k: g["y"].to_numpy() for k, g in train.groupby("unique_id")}
    te = {k: g["y"].to_numpy() for k, g in test.groupby("unique_id")}
    for uid, g in fc.groupby("unique_id"):
        f = np.clip(g[col].to_numpy(), 0, None)
        y = te[uid]
        out["smape"].append(np.mean(200 * np.abs(y - f) / (np.abs(y) + np.abs(f))))
        x = tr[uid]
        scale = np.mean(np.abs(x[m:] - x[:-m]))
        if scale > 0:
            out["mase"].append(np.mean(np.abs(y - f)) / scale)
        for lv in (80, 95):
            lo, hi = g[f"{col}-lo-{lv}"].to_numpy(), g[f"{col}-hi-{lv}"].to_numpy()
            out[f"c{lv}"].append(np.mean((y >= lo) & (y <= hi)))
    return {k: float(np.mean(v)) for k, v in out.items()}


def main():
    from statsforecast import StatsForecast
    from statsforecast.models import AutoARIMA, AutoETS, AutoTheta, Theta

    freqs = sys.argv[1:] or ["monthly", "quarterly"]
    for freq in freqs:
        m, h = FREQ[freq]
        train = pd.read_csv(os.path.join(DATA, f"m3_{freq}_train.csv")).rename(columns={"t": "ds"})
        test = pd.read_csv(os.path.join(DATA, f"m3_{freq}_test.csv")).rename(columns={"t": "ds"})
        print(f"\n== M3 {freq}: {train.unique_id.nunique()} series, h={h}")
        print(f"{'method':<28}{'sMAPE':>8}{'MASE':>8}{'cov80':>7}{'cov95':>7}{'seconds':>9}")
        peers = {}
        models = [
            ("AutoETS", AutoETS(season_length=m), "ets"),
            ("Theta", Theta(season_length=m), "theta"),
            ("AutoTheta", AutoTheta(season_length=m), "autotheta"),
        ]
        # AutoARIMA on monthly M3 takes statsforecast (and us) many minutes; the issue's
        # bar is quarterly. ARIMA_MONTHLY=1 adds it.
        if freq == "quarterly" or os.environ.get("ARIMA_MONTHLY"):
            models.append(("AutoARIMA", AutoARIMA(season_length=m), "arima"))
        for name, model, ours in models:
            # Warm-up (numba/JIT, imports) on two series, not timed.
            warm = train[train.unique_id.isin(train.unique_id.unique()[:2])]
            StatsForecast(models=[model], freq=1, n_jobs=1).forecast(df=warm, h=h, level=[80, 95])
            sf = StatsForecast(models=[model], freq=1, n_jobs=os.cpu_count())
            t0 = time.perf_counter()
            fc = sf.forecast(df=train, h=h, level=[80, 95])
            secs = time.perf_counter() - t0
            s = scores(train, test, fc, m, name)
            peers[ours] = secs
            print(f"{'statsforecast ' + name:<28}{s['smape']:>8.3f}{s['mase']:>8.3f}{s['c80']:>7.3f}{s['c95']:>7.3f}{secs:>9.2f}")
        out = subprocess.run(
            [BIN, freq, "ets,theta,autotheta,comb,ets+cal,theta+cal,auto"
             + (",arima,median,median+cal" if "arima" in peers else "")],
            capture_output=True, text=True, check=True,
            env={**os.environ, "OCCUPA_DATA_DIR": os.path.dirname(DATA)},
        ).stdout
        for line in out.splitlines()[1:]:
            parts = line.split()
            name, smape, mase, c80, c95, secs = parts[0], *map(float, parts[2:7])
            ratio = f"  {peers[name] / secs:6.1f}x faster" if name in peers else ""
            print(f"{'occupa ' + name:<28}{smape:>8.3f}{mase:>8.3f}{c80:>7.3f}{c95:>7.3f}{secs:>9.2f}{ratio}")


if __name__ == "__main__":
    main()
