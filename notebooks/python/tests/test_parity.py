"""The package gives the command line's numbers on the same data, bit for bit: each
test writes a table as CSV, runs the ``occupa`` binary on the file and the package on
the frame (pandas, polars and pyarrow), and compares the JSON, timings and the input's
description aside."""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
from pathlib import Path

import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

import occupa

ROOT = Path(__file__).resolve().parents[3]
BINARY = Path(os.environ.get("OCCUPA_BIN", ROOT / "target" / "release" / "occupa"))


def cli(*args: str) -> str:
    out = subprocess.run(
        [str(BINARY), *args], check=True, capture_output=True, text=True
    )
    return out.stdout


def scrub(v):
    """The JSON without what differs by nature between a file and a frame: timings and
    the description of the input read."""
    if isinstance(v, dict):
        return {k: scrub(x) for k, x in v.items() if k not in ("seconds", "input")}
    if isinstance(v, list):
        return [scrub(x) for x in v]
    return v


def evaluation_frame(n: int = 600, seed: int = 7) -> pd.DataFrame:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        age = rng.randint(18, 64)
        edu = rng.choice(["low", "mid", "high"])
        x = rng.gauss(0.0, 1.0)
        p = 1 / (1 + math.exp(-(-0.3 + 0.5 * x + (0.4 if edu == "low" else 0.0))))
        d = int(rng.random() < p)
        y = 2.0 + 0.03 * age + 0.8 * x + 1.5 * d + rng.gauss(0.0, 1.0)
        rows.append({"d": d, "y": y, "age": age, "x": x, "edu": edu})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return evaluation_frame()


@pytest.mark.parametrize("method", ["psm", "ipw", "aipw", "ols"])
@pytest.mark.parametrize("kind", ["pandas", "polars", "pyarrow"])
def test_evaluate_is_the_command_line_bit_for_bit(tmp_path, frame, method, kind):
    path = tmp_path / "eval.csv"
    frame.to_csv(path, index=False)
    want = json.loads(
        cli(
            "evaluate", "--input", str(path), "--treatment", "d", "--outcome", "y",
            "--covariates", "age,x,edu", "--method", method, "--json",
        )
    )
    table = {
        "pandas": frame,
        "polars": pl.from_pandas(frame),
        "pyarrow": pa.Table.from_pandas(frame, preserve_index=False),
    }[kind]
    got = occupa.evaluate(
        table, treatment="d", outcome="y", covariates=["age", "x", "edu"], method=method
    )
    assert scrub(got) == scrub(want)
    assert got["estimate"] == want["estimate"] and got["se"] == want["se"]


def test_missing_values_and_categories_are_read_as_the_file_is(tmp_path, frame):
    """A pandas categorical column is its labels (the file's text); a missing value
    (NaN, None) drops the row as an empty cell of the file does."""
    f = frame.copy()
    f.loc[3, "x"] = float("nan")
    f.loc[10, "edu"] = None
    f["edu"] = f["edu"].astype("category")
    path = tmp_path / "eval.csv"
    f.to_csv(path, index=False)
    want = json.loads(
        cli(
            "evaluate", "--input", str(path), "--treatment", "d", "--outcome", "y",
            "--covariates", "age,x,edu", "--method", "aipw", "--json",
        )
    )
    got = occupa.evaluate(
        f, treatment="d", outcome="y", covariates=["age", "x", "edu"], method="aipw"
    )
    assert scrub(got) == scrub(want)
    assert got["n_treated"] + got["n_control"] == len(f) - 2


def test_cluster_is_the_command_line_bit_for_bit(tmp_path, frame):
    path = tmp_path / "c.csv"
    frame.to_csv(path, index=False)
    want = json.loads(
        cli(
            "cluster", "--input", str(path), "--columns", "age,x,y", "--method",
            "kmeans", "--k-range", "2..4", "--standardise", "--seed", "3", "--json",
        )
    )
    got = occupa.cluster(
        pl.from_pandas(frame), columns=["age", "x", "y"], method="kmeans",
        k_range="2..4", standardise=True, seed=3,
    )
    labels = got.pop("labels")
    assert scrub(got) == scrub(want)
    assert len(labels) == len(frame)
    assert sorted(set(labels)) == list(range(got["k"]))


def test_forecast_is_the_command_line_csv(tmp_path):
    rng = random.Random(11)
    rows = []
    for s in ("a", "b", "c"):
        level = rng.uniform(50, 150)
        for m in range(48):
            season = 10 * math.sin(2 * math.pi * m / 12)
            rows.append(
                {
                    "id": s,
                    "date": f"{2020 + m // 12}-{m % 12 + 1:02d}",
                    "value": level + 0.5 * m + season + rng.gauss(0, 3),
                }
            )
    long = pd.DataFrame(rows)
    path, out = tmp_path / "series.csv", tmp_path / "fc.csv"
    long.to_csv(path, index=False)
    cli("forecast", "--input", str(path), "--horizon", "6", "--out", str(out), "--quiet")
    want = pd.read_csv(out, dtype={"time": str})
    got = occupa.forecast(long, horizon=6)
    assert list(got.columns) == list(want.columns)
    assert got["id"].tolist() == want["id"].tolist()
    assert got["time"].tolist() == want["time"].tolist()
    for c in ["mean", "lo_80", "hi_80", "lo_95", "hi_95"]:
        assert got[c].tolist() == want[c].tolist(), c
    assert got.attrs["summary"]["horizon"] == 6
    assert len(got) == 3 * 6


def test_the_module_docstring_runs():
    import doctest

    assert doctest.testmod(occupa).failed == 0


def test_column_names_match_as_in_a_file(frame):
    """The engine matches a name to a header as it does a file's (case aside)."""
    upper = frame.rename(columns={"age": "Age"})
    a = occupa.evaluate(upper, treatment="d", outcome="y", covariates=["age", "x"], method="ols")
    b = occupa.evaluate(frame, treatment="d", outcome="y", covariates=["age", "x"], method="ols")
    assert a["estimate"] == b["estimate"]


def test_errors_carry_the_engine_message(frame):
    with pytest.raises(occupa.OccupaError, match="unknown field `calliper`"):
        occupa.evaluate(
            frame, treatment="d", outcome="y", covariates=["x"], method="psm", calliper=0.1
        )
    with pytest.raises(occupa.OccupaError, match="wage"):
        occupa.evaluate(frame, treatment="d", outcome="wage", covariates=["x"], method="ols")
    with pytest.raises(occupa.OccupaError, match="not a table"):
        occupa.evaluate([1, 2, 3], treatment="d", outcome="y", method="ols")
    # The exception survives pickling (a worker of a cluster sends it back).
    import pickle

    e = pickle.loads(pickle.dumps(occupa.OccupaError("x")))
    assert isinstance(e, occupa.OccupaError)


def profile_frame(n: int = 3000) -> pd.DataFrame:
    rng = random.Random(18)
    rows = []
    for i in range(n):
        age = rng.randint(18, 64)
        sex = rng.choice(["F", "M"])
        edu = rng.choice([1, 2, 3, 4, 5])
        month = f"{2023 + i % 3}-{1 + i % 12:02d}"
        eta = -0.2 - 0.03 * (age - 40) + 0.2 * (edu - 3) + (0.2 if sex == "M" else 0.0)
        y = int(rng.random() < 1 / (1 + math.exp(-eta)))
        rows.append((month, age, sex, edu, y))
    return pd.DataFrame(rows, columns=["intake_month", "age", "sex", "education", "employed_12m"])


@pytest.mark.parametrize("model", ["logit", "boosting"])
def test_profile_fit_equals_the_command_line(tmp_path, model):
    df = profile_frame()
    path = tmp_path / "persons.csv"
    df.to_csv(path, index=False)
    covariates = ["age", "age^2", "sex", "C(education)"]
    want = json.loads(
        cli(
            "profile", "fit", "--input", str(path), "--covariates", ",".join(covariates),
            "--validate-from", "2025-01", "--model", model, "--groups", "sex", "--json",
        )
    )
    drop = lambda v: {k: x for k, x in scrub(v).items() if k != "timings"}
    for frame in (df, pl.from_pandas(df), pa.Table.from_pandas(df)):
        got = occupa.profile_fit(
            frame, covariates=covariates, validate_from="2025-01", model=model, groups=["sex"]
        )
        assert drop(got.report) == drop(want)
    scores = got.score(df)
    assert len(scores) == len(df)
    assert scores["p_employed_12m"].between(0, 1).all()
    assert set(scores["class"]) <= {1, 2, 3, 4}
