"""Times `occupa anonymise-table` against anjana (greedy k-anonymity) and ARX's published figures.

What one run does:
 1. Generates (once, cached in --workdir) a deterministic synthetic table of --rows persons
    (default 1,000,000) with six quasi-identifiers, and ARX-style hierarchy files for them:
      age           16-90, skewed to working age  -> 5-year band -> 10-year band -> 20-year band -> *
      sex           M/F                           -> *
      municipality  300 six-digit ISTAT-style codes, Zipf-skewed (s=1.0), 10 per province
                                                  -> province (first 3 digits) -> region (6) -> *
      citizenship   20 countries, Italy ~86 %     -> area (Italy, EU, Europe non-EU, Africa, Asia,
                                                     Americas) -> EU / non-EU (Italy counted inside
                                                     EU, as it is a member state) -> *
      education     8 levels                      -> low / medium / high -> *
      benefit       none, NASpI, ADI, SFL         -> no / yes -> *
    Columns are drawn independently; the CSV has a header line. Hierarchy files are
    DIR/<column>.csv: one row per original value, level 0 first, comma-separated, no header,
    as ARX writes them.
 2. Runs Occupa on it (k=5, at most 4 % suppression, metric entropy by default), best of
    --repeat runs, timed by wall clock and by the report's own timings:
      occupa anonymise-table --input CSV --qi age,sex,municipality,citizenship,education,benefit
          --k 5 --hierarchies DIR --max-suppression 0.04 --metric entropy --out CSV --report JSON
 3. Runs anjana (anjana.anonymity.k_anonymity_inner, the greedy algorithm behind
    anjana.anonymity.k_anonymity) on the same file and hierarchies, k=5, supp_level=4
    (anjana takes a percentage, 0-100), once, in a child Python process so that its wall
    clock is a whole process like Occupa's. With --anjana-rows N only the first N rows are
    used (rows are i.i.d., so the head is a random sample) and Occupa is also run on those
    N rows so that the ratio compares like with like.
 4. Runs Occupa (and, unless --skip-anjana, anjana) on Adult: $OCCUPA_DATA_DIR/adult/adult.csv
    with adult/hierarchies/, all nine columns quasi-identifiers, k=5, suppression 0.04, and
    checks Occupa's node against adult/arx-golden.json. OCCUPA_DATA_DIR defaults to
    ../shared/data relative to the repository root.
 5. Prints a table (tool, data, rows, load s, search s, total s, wall s, ratios vs Occupa)
    and Occupa's ratio against ARX 3.9.2's figures from the spec (1,000,000 synthetic rows,
    6 QIs, k=5, <=4 % suppression: ARX 5.4 s load + 9.1 s search; anjana 155 s), and the
    targets: Occupa search < 1 s on the 1M table, < 50 ms on Adult k=5.
 6. With --json PATH, writes all of it as JSON.

Setup and use (from the repository root):
    cargo build --release
    python3 -m venv /tmp/anon-venv
    /tmp/anon-venv/bin/pip install -r benches/peers/requirements-anonymise.txt
    /tmp/anon-venv/bin/python benches/peers/compare_anonymise.py --occupa target/release/occupa
Quicker:  ... --anjana-rows 100000      (anjana on 1M rows takes minutes)
          ... --skip-anjana             (Occupa only; needs only numpy and pandas)
          ... --skip-occupa             (generator and anjana only)
          ... --check                   (exit 1 when a target is missed)

Occupa's --report JSON must contain "timings": {"load_s", "search_s", "total_s"} in
seconds, "node" (hierarchy level per QI: a list in --qi order, or an object column -> level)
and "information_loss"; "suppressed" (record count) is shown when present.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

GENERATOR_VERSION = 1  # bump when the generator changes, so cached files are not reused
DEFAULT_SEED = 20251125
QIS = ["age", "sex", "municipality", "citizenship", "education", "benefit"]

# ARX 3.9.2's figures quoted in the spec (not measured here): 1,000,000 synthetic rows,
# 6 QIs, k=5, at most 4 % suppression.
ARX_SPEC = {"rows": 1_000_000, "load_s": 5.4, "search_s": 9.1, "total_s": 5.4 + 9.1}
ANJANA_SPEC = {"rows": 1_000_000, "total_s": 155.0}
TARGET_1M_SEARCH_S = 1.0
TARGET_ADULT_SEARCH_S = 0.050


# --------------------------------------------------------------------------- data


def _age_weights(np):
    ages = np.arange(16, 91)
    w = np.exp(-0.5 * ((ages - 38) / 14.0) ** 2) + 0.25 * np.exp(-0.5 * ((ages - 24) / 4.0) ** 2)
    w = np.where(ages > 67, w * 0.3, w)  # few people past pension age in employment services
    return ages, w / w.sum()


REGIONS = ["Piemonte", "Lombardia", "Veneto", "Friuli-Venezia Giulia", "Emilia-Romagna", "Toscana"]
PROVINCES_PER_REGION = 5
MUNICIPALITIES_PER_PROVINCE = 10
ZIPF_S = 1.0

# country, area, weight (relative). Italy is counted inside "EU" at the third level.
CITIZENSHIP = [
    ("Italy", "Italy", 860.0),
    ("Romania", "EU", 25.0),
    ("Poland", "EU", 4.0),
    ("Bulgaria", "EU", 3.0),
    ("Germany", "EU", 2.0),
    ("Albania", "Europe non-EU", 16.0),
    ("Ukraine", "Europe non-EU", 9.0),
    ("Moldova", "Europe non-EU", 6.0),
    ("Morocco", "Africa", 15.0),
    ("Egypt", "Africa", 6.0),
    ("Senegal", "Africa", 5.0),
    ("Nigeria", "Africa", 5.0),
    ("Tunisia", "Africa", 3.0),
    ("China", "Asia", 10.0),
    ("Philippines", "Asia", 6.0),
    ("India", "Asia", 6.0),
    ("Bangladesh", "Asia", 5.0),
    ("Pakistan", "Asia", 4.0),
    ("Peru", "Americas", 5.0),
    ("Ecuador", "Americas", 5.0),
]
EU_AREAS = {"Italy", "EU"}

# level, group, weight
EDUCATION = [
    ("none", "low", 3.0),
    ("primary", "low", 8.0),
    ("lower-secondary", "low", 30.0),
    ("vocational-qualification", "medium", 12.0),
    ("upper-secondary", "medium", 30.0),
    ("post-secondary", "medium", 3.0),
    ("bachelor", "high", 8.0),
    ("master-or-higher", "high", 6.0),
]

# state, receives a benefit, weight
BENEFIT = [("none", "no", 62.0), ("NASpI", "yes", 22.0), ("ADI", "yes", 10.0), ("SFL", "yes", 6.0)]


def _municipalities():
    """[(code, province, region)]: 6 regions x 5 provinces x 10 municipalities."""
    out = []
    for r, region in enumerate(REGIONS):
        for p in range(PROVINCES_PER_REGION):
            province = f"{r * PROVINCES_PER_REGION + p + 1:03d}"
            for m in range(MUNICIPALITIES_PER_PROVINCE):
                out.append((f"{province}{m + 1:03d}", province, region))
    return out


def _band(age, width):
    lo = age // width * width
    return f"{lo}-{lo + width - 1}"


def hierarchy_rows(np):
    """Column -> list of rows (level 0 first), covering every value the generator can draw."""
    ages, _ = _age_weights(np)
    return {
        "age": [[str(a), _band(a, 5), _band(a, 10), _band(a, 20), "*"] for a in ages.tolist()],
        "sex": [["M", "*"], ["F", "*"]],
        "municipality": [[code, prov, region, "*"] for code, prov, region in _municipalities()],
        "citizenship": [
            [c, area, "EU" if area in EU_AREAS else "non-EU", "*"] for c, area, _ in CITIZENSHIP
        ],
        "education": [[e, g, "*"] for e, g, _ in EDUCATION],
        "benefit": [[b, yn, "*"] for b, yn, _ in BENEFIT],
    }


def _atomic_write_text(path, text):
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def ensure_hierarchies(workdir):
    import numpy as np

    hdir = workdir / f"hierarchies-v{GENERATOR_VERSION}"
    if all((hdir / f"{c}.csv").exists() for c in QIS):
        return hdir
    hdir.mkdir(parents=True, exist_ok=True)
    for col, rows in hierarchy_rows(np).items():
        _atomic_write_text(hdir / f"{col}.csv", "".join(",".join(r) + "\n" for r in rows))
    return hdir


def generate_table(rows, seed):
    """The synthetic table as a pandas DataFrame of categoricals (deterministic in rows, seed)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)

    def draw(values, weights):
        p = np.asarray(weights, dtype=float)
        codes = rng.choice(len(values), size=rows, p=p / p.sum())
        return pd.Categorical.from_codes(codes, categories=list(values))

    ages, age_p = _age_weights(np)
    munis = [m[0] for m in _municipalities()]
    zipf_rank = rng.permutation(len(munis)) + 1  # the largest town lands in a random province
    return pd.DataFrame(
        {
            "age": draw([str(a) for a in ages.tolist()], age_p),
            "sex": draw(["M", "F"], [49.0, 51.0]),
            "municipality": draw(munis, 1.0 / zipf_rank.astype(float) ** ZIPF_S),
            "citizenship": draw([c for c, _, _ in CITIZENSHIP], [w for _, _, w in CITIZENSHIP]),
            "education": draw([e for e, _, _ in EDUCATION], [w for _, _, w in EDUCATION]),
            "benefit": draw([b for b, _, _ in BENEFIT], [w for _, _, w in BENEFIT]),
        }
    )


def ensure_table(workdir, rows, seed):
    path = workdir / f"synthetic-v{GENERATOR_VERSION}-seed{seed}-{rows}.csv"
    if path.exists():
        return path, False
    t = time.perf_counter()
    df = generate_table(rows, seed)
    tmp = path.with_name(path.name + ".tmp")
    df.to_csv(tmp, index=False)
    os.replace(tmp, path)
    print(f"generated {path} ({rows:,} rows) in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    return path, True


def ensure_head(full_csv, n):
    """The first n data rows of full_csv (with its header), cached beside it."""
    path = full_csv.with_name(f"{full_csv.stem}-head{n}.csv")
    if path.exists():
        return path
    tmp = path.with_name(path.name + ".tmp")
    with open(full_csv) as src, open(tmp, "w") as dst:
        for i, line in enumerate(src):
            if i > n:
                break
            dst.write(line)
    os.replace(tmp, path)
    return path


def count_rows(csv):
    with open(csv, "rb") as f:
        return sum(buf.count(b"\n") for buf in iter(lambda: f.read(1 << 20), b"")) - 1


# --------------------------------------------------------------------------- occupa


def occupa_command(binary, csv, qis, hdir, k, suppression, metric, out, report):
    return [
        str(binary), "anonymise-table",
        "--input", str(csv),
        "--qi", ",".join(qis),
        "--k", str(k),
        "--hierarchies", str(hdir),
        "--max-suppression", str(suppression),
        "--metric", metric,
        "--out", str(out),
        "--report", str(report),
    ]  # fmt: skip


def _node_list(node, qis):
    if isinstance(node, dict):
        return [node.get(q) for q in qis]
    return list(node) if node is not None else None


def run_occupa(args, label, csv, qis, hdir, rows):
    outdir = args.workdir / "out"
    outdir.mkdir(parents=True, exist_ok=True)
    stem = f"occupa-{label}-{rows}"
    out, report = outdir / f"{stem}.csv", outdir / f"{stem}.report.json"
    cmd = occupa_command(args.occupa, csv, qis, hdir, args.k, args.suppression, args.metric, out, report)
    print("$ " + " ".join(cmd), file=sys.stderr)
    best = None
    for _ in range(args.repeat):
        report.unlink(missing_ok=True)
        t = time.perf_counter()
        proc = subprocess.run(cmd, check=False, capture_output=True, text=True)
        wall = time.perf_counter() - t
        if proc.returncode != 0:
            sys.exit(f"occupa failed ({proc.returncode}) on {label}:\n{proc.stderr.strip()}")
        rep = json.loads(report.read_text())
        timings = rep.get("timings") or {}
        missing = [f for f in ("load_s", "search_s", "total_s") if f not in timings]
        missing += [f for f in ("node", "information_loss") if f not in rep]
        if missing:
            sys.exit(f"occupa's report {report} lacks {', '.join(missing)}")
        run = {
            "tool": "occupa", "data": label, "rows": rows,
            "load_s": float(timings["load_s"]),
            "search_s": float(timings["search_s"]),
            "total_s": float(timings["total_s"]),
            "wall_s": wall,
            "node": _node_list(rep["node"], qis),
            "information_loss": rep["information_loss"],
            "suppressed": rep.get("suppressed"),
        }  # fmt: skip
        if best is None:
            best = dict(run, runs=[])
        else:  # best of N, field by field
            for f in ("load_s", "search_s", "total_s", "wall_s"):
                best[f] = min(best[f], run[f])
        best["runs"].append({f: run[f] for f in ("load_s", "search_s", "total_s", "wall_s")})
    return best


# --------------------------------------------------------------------------- anjana


def anjana_worker(spec_path):
    """Child process: load, anonymise with anjana, write the result; timings to spec['result']."""
    t0 = time.perf_counter()
    spec = json.loads(Path(spec_path).read_text())
    from importlib.metadata import version

    import pandas as pd
    from anjana.anonymity import k_anonymity_inner

    t_load = time.perf_counter()
    data = pd.read_csv(spec["csv"], dtype=str, keep_default_na=False, nrows=spec.get("nrows"))
    hierarchies = {}
    for q in spec["qis"]:
        path = Path(spec["hierarchies"]) / f"{q}.csv"
        with path.open() as f:
            first = f.readline()
        sep = ";" if ";" in first and "," not in first else ","  # ARX writes either
        h = pd.read_csv(path, header=None, dtype=str, keep_default_na=False, sep=sep)
        hierarchies[q] = {level: h[level].values for level in h.columns}
    load_s = time.perf_counter() - t_load

    t_search = time.perf_counter()
    anon, suppressed, gen_level = k_anonymity_inner(
        data, [], spec["qis"], spec["k"], spec["supp_percent"], hierarchies
    )
    search_s = time.perf_counter() - t_search

    t_write = time.perf_counter()
    anon.to_csv(spec["out"], index=False)
    write_s = time.perf_counter() - t_write
    result = {
        "load_s": load_s,
        "search_s": search_s,
        "write_s": write_s,
        "total_s": time.perf_counter() - t0,
        "rows_in": len(data),
        "rows_out": len(anon),
        "suppressed": int(suppressed),
        "node": [int(gen_level.get(q, 0)) for q in spec["qis"]],
        "anjana_version": version("anjana"),
        "pycanon_version": version("pycanon"),
    }
    Path(spec["result"]).write_text(json.dumps(result))


def run_anjana(args, label, csv, qis, hdir, rows, nrows=None):
    outdir = args.workdir / "out"
    outdir.mkdir(parents=True, exist_ok=True)
    spec = {
        "csv": str(csv), "qis": qis, "hierarchies": str(hdir), "k": args.k,
        "supp_percent": args.suppression * 100.0, "nrows": nrows,
        "out": str(outdir / f"anjana-{label}-{rows}.csv"),
        "result": str(outdir / f"anjana-{label}-{rows}.result.json"),
    }  # fmt: skip
    spec_path = outdir / f"anjana-{label}-{rows}.spec.json"
    spec_path.write_text(json.dumps(spec))
    Path(spec["result"]).unlink(missing_ok=True)
    print(f"anjana on {label} ({rows:,} rows)...", file=sys.stderr)
    t = time.perf_counter()
    cmd = [args.anjana_python, __file__, "--anjana-worker", str(spec_path)]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        sys.exit(f"anjana failed on {label}:\n{proc.stderr.strip()[-3000:]}")
    res = json.loads(Path(spec["result"]).read_text())
    return {
        "tool": "anjana", "data": label, "rows": res["rows_in"],
        "load_s": res["load_s"], "search_s": res["search_s"], "total_s": res["total_s"],
        "wall_s": wall, "node": res["node"], "information_loss": None,
        "suppressed": res["suppressed"], "write_s": res["write_s"],
        "version": f"anjana {res['anjana_version']}, pycanon {res['pycanon_version']}",
    }  # fmt: skip


# --------------------------------------------------------------------------- report


def _ratio(a, b):
    return a / b if a is not None and b else None


def _fmt(x, spec=".3f"):
    return "-" if x is None else format(x, spec)


def print_table(results):
    occ = {(r["data"], r["rows"]): r for r in results if r["tool"] == "occupa"}
    head = ["tool", "data", "rows", "load s", "search s", "total s", "wall s", "x search", "x wall", "suppressed",
            "node"]  # fmt: skip
    lines = []
    for r in results:
        o = occ.get((r["data"], r["rows"]))
        r["ratio_search_vs_occupa"] = _ratio(r["search_s"], o and o["search_s"])
        r["ratio_wall_vs_occupa"] = _ratio(r["wall_s"], o and o["wall_s"])
        lines.append([
            r["tool"], r["data"], f"{r['rows']:,}", _fmt(r["load_s"]), _fmt(r["search_s"]),
            _fmt(r["total_s"]), _fmt(r["wall_s"]), _fmt(r["ratio_search_vs_occupa"], ".1f"),
            _fmt(r["ratio_wall_vs_occupa"], ".1f"), _fmt(r["suppressed"], ","),
            "-" if r["node"] is None else ",".join(str(n) for n in r["node"]),
        ])  # fmt: skip
    widths = [max(len(str(x)) for x in col) for col in zip(head, *lines)]
    for row in [head, ["-" * w for w in widths], *lines]:
        print("  ".join(str(x).ljust(w) if i < 2 else str(x).rjust(w) for i, (x, w) in enumerate(zip(row, widths))))
    print("x search / x wall: that tool's time divided by Occupa's on the same data and rows.")
    print("occupa: best of --repeat runs per column; total s from its report, wall s the whole process.")
    print("anjana: one run; total s = import + load + search + write inside the child, wall s its whole process.")


def compare_with_arx(occ_1m, rows):
    print()
    print("ARX 3.9.2 and anjana as quoted in the spec (not measured here): 1,000,000 synthetic rows,")
    print(f"6 QIs, k=5, <=4 % suppression: ARX load {ARX_SPEC['load_s']} s + search {ARX_SPEC['search_s']} s; "
          f"anjana {ANJANA_SPEC['total_s']:.0f} s.")  # fmt: skip
    if occ_1m is None:
        print("  (no Occupa run on the synthetic table)")
        return None
    if rows != ARX_SPEC["rows"]:
        print(f"  (no ratio: Occupa ran on {rows:,} rows, the quoted figures are for {ARX_SPEC['rows']:,})")
        return None
    out = {
        "arx_search_over_occupa_search": ARX_SPEC["search_s"] / occ_1m["search_s"],
        "arx_load_over_occupa_load": ARX_SPEC["load_s"] / occ_1m["load_s"],
        "arx_total_over_occupa_total": ARX_SPEC["total_s"] / occ_1m["total_s"],
        "arx_total_over_occupa_wall": ARX_SPEC["total_s"] / occ_1m["wall_s"],
        "anjana_spec_over_occupa_wall": ANJANA_SPEC["total_s"] / occ_1m["wall_s"],
    }
    print(f"  ARX search {ARX_SPEC['search_s']} s / Occupa search {occ_1m['search_s']:.3f} s = "
          f"{out['arx_search_over_occupa_search']:.1f}x")
    print(f"  ARX load   {ARX_SPEC['load_s']} s / Occupa load   {occ_1m['load_s']:.3f} s = "
          f"{out['arx_load_over_occupa_load']:.1f}x")
    print(f"  ARX total  {ARX_SPEC['total_s']} s / Occupa total  {occ_1m['total_s']:.3f} s = "
          f"{out['arx_total_over_occupa_total']:.1f}x (wall: {out['arx_total_over_occupa_wall']:.1f}x)")
    print(f"  anjana {ANJANA_SPEC['total_s']:.0f} s / Occupa wall {occ_1m['wall_s']:.3f} s = "
          f"{out['anjana_spec_over_occupa_wall']:.0f}x")  # fmt: skip
    return out


def adult_golden(data_dir, k, suppression):
    try:
        golden = json.loads((data_dir / "adult" / "arx-golden.json").read_text())
    except OSError:
        return None, None
    for case in golden["cases"]:
        if case["k"] == k and abs(case["suppression_limit"] - suppression) < 1e-12:
            return golden["columns"], case
    return golden["columns"], None


# --------------------------------------------------------------------------- main


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--occupa", type=Path, default=ROOT / "target" / "release" / "occupa",
                   help="occupa binary (default: target/release/occupa)")  # fmt: skip
    p.add_argument("--rows", type=int, default=1_000_000, help="synthetic rows (default 1,000,000)")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
    p.add_argument("--workdir", type=Path, default=Path("/tmp/occupa-anon-bench"),
                   help="generated data, hierarchies and outputs (cached; default /tmp/occupa-anon-bench)")  # fmt: skip
    p.add_argument("--k", type=int, default=5)
    p.add_argument("--suppression", type=float, default=0.04, help="max suppressed fraction (default 0.04)")
    p.add_argument("--metric", default="entropy", choices=["loss", "entropy", "discernibility", "aecs", "precision"])
    p.add_argument("--repeat", type=int, default=3, help="Occupa runs per data set, best kept (default 3)")
    p.add_argument("--skip-anjana", action="store_true")
    p.add_argument("--anjana-rows", type=int, default=None, help="anjana on the first N rows only (default: all)")
    p.add_argument("--anjana-python", default=sys.executable,
                   help="python with anjana installed (default: this one)")  # fmt: skip
    p.add_argument("--skip-occupa", action="store_true", help="generator and peers only")
    p.add_argument("--skip-adult", action="store_true")
    p.add_argument("--json", type=Path, default=None, help="write a JSON summary here")
    p.add_argument("--check", action="store_true", help="exit 1 if an Occupa target is missed")
    p.add_argument("--anjana-worker", help=argparse.SUPPRESS)
    return p.parse_args()


def main():
    args = parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # keep our lines in order with the children's stderr
    if args.anjana_worker:
        anjana_worker(args.anjana_worker)
        return 0
    args.occupa = args.occupa if args.occupa.is_absolute() else Path.cwd() / args.occupa
    if not args.skip_occupa and not args.occupa.exists():
        sys.exit(f"no occupa binary at {args.occupa} (cargo build --release, or --occupa PATH, or --skip-occupa)")
    data_dir = Path(os.environ.get("OCCUPA_DATA_DIR", ROOT.parent / "shared" / "data"))
    args.workdir.mkdir(parents=True, exist_ok=True)

    hdir = ensure_hierarchies(args.workdir)
    csv, _ = ensure_table(args.workdir, args.rows, args.seed)
    results = []

    if not args.skip_occupa:
        results.append(run_occupa(args, "synthetic", csv, QIS, hdir, args.rows))
    anjana_rows = min(args.anjana_rows or args.rows, args.rows)
    if not args.skip_anjana:
        if anjana_rows < args.rows:
            head = ensure_head(csv, anjana_rows)
            if not args.skip_occupa:
                results.append(run_occupa(args, "synthetic", head, QIS, hdir, anjana_rows))
            results.append(run_anjana(args, "synthetic", head, QIS, hdir, anjana_rows))
        else:
            results.append(run_anjana(args, "synthetic", csv, QIS, hdir, args.rows))

    adult_check = None
    adult_csv = data_dir / "adult" / "adult.csv"
    if not args.skip_adult:
        if not adult_csv.exists():
            print(f"warning: {adult_csv} not found (set OCCUPA_DATA_DIR); Adult skipped", file=sys.stderr)
        else:
            adult_hdir = data_dir / "adult" / "hierarchies"
            with open(adult_csv) as f:
                adult_qis = f.readline().strip().split(",")
            adult_rows = count_rows(adult_csv)
            if not args.skip_occupa:
                occ = run_occupa(args, "adult", adult_csv, adult_qis, adult_hdir, adult_rows)
                results.append(occ)
                cols, case = adult_golden(data_dir, args.k, args.suppression)
                if case is not None and args.metric == "entropy":
                    want = [case["transformation"][cols.index(q)] for q in adult_qis]
                    adult_check = {"arx_node": want, "occupa_node": occ["node"], "match": occ["node"] == want,
                                   "arx_information_loss": case["information_loss"],
                                   "occupa_information_loss": occ["information_loss"]}  # fmt: skip
            if not args.skip_anjana:
                results.append(run_anjana(args, "adult", adult_csv, adult_qis, adult_hdir, adult_rows))

    print()
    print(f"k={args.k}, max suppression {args.suppression:g}, metric {args.metric}; QIs synthetic: "
          f"{','.join(QIS)}; adult: all nine columns.")
    print(f"Machine: {os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}.")
    for r in results:
        if r.get("version"):
            print(f"peer: {r['version']}")
            break
    print()
    print_table(results)

    occ_full = next((r for r in results if r["tool"] == "occupa" and r["data"] == "synthetic"
                     and r["rows"] == args.rows), None)  # fmt: skip
    arx_ratios = compare_with_arx(occ_full, args.rows)

    targets = {}
    print()
    if occ_full is not None and args.rows == ARX_SPEC["rows"]:
        targets["synthetic_1m_search_under_1s"] = occ_full["search_s"] < TARGET_1M_SEARCH_S
        print(f"target: Occupa search on 1M rows < {TARGET_1M_SEARCH_S:g} s: {occ_full['search_s']:.3f} s "
              f"(total {occ_full['total_s']:.3f} s, wall {occ_full['wall_s']:.3f} s) -> "
              f"{'met' if targets['synthetic_1m_search_under_1s'] else 'MISSED'}")  # fmt: skip
    occ_adult = next((r for r in results if r["tool"] == "occupa" and r["data"] == "adult"), None)
    if occ_adult is not None and args.k == 5:
        targets["adult_k5_search_under_50ms"] = occ_adult["search_s"] < TARGET_ADULT_SEARCH_S
        print(f"target: Occupa search on Adult k=5 < {TARGET_ADULT_SEARCH_S * 1000:g} ms: "
              f"{occ_adult['search_s'] * 1000:.1f} ms -> "
              f"{'met' if targets['adult_k5_search_under_50ms'] else 'MISSED'}")  # fmt: skip
    if adult_check is not None:
        print(f"Adult node vs ARX 3.9.2 optimum {adult_check['arx_node']}: "
              f"Occupa {adult_check['occupa_node']} -> {'same' if adult_check['match'] else 'DIFFERENT'}")
        print(f"  information loss: ARX {adult_check['arx_information_loss']:.2f}, "
              f"Occupa {adult_check['occupa_information_loss']}")  # fmt: skip

    if args.json:
        summary = {
            "settings": {"rows": args.rows, "seed": args.seed, "generator_version": GENERATOR_VERSION,
                         "k": args.k, "max_suppression": args.suppression, "metric": args.metric,
                         "repeat": args.repeat, "anjana_rows": None if args.skip_anjana else anjana_rows,
                         "synthetic_csv": str(csv), "hierarchies": str(hdir),
                         "occupa": None if args.skip_occupa else str(args.occupa)},
            "machine": {"cores": os.cpu_count(), "arch": platform.machine(), "python": platform.python_version()},
            "results": results,
            "quoted": {"arx_3_9_2": ARX_SPEC, "anjana": ANJANA_SPEC},
            "ratios_vs_quoted": arx_ratios,
            "targets": targets,
            "adult_vs_arx": adult_check,
        }  # fmt: skip
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
        print(f"\nwrote {args.json}")
    if args.check and not all(targets.values()):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
