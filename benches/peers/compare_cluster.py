#!/usr/bin/env python3
"""Clustering at scale: Occupa against scikit-learn, stepmix and kmodes on the same data.

Three synthetic data sets (seeded), each tool timed on the same file, ratios printed:

* k-means on 1,000,000 x 75 Likert answers (1..5, six planted groups), k = 2..10 with
  10 starts each: scikit-learn KMeans(n_init=10) against Occupa's `kmeans-bench`
  (both read the data once and time the fits only);
* latent class analysis on 100,000 x 25 items (5 categories, four planted classes),
  4 classes, 3 starts: stepmix (categorical measurement model, its default tolerances)
  against `occupa cluster --method lca --starts 3 --no-se`;
* k-prototypes on 100,000 rows (5 numeric, 20 categorical columns, four planted
  groups), k = 4: kmodes KPrototypes (its defaults: Cao start, n_init = 10) against
  `occupa cluster --method kprototypes`.

Occupa's times are its fitting time (from the JSON, all starts) and the whole process
(reading the CSV included). Peers are timed around `fit`, data already in memory.

Usage:
  python3 -m venv /tmp/cluster-venv && /tmp/cluster-venv/bin/pip install numpy scikit-learn stepmix kmodes
  cargo build --release && cargo build --release -p occupa-benches --bin kmeans-bench
  /tmp/cluster-venv/bin/python benches/peers/compare_cluster.py [--only kmeans,lca,kprototypes]
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
SEED = 20261126


def likert(path: Path, n: int = 1_000_000, p: int = 75) -> None:
    rng = np.random.default_rng(SEED)
    means = rng.uniform(1.5, 4.5, size=(6, p))
    z = rng.integers(0, 6, size=n)
    x = np.clip(np.rint(means[z] + rng.standard_normal((n, p))), 1, 5).astype(np.int8)
    header = ",".join(f"q{j + 1:02d}" for j in range(p))
    np.savetxt(path, x, fmt="%d", delimiter=",", header=header, comments="")


def latent(path: Path, n: int = 100_000) -> None:
    rng = np.random.default_rng(SEED)
    items, cats = 25, 5
    shares = np.array([0.35, 0.3, 0.2, 0.15])
    probs = rng.dirichlet(np.full(cats, 0.7), size=(4, items))
    z = rng.choice(4, size=n, p=shares)
    cum = np.cumsum(probs[z], axis=2)
    x = np.minimum((rng.random((n, items))[:, :, None] > cum).sum(axis=2) + 1, cats)
    header = ",".join(f"i{j + 1:02d}" for j in range(items))
    np.savetxt(path, x, fmt="%d", delimiter=",", header=header, comments="")


def mixed(path: Path, n: int = 100_000) -> None:
    rng = np.random.default_rng(SEED)
    z = rng.integers(0, 4, size=n)
    num = rng.normal(0, 1, size=(n, 5)) + rng.normal(0, 1.5, size=(4, 5))[z]
    probs = rng.dirichlet(np.full(5, 0.7), size=(4, 20))
    cum = np.cumsum(probs[z], axis=2)
    cat = np.minimum((rng.random((n, 20))[:, :, None] > cum).sum(axis=2), 4)
    cols = [f"x{j + 1}" for j in range(5)] + [f"c{j + 1:02d}" for j in range(20)]
    letters = np.array(list("abcde"))
    with open(path, "w") as f:
        f.write(",".join(cols) + "\n")
        for i in range(n):
            f.write(",".join(f"{v:.4f}" for v in num[i]) + "," + ",".join(letters[cat[i]]) + "\n")


def occupa_json(cmd: list) -> tuple:
    t0 = time.perf_counter()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out), time.perf_counter() - t0


def bench_kmeans(work: Path, a) -> dict:
    csv = work / "likert-1m.csv"
    if not csv.exists():
        likert(csv)
    lines = subprocess.run([str(a.kmeans_bench), str(csv), "2", "10", "10"], check=True,
                           capture_output=True, text=True).stdout.splitlines()
    ours = {int(l.split()[0]): (float(l.split()[1]), float(l.split()[2])) for l in lines}
    from sklearn.cluster import KMeans
    x = np.loadtxt(csv, delimiter=",", skiprows=1, dtype=np.float64)
    rows = []
    for k in range(2, 11):
        t0 = time.perf_counter()
        km = KMeans(n_clusters=k, n_init=10, random_state=0).fit(x)
        sk = time.perf_counter() - t0
        rows.append({"k": k, "occupa_s": ours[k][0], "occupa_inertia": ours[k][1],
                     "sklearn_s": sk, "sklearn_inertia": float(km.inertia_)})
        r = rows[-1]
        print(f"k-means k={k}: occupa {r['occupa_s']:.2f} s, scikit-learn {sk:.2f} s "
              f"({sk / r['occupa_s']:.1f}x); inertia ratio occupa/sklearn "
              f"{r['occupa_inertia'] / r['sklearn_inertia']:.8f}", flush=True)
    tot_o = sum(r["occupa_s"] for r in rows)
    tot_s = sum(r["sklearn_s"] for r in rows)
    print(f"k-means k=2..10: occupa {tot_o:.1f} s, scikit-learn {tot_s:.1f} s ({tot_s / tot_o:.1f}x)")
    return {"rows": rows, "occupa_total_s": tot_o, "sklearn_total_s": tot_s}


def bench_lca(work: Path, a) -> dict:
    csv = work / "lca-100k.csv"
    if not csv.exists():
        latent(csv)
    cols = ",".join(f"i{j + 1:02d}" for j in range(25))
    res, wall = occupa_json([str(a.occupa), "cluster", "--input", str(csv), "--columns", cols,
                             "--method", "lca", "--k", "4", "--starts", "3", "--no-se", "--json"])
    from stepmix.stepmix import StepMix
    x = np.loadtxt(csv, delimiter=",", skiprows=1, dtype=np.int64) - 1
    t0 = time.perf_counter()
    sm = StepMix(n_components=4, measurement="categorical", n_init=3, random_state=0,
                 verbose=0, progress_bar=0).fit(x)
    st = time.perf_counter() - t0
    ll = float(sm.score(x)) * x.shape[0]
    out = {"occupa_fit_s": res["seconds"]["fit"], "occupa_wall_s": wall,
           "occupa_loglik": res["loglik"], "stepmix_s": st, "stepmix_loglik": ll}
    print(f"LCA 100k x 25, 4 classes, 3 starts: occupa {out['occupa_fit_s']:.2f} s fit "
          f"({wall:.2f} s whole process), stepmix {st:.2f} s ({st / out['occupa_fit_s']:.1f}x "
          f"on the fit, {st / wall:.1f}x whole); log-likelihood occupa {res['loglik']:.3f}, "
          f"stepmix {ll:.3f}", flush=True)
    return out


def bench_kprototypes(work: Path, a) -> dict:
    csv = work / "kproto-100k.csv"
    if not csv.exists():
        mixed(csv)
    cat = ",".join(f"c{j + 1:02d}" for j in range(20))
    res, wall = occupa_json([str(a.occupa), "cluster", "--input", str(csv), "--columns",
                             "x1,x2,x3,x4,x5," + cat, "--categorical", cat,
                             "--method", "kprototypes", "--k", "4", "--json"])
    out = {"occupa_fit_s": res["seconds"]["fit"], "occupa_wall_s": wall,
           "occupa_cost": res["inertia"]}
    print(f"k-prototypes 100k: occupa {out['occupa_fit_s']:.2f} s fit ({wall:.2f} s whole), "
          f"cost {res['inertia']:.1f}", flush=True)
    if a.skip_kmodes:
        return out
    from kmodes.kprototypes import KPrototypes
    import pandas as pd
    df = pd.read_csv(csv)
    t0 = time.perf_counter()
    kp = KPrototypes(n_clusters=4, random_state=0).fit(df.to_numpy(dtype=object),
                                                     categorical=list(range(5, 25)))
    kt = time.perf_counter() - t0
    out.update({"kmodes_s": kt, "kmodes_cost": float(kp.cost_)})
    print(f"  kmodes {kt:.1f} s ({kt / out['occupa_fit_s']:.0f}x), cost {kp.cost_:.1f} "
          f"(occupa/kmodes {res['inertia'] / kp.cost_:.6f})", flush=True)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--occupa", type=Path, default=ROOT / "target" / "release" / "occupa")
    ap.add_argument("--kmeans-bench", type=Path, default=ROOT / "target" / "release" / "kmeans-bench")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/occupa-cluster-bench"))
    ap.add_argument("--only", default="kmeans,lca,kprototypes")
    ap.add_argument("--skip-kmodes", action="store_true")
    a = ap.parse_args()
    a.workdir.mkdir(parents=True, exist_ok=True)
    results = {}
    for name in a.only.split(","):
        results[name] = {"kmeans": bench_kmeans, "lca": bench_lca,
                         "kprototypes": bench_kprototypes}[name](a.workdir, a)
    (a.workdir / "results.json").write_text(json.dumps(results, indent=2))
    print(f"results in {a.workdir / 'results.json'}", file=sys.stderr)


if __name__ == "__main__":
    main()
