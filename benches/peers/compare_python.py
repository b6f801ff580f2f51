#!/usr/bin/env python3
"""The Python package against the command line and scikit-learn: propensity-score
matching on 1,000,000 units x 20 covariates (the data of compare_causal.py, seeded).

* CLI: `occupa evaluate --method psm --json` on the data as Parquet; its JSON splits the
  time into reading and estimating, the wall time is the whole process.
* Package: `occupa.evaluate(df, method="psm", ...)` on the same data already in memory,
  as a pandas DataFrame and as a polars DataFrame: Arrow import, the copy into the
  engine's columns and the estimation. Its overhead is measured against the CLI's whole
  process (the CLI's own timers leave out building the design matrix), and against the
  CLI's read + estimate timers; its estimate must equal the CLI's.
* scikit-learn + numpy: compare_causal.py's sort-based matcher (the fastest Python route).

Usage (after `cargo build --release` and the package installed, see README):
  python3 -m venv /tmp/pyb && /tmp/pyb/bin/pip install './notebooks/python[pandas]' polars scikit-learn
  /tmp/pyb/bin/python benches/peers/compare_python.py [--rows 1000000] [--repeat 3]
"""

import argparse
import importlib.util
import json
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
COV = [f"x{j + 1}" for j in range(20)]


def peers():
    spec = importlib.util.spec_from_file_location("cc", ROOT / "benches/peers/compare_causal.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    import occupa
    import polars as pl

    cc = peers()
    binary = ROOT / "target/release/occupa"
    with tempfile.TemporaryDirectory() as tmp:
        csv, parquet = Path(tmp) / "psm.csv", Path(tmp) / "psm.parquet"
        cc.generate(csv, a.rows)
        df = pd.read_csv(csv)
        df.to_parquet(parquet, index=False)
        pldf = pl.from_pandas(df)
        cmd = [str(binary), "evaluate", "--input", str(parquet), "--treatment", "treat",
               "--outcome", "y", "--covariates", ",".join(COV), "--method", "psm", "--json"]  # fmt: skip
        cli = []
        for _ in range(a.repeat):
            t0 = time.perf_counter()
            out = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
            cli.append((time.perf_counter() - t0, out["seconds"]["read"], out["seconds"]["estimate"], out))
        pkg = {}
        for name, frame in (("pandas", df), ("polars", pldf)):
            runs = []
            for _ in range(a.repeat):
                t0 = time.perf_counter()
                r = occupa.evaluate(frame, treatment="treat", outcome="y", covariates=COV, method="psm")
                runs.append((time.perf_counter() - t0, r))
            pkg[name] = runs
        sk = cc.sklearn_numpy(csv)
    best_cli = min(cli, key=lambda c: c[2])
    est = best_cli[2]
    print(f"rows {a.rows}, 20 covariates, PSM 1:1 with replacement, caliper 0.2 SD; best of {a.repeat}")
    print(f"CLI (Parquet): wall {min(c[0] for c in cli):.2f} s, read {best_cli[1]:.2f} s, estimate {est:.2f} s; ATT {best_cli[3]['estimate']:.6f}")
    for name, runs in pkg.items():
        t = min(r[0] for r in runs)
        same = all(r[1]["estimate"] == best_cli[3]["estimate"] and r[1]["se"] == best_cli[3]["se"] for r in runs)
        wall = min(c[0] for c in cli)
        print(f"package ({name} frame): {t:.2f} s = CLI process x {t / wall:.3f} ({100 * (t / wall - 1):+.1f} %), CLI's read + estimate x {t / (est + best_cli[1]):.3f}; same ATT and SE as the CLI: {same}")
    print(f"scikit-learn + numpy: {sk['total']:.2f} s (fit {sk['fit']:.2f} s); ATT {sk['att']:.6f}; package (pandas) is x{sk['total'] / min(r[0] for r in pkg['pandas']):.1f} faster")


if __name__ == "__main__":
    main()
