#!/usr/bin/env python3
"""Employability-index (re-employment profiling) models on 1,000,000 persons: Occupa against its peers.

One script, one synthetic register of persons (seeded), one train/validation split by
intake month (train up to 2024-12, validate from 2025-01), every tool timed on the same
data. The outcome (employed within 12 months) comes from a known non-linear logit: a
quadratic in age, a step in GOL hours, disability x GOL interaction, an education effect
that differs by sex, province effects and a small drift from 2025 (so calibration on the
validation period is slightly off).

* Occupa: `occupa profile fit --model logit|boosting|probit --json`; its JSON gives the
  read/fit/effects/validation times, the wall time is the whole process (CSV read included).
* scikit-learn LogisticRegression (unpenalised, newton-cholesky) on a one-hot design.
* statsmodels Logit (newton) with standard errors, and get_margeff(at="overall").
* scikit-learn HistGradientBoostingClassifier (100 trees, 31 leaves) on the same design.

For each: AUC, Brier score and calibration slope (logit of y on logit(p)) on validation.
"fit" is the estimation only; "fit incl. encoding" adds the one-hot encoding from the data
frame; "wall" adds reading the CSV and scoring validation (for Occupa: the whole process).
With --threads N the peers get OMP/MKL/OPENBLAS_NUM_THREADS=N and Occupa RAYON_NUM_THREADS=N.

Usage:
  python3 -m venv /tmp/profvenv && /tmp/profvenv/bin/pip install -r benches/peers/requirements-profile.txt
  cargo build --release
  /tmp/profvenv/bin/python benches/peers/compare_profile.py [--rows 1000000] [--threads 2] [--json-out f.json]
"""

import argparse
import hashlib
import inspect
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SEED = 20251204
COVARIATES = "age,age^2,sex,citizenship_group,C(education),disability,social_care,gol_a,gol_b,gol_cd,province"
PROVINCES = {  # name: relative size (Piemonte and Lombardia)
    "Torino": 22, "Milano": 30, "Brescia": 12, "Bergamo": 11, "Varese": 9, "Cuneo": 6,
    "Novara": 4, "Alessandria": 4, "Asti": 2, "Biella": 1.7, "Vercelli": 1.6, "Verbano-Cusio-Ossola": 1.5,
}  # fmt: skip
PROVINCE_EFFECT = dict(zip(PROVINCES, [0.0, 0.25, 0.2, 0.3, 0.15, 0.35, 0.1, -0.2, -0.1, 0.05, -0.3, -0.25]))
CATEGORICAL = ["sex", "citizenship_group", "education", "province"]


def generate(path: Path, n: int, seed: int = SEED) -> None:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    m = rng.integers(0, 36, n)  # months since 2023-01
    months = np.array([f"{2023 + k // 12}-{k % 12 + 1:02d}" for k in range(36)])
    age = rng.integers(18, 65, n)
    male = rng.random(n) < 0.48
    cit = rng.choice(np.array(["ITA", "EU", "non-EU"]), n, p=[0.75, 0.08, 0.17])
    edu = rng.choice(np.arange(1, 6), n, p=[0.08, 0.32, 0.38, 0.12, 0.10])
    dis = (rng.random(n) < 0.06).astype(np.int8)
    care = (rng.random(n) < 0.08).astype(np.int8)
    gol_a = rng.binomial(20, 0.4, n)
    gol_b = rng.binomial(20, 0.3, n)
    gol_cd = rng.binomial(24, 0.35, n)
    w = np.array(list(PROVINCES.values()))
    prov_idx = rng.choice(len(PROVINCES), n, p=w / w.sum())
    a = age - 40.0
    edu_f = np.array([0, 0, 0.3, 0.7, 1.0, 1.3])[edu]  # education pays more for women
    edu_m = np.array([0, 0, 0.15, 0.3, 0.45, 0.5])[edu]
    eta = (
        -1.15 + 0.01 * a - 0.0025 * a * a - 0.3 * (age >= 58) + 0.2 * male + np.where(male, edu_m, edu_f)
        + np.select([cit == "EU", cit == "non-EU"], [-0.1, -0.35], 0.0)
        - 0.4 * dis - 0.5 * dis * (gol_cd >= 12) - 0.8 * care
        + 0.6 * (gol_a >= 10) + 0.015 * gol_b + 0.06 * np.minimum(gol_cd, 10)
        + np.array(list(PROVINCE_EFFECT.values()))[prov_idx]
        - 0.1 * (m >= 24)  # drift: the validation period is a little worse than the model thinks
    )  # fmt: skip
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-eta))).astype(np.int8)
    df = pd.DataFrame({
        "person": np.arange(1, n + 1), "intake_month": months[m], "age": age,
        "sex": np.where(male, "M", "F"), "citizenship_group": cit, "education": edu,
        "disability": dis, "social_care": care, "gol_a": gol_a, "gol_b": gol_b, "gol_cd": gol_cd,
        "province": np.array(list(PROVINCES))[prov_idx], "employed_12m": y,
    })  # fmt: skip
    df.to_csv(path, index=False)


def encode(df, squares=True):
    """One-hot design in the engine's column order and names; the first level in sorted
    order is the reference (no intercept column)."""
    import numpy as np

    cols, names = [], []
    for term in COVARIATES.split(","):
        if term == "age^2":
            if squares:
                cols.append(df["age"].to_numpy(float) ** 2)
                names.append(term)
            continue
        col = term[2:-1] if term.startswith("C(") else term
        if col in CATEGORICAL:
            levels = np.sort(df[col].unique())
            codes = np.searchsorted(levels, df[col].to_numpy())
            for k, lev in enumerate(levels[1:], start=1):
                cols.append((codes == k).astype(float))
                names.append(f"{col}={lev}")
        else:
            cols.append(df[col].to_numpy(float))
            names.append(col)
    return np.column_stack(cols), names


def scores(y, p):
    import numpy as np
    import statsmodels.api as sm
    from sklearn.metrics import brier_score_loss, roc_auc_score

    p = np.clip(p, 1e-12, 1 - 1e-12)
    lp = np.log(p / (1 - p))
    cal = sm.Logit(y, np.column_stack([np.ones_like(lp), lp])).fit(method="newton", disp=0)
    return {"auc": float(roc_auc_score(y, p)), "brier": float(brier_score_loss(y, p)),
            "calibration_intercept": float(cal.params[0]), "calibration_slope": float(cal.params[1])}  # fmt: skip


def peers(csv: Path, repeat: int) -> dict:
    import numpy as np
    import pandas as pd
    import sklearn
    import statsmodels
    import statsmodels.api as sm
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    t0 = time.perf_counter()
    df = pd.read_csv(csv, engine="pyarrow")
    t_read = time.perf_counter() - t0
    train = (df["intake_month"] < "2025-01").to_numpy()
    y = df["employed_12m"].to_numpy(np.int8)
    out = {"read_s": t_read, "n_train": int(train.sum()), "n_validate": int((~train).sum())}

    def timed(fit, squares=True):  # best of `repeat`: encoding and fit timed apart
        t_enc = t_fit = float("inf")
        for _ in range(repeat):
            t0 = time.perf_counter()
            x, names = encode(df, squares)
            t1 = time.perf_counter()
            model = fit(x[train], y[train])
            t_enc, t_fit = min(t_enc, t1 - t0), min(t_fit, time.perf_counter() - t1)
        return model, x, names, {"fit_s": t_fit, "fit_enc_s": t_enc + t_fit, "encode_s": t_enc}

    # scikit-learn logit: C=inf is penalty=None (the `penalty` argument is deprecated since 1.8)
    solver = "newton-cholesky" if tuple(map(int, sklearn.__version__.split(".")[:2])) >= (1, 2) else "lbfgs"
    lr = LogisticRegression(C=np.inf, solver=solver, max_iter=1000, tol=1e-8)
    model, x, names, t = timed(lambda x, y: lr.fit(x, y))
    t0 = time.perf_counter()
    p = model.predict_proba(x[~train])[:, 1]
    t["validate_s"] = time.perf_counter() - t0
    out["sklearn_logit"] = dict(t, solver=solver, n_iter=int(model.n_iter_[0]), **scores(y[~train], p),
                                coefficients=dict(zip(["(intercept)"] + names, [float(model.intercept_[0])] + model.coef_[0].tolist())))  # fmt: skip

    # statsmodels Logit with standard errors (bse is part of the timed fit)
    def sm_fit(x, y):
        r = sm.Logit(y, np.column_stack([np.ones(len(y)), x])).fit(method="newton", maxiter=100, disp=0)
        _ = r.bse
        return r

    res, x, names, t = timed(sm_fit)
    t0 = time.perf_counter()
    me = res.get_margeff(at="overall")
    _ = me.margeff_se
    t["effects_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    p = res.predict(np.column_stack([np.ones((~train).sum()), x[~train]]))
    t["validate_s"] = time.perf_counter() - t0
    full = ["(intercept)"] + names
    out["statsmodels_logit"] = dict(t, **scores(y[~train], p), converged=bool(res.mle_retvals["converged"]),
                                    coefficients={k: [float(b), float(s)] for k, b, s in zip(full, res.params, res.bse)},
                                    margeff={k: float(v) for k, v in zip(names, me.margeff)})  # fmt: skip

    # HistGradientBoosting on the one-hot design without age^2 (trees do not need it)
    hgb = HistGradientBoostingClassifier(max_iter=100, learning_rate=0.1, max_leaf_nodes=31, min_samples_leaf=20,
                                         max_bins=255, l2_regularization=0.0, early_stopping=False, random_state=0)  # fmt: skip
    model, x, names, t = timed(lambda x, y: hgb.fit(x, y), squares=False)
    t0 = time.perf_counter()
    p = model.predict_proba(x[~train])[:, 1]
    t["validate_s"] = time.perf_counter() - t0
    out["sklearn_histgb"] = dict(t, **scores(y[~train], p))

    sk = out["sklearn_logit"]["coefficients"]
    st = out["statsmodels_logit"]["coefficients"]
    out["sklearn_vs_statsmodels_max_abs_diff"] = max(abs(sk[k] - st[k][0]) for k in st)
    out["versions"] = {"sklearn": sklearn.__version__, "statsmodels": statsmodels.__version__,
                       "numpy": np.__version__, "pandas": pd.__version__}  # fmt: skip
    return out


def occupa(binary: Path, csv: Path, model: str, threads: int, repeat: int) -> dict:
    cmd = [str(binary), "profile", "fit", "--input", str(csv), "--outcome", "employed_12m",
           "--covariates", COVARIATES, "--model", model, "--period", "intake_month",
           "--validate-from", "2025-01", "--json"]  # fmt: skip
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    best = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, text=True, env=env)
        wall = time.perf_counter() - t0
        if r.returncode != 0:
            print(f"occupa profile fit --model {model} failed ({r.returncode}):\n{r.stderr.strip()}", file=sys.stderr)
            return {"error": r.stderr.strip(), "returncode": r.returncode, "wall_s": wall}
        try:
            res = json.loads(r.stdout)
        except json.JSONDecodeError as e:
            print(f"occupa profile fit --model {model}: stdout is not JSON ({e}):\n{r.stdout[:500]}", file=sys.stderr)
            return {"error": f"bad JSON: {e}", "wall_s": wall}
        res["wall_s"] = wall
        if best is None or res.get("timings", {}).get("fit_s", wall) < best.get("timings", {}).get("fit_s", best["wall_s"]):
            best = res
    return best


def compare_coefficients(occ: dict, st: dict) -> dict:
    mine = {c["name"]: c for c in occ.get("coefficients", [])}
    common = [k for k in st if k in mine]
    out = {"matched": len(common), "peer_only": [k for k in st if k not in mine],
           "occupa_only": [k for k in mine if k not in st]}  # fmt: skip
    if common:
        out["max_abs_diff_estimate"] = max(abs(mine[k]["estimate"] - st[k][0]) for k in common)
        with_se = [k for k in common if mine[k].get("se") is not None]
        if with_se:
            out["max_abs_diff_se"] = max(abs(mine[k]["se"] - st[k][1]) for k in with_se)
    return out


def fmt(v, spec):
    return format(v, spec) if isinstance(v, (int, float)) else "-"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--work", type=Path, default=Path("/tmp/occupa-profile-bench"))
    ap.add_argument("--occupa", type=Path, default=ROOT / "target" / "release" / "occupa")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="threads for the peers (OMP/MKL/OpenBLAS) and Occupa (rayon)")
    ap.add_argument("--repeat", type=int, default=1, help="best of N for every fit (and Occupa run)")
    ap.add_argument("--json-out", type=Path)
    a = ap.parse_args()
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(a.threads)  # before numpy / scikit-learn load their pools

    a.work.mkdir(parents=True, exist_ok=True)
    csv, meta = a.work / "persons.csv", a.work / "persons.meta.json"
    want = {"rows": a.rows, "seed": SEED, "generator": hashlib.sha1(inspect.getsource(generate).encode()).hexdigest()}
    if not csv.exists() or not meta.exists() or json.loads(meta.read_text()) != want:
        t0 = time.perf_counter()
        generate(csv, a.rows)
        meta.write_text(json.dumps(want))
        print(f"generated {csv} ({a.rows:,} persons) in {time.perf_counter() - t0:.1f} s", file=sys.stderr)

    import numpy as np

    res = {"rows": a.rows, "threads": a.threads, "cores": os.cpu_count(), "python": sys.version.split()[0]}
    res["load_before"] = os.getloadavg()[0]
    res["peers"] = pe = peers(csv, a.repeat)
    occ = {}
    if a.occupa.exists():
        for model in ("logit", "boosting", "probit"):
            occ[model] = occupa(a.occupa, csv, model, a.threads, a.repeat)
        if "coefficients" in occ["logit"]:
            res["logit_vs_statsmodels"] = compare_coefficients(occ["logit"], pe["statsmodels_logit"]["coefficients"])
    else:
        print(f"\nOccupa binary not found at {a.occupa}: peers only. Build it with:\n"
              f"  cd {ROOT} && cargo build --release\n", file=sys.stderr)  # fmt: skip
    res["occupa"] = occ

    print(f"\n{a.rows:,} persons: train {pe['n_train']:,} (intake < 2025-01), validate {pe['n_validate']:,}; "
          f"{a.threads} thread(s) on {os.cpu_count()} cores (load {res['load_before']:.1f} at start); best of {a.repeat}\n"
          f"Python {res['python']}, numpy {np.__version__}, scikit-learn {pe['versions']['sklearn']}, pandas {pe['versions']['pandas']}")  # fmt: skip
    print(f"peers read the CSV in {pe['read_s']:.2f} s (pandas, pyarrow engine)\n")
    print("| tool | model | fit s | fit incl. encoding s | wall s | AUC | Brier | slope |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    rows = []
    for key, tool, model in (("sklearn_logit", "scikit-learn", "LogisticRegression"),
                             ("statsmodels_logit", "statsmodels", "Logit + SEs"),
                             ("sklearn_histgb", "scikit-learn", "HistGradientBoosting")):  # fmt: skip
        r = pe[key]
        wall = pe["read_s"] + r["fit_enc_s"] + r["validate_s"]
        rows.append((tool, model, r["fit_s"], r["fit_enc_s"], wall, r["auc"], r["brier"], r["calibration_slope"]))
    rows.append(("statsmodels", "get_margeff(overall)", pe["statsmodels_logit"]["effects_s"], None, None, None, None, None))
    for model, r in occ.items():
        if "error" in r:
            rows.append(("Occupa", f"{model} (failed)", None, None, r["wall_s"], None, None, None))
            continue
        tm = r.get("timings", {})
        if (r.get("n_train"), r.get("n_validate")) != (pe["n_train"], pe["n_validate"]):
            print(f"note: Occupa {model} split {r.get('n_train')}/{r.get('n_validate')} differs from the peers'", file=sys.stderr)
        rows.append(("Occupa", model, tm.get("fit_s"), None, r["wall_s"], r.get("auc"), r.get("brier"), r.get("calibration_slope")))
        if model == "logit" and "effects_s" in tm:
            rows.append(("Occupa", "logit effects", tm["effects_s"], None, None, None, None, None))
    for t, m, f, fe, w, auc, b, s in rows:
        print(f"| {t} | {m} | {fmt(f, '.3f')} | {fmt(fe, '.3f')} | {fmt(w, '.2f')} | {fmt(auc, '.4f')} | {fmt(b, '.4f')} | {fmt(s, '.3f')} |")
    print("\nwall: peers = CSV read + encoding + fit + scoring validation; Occupa = the whole process.")

    d = pe["sklearn_vs_statsmodels_max_abs_diff"]
    print(f"\nscikit-learn vs statsmodels logit coefficients: max |diff| = {d:.2e}" + ("" if d < 1e-6 else "  ** above 1e-6 **"))
    if "logit_vs_statsmodels" in res:
        c = res["logit_vs_statsmodels"]
        print(f"Occupa logit vs statsmodels: {c['matched']} coefficients matched, max |diff| estimate "
              f"{fmt(c.get('max_abs_diff_estimate'), '.2e')}, se {fmt(c.get('max_abs_diff_se'), '.2e')}")  # fmt: skip
        if c["peer_only"] or c["occupa_only"]:
            print(f"  unmatched names: statsmodels only {c['peer_only']}, Occupa only {c['occupa_only']}")
    ratios = {}
    for label, peer_s, model, field in (
        ("logit with SEs: statsmodels / Occupa", pe["statsmodels_logit"]["fit_s"], "logit", "fit_s"),
        ("logit: scikit-learn / Occupa", pe["sklearn_logit"]["fit_s"], "logit", "fit_s"),
        ("marginal effects: statsmodels / Occupa", pe["statsmodels_logit"]["effects_s"], "logit", "effects_s"),
        ("boosting: HistGB / Occupa", pe["sklearn_histgb"]["fit_s"], "boosting", "fit_s"),
    ):
        mine = occ.get(model, {}).get("timings", {}).get(field)
        if mine:
            ratios[label] = peer_s / mine
            print(f"{label}: {peer_s:.3f} s / {mine:.3f} s = {peer_s / mine:.1f}x")
    if not occ:
        print("ratios: none (Occupa not run)")
    res["ratios"] = ratios
    if a.json_out:
        a.json_out.write_text(json.dumps(res, indent=2))
        print(f"\nwrote {a.json_out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
