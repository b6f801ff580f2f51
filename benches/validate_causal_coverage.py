#!/usr/bin/env python3
"""Coverage of Occupa's 95 % intervals on the simulator's planted service effects.

For each seed: `occupa simulate` a population; take the persons who received service A.4
(treated) or no main service (controls) and were observed at least 7 months after intake;
the outcome is being employed 6 months after intake (the simulator's realised draw); the
covariates are the ones the simulator's service assignment uses (age, low education,
Italian citizenship, disability, social-services care, GOL path as dummies, GOL scores
A, B and C/D). `occupa evaluate` estimates the effect; the planted truth is the average of
the exact potential-outcome probabilities (p6_a4 - p6_none in truth-persons.csv) over the
same persons (ATE) or over its treated (ATT). Counts how often the interval covers it.

The assignment is a multinomial logit in these covariates, so the logit of A.4 against
none is correctly specified; the outcome (a job-finding hazard that also depends on the
latent class and the operator) is not linear in them, which AIPW tolerates.

Usage: cargo build --release && python3 benches/validate_causal_coverage.py [--seeds 100]
No third-party Python packages needed.
"""

import argparse
import csv
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COVARIATES = "age,low_education,italian,disability,social_care,path,gol_a,gol_b,gol_cd"
METHODS = [
    ("aipw", "ate", []),
    ("ipw", "ate", []),
    ("ipw", "att", []),
    ("ra", "att", []),
    ("psm", "att", ["--ratio", "3"]),
]


def analysis_file(truth_csv: Path, out: Path):
    """Writes the analysis CSV; returns the sample ATE and ATT of A.4 against none."""
    rows = list(csv.DictReader(open(truth_csv, newline="")))
    keep = [r for r in rows if r["service"] in ("A.4", "none") and int(r["months_observed"]) >= 7]
    with open(out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["treat", "employed_6m"] + COVARIATES.split(","))
        for r in keep:
            w.writerow([1 if r["service"] == "A.4" else 0, r["employed_6m"], r["age"], r["low_education"],
                        r["italian"], r["disability"], r["social_care"], "p" + r["gol_path"],
                        r["gol_a"], r["gol_b"], r["gol_cd"]])  # fmt: skip
    eff = [float(r["p6_a4"]) - float(r["p6_none"]) for r in keep]
    treated = [e for e, r in zip(eff, keep) if r["service"] == "A.4"]
    return sum(eff) / len(eff), sum(treated) / len(treated), len(keep)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=100)
    ap.add_argument("--persons", type=int, default=5000)
    ap.add_argument("--occupa", type=Path, default=ROOT / "target" / "release" / "occupa")
    a = ap.parse_args()
    covered = {f"{m} {e}": 0 for m, e, _ in METHODS}
    bias = {k: 0.0 for k in covered}
    done = {k: 0 for k in covered}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for seed in range(1, a.seeds + 1):
            sim = tmp / f"sim{seed}"
            subprocess.run([str(a.occupa), "simulate", "--out", str(sim), "--persons", str(a.persons),
                            "--tenants", "2", "--seed", str(seed)], check=True, capture_output=True)  # fmt: skip
            data = tmp / f"eval{seed}.csv"
            ate, att, n = analysis_file(sim / "truth-persons.csv", data)
            for m, est, extra in METHODS:
                key = f"{m} {est}"
                out = subprocess.run([str(a.occupa), "evaluate", "--input", str(data), "--treatment", "treat",
                                      "--outcome", "employed_6m", "--covariates", COVARIATES, "--method", m,
                                      "--estimand", est, "--json"] + extra,
                                     capture_output=True, text=True)  # fmt: skip
                if out.returncode != 0:
                    print(f"seed {seed} {key}: {out.stderr.strip()}", file=sys.stderr)
                    continue
                res = json.loads(out.stdout)
                truth = ate if est == "ate" else att
                lo, hi = res["ci95"]
                covered[key] += lo <= truth <= hi
                bias[key] += res["estimate"] - truth
                done[key] += 1
            subprocess.run(["rm", "-rf", str(sim)])
    print(f"{a.seeds} seeds x {a.persons} simulated persons; A.4 against none, employed at 6 months")
    print(f"{'method':<10} {'runs':>5} {'covered':>8} {'mean bias':>10}")
    ok = True
    for k in covered:
        runs = max(done[k], 1)
        print(f"{k:<10} {done[k]:>5} {covered[k]:>8} {bias[k] / runs:>10.4f}")
        ok &= done[k] == a.seeds and covered[k] >= 0.9 * a.seeds
    print("target: the 95% interval covers the planted effect in at least 90 of 100 seeds ->",
          "met" if ok else "missed")  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
