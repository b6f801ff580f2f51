#!/usr/bin/env python3
"""Regression discontinuity (sharp, rdrobust defaults: local linear, triangular kernel,
mserd bandwidth, nn variance) on the same synthetic data: Occupa against rdrobust (Python)
and rdrobust-rust (a Rust port on PyPI). Estimates must agree; ratios printed.

Usage:
  cargo build --release
  /tmp/causal-venv/bin/pip install -r benches/peers/requirements-causal.txt rdrobust==2.1.1 rdrobust-rust==0.1.1
  /tmp/causal-venv/bin/python benches/peers/compare_rdd.py [--rows 100000 1000000]
Occupa's time is the estimation inside `occupa evaluate --method rdd` (from its JSON),
the peers' the call on in-memory arrays: neither counts reading the CSV.
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def data(n: int, path: Path):
    rng = np.random.default_rng(20251125)
    x = rng.uniform(-1, 1, n)
    y = 0.5 + 0.8 * x - 0.3 * x * x + 0.4 * (x >= 0) + rng.normal(0, 0.3, n)
    d = (x >= 0).astype(int)
    np.savetxt(path, np.column_stack([x, y, d]), delimiter=",", header="x,y,d", comments="",
               fmt=["%.17g", "%.17g", "%d"])  # fmt: skip
    return x, y


def best(f, repeat):
    out, t = None, float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = f()
        t = min(t, time.perf_counter() - t0)
    return out, t


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--occupa", type=Path, default=ROOT / "target" / "release" / "occupa")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip-python", action="store_true", help="skip rdrobust (slow at 1M)")
    a = ap.parse_args()
    work = Path("/tmp/occupa-rdd-bench")
    work.mkdir(exist_ok=True)
    print(f"{'rows':>10} {'tool':<16} {'seconds':>9} {'estimate':>10} {'robust CI':>22} {'h':>8}")
    for n in a.rows:
        csv = work / f"rdd-{n}.csv"
        x, y = data(n, csv)
        cmd = [str(a.occupa), "evaluate", "--input", str(csv), "--treatment", "d", "--outcome", "y",
               "--method", "rdd", "--running", "x", "--cutoff", "0", "--json"]  # fmt: skip
        runs = [json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
                for _ in range(a.repeat)]  # fmt: skip
        occ = min(runs, key=lambda r: r["seconds"])
        ci = occ["robust"]["ci95"]
        print(f"{n:>10,} {'Occupa':<16} {occ['seconds']:>9.3f} {occ['conventional']['estimate']:>10.5f} "
              f"{ci[0]:>10.5f} {ci[1]:>10.5f} {occ['h'][0]:>8.5f}")  # fmt: skip
        import rdrobust_rust

        r, t_rust = best(lambda: rdrobust_rust.rdrobust(y, x, c=0.0), a.repeat)
        print(f"{n:>10,} {'rdrobust-rust':<16} {t_rust:>9.3f} {r['coef'][0]:>10.5f} "
              f"{r['ci'][2][0]:>10.5f} {r['ci'][2][1]:>10.5f} {r['bws'][0][0]:>8.5f}")  # fmt: skip
        print(f"{'':>10} rdrobust-rust / Occupa = {t_rust / occ['seconds']:.1f}x")
        if not a.skip_python:
            from rdrobust import rdrobust

            rp, t_py = best(lambda: rdrobust(y, x, c=0), 1)
            print(f"{n:>10,} {'rdrobust (Py)':<16} {t_py:>9.3f} {float(rp.coef.iloc[0, 0]):>10.5f} "
                  f"{float(rp.ci.iloc[2, 0]):>10.5f} {float(rp.ci.iloc[2, 1]):>10.5f} {float(rp.bws.iloc[0, 0]):>8.5f}")  # fmt: skip
            print(f"{'':>10} rdrobust / Occupa = {t_py / occ['seconds']:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
