"""Runs `occupa ingest` and the pandas peer on the same persons CSV in the same run and
prints both wall times and their ratio. Needs: cargo build --release; pip install pandas pyarrow.
Usage: python3 benches/peers/compare_ingest.py [ROWS]   (from the repository root)
"""
import os
import subprocess
import sys
import tempfile
import time

rows = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
occupa = os.path.join(root, "target", "release", "occupa")
make = os.path.join(root, "target", "release", "make-persons-csv")
with tempfile.TemporaryDirectory() as tmp:
    csv = os.path.join(tmp, "persons.csv")
    key = os.path.join(tmp, "key")
    subprocess.run([make, str(rows), csv], check=True)
    subprocess.run([occupa, "key", "new", "--out", key], check=True, capture_output=True)
    best = {}
    for run in range(3):
        t = time.perf_counter()
        subprocess.run([occupa, "ingest", "--data", os.path.join(tmp, f"store{run}"), "--tenant", "b", "--table", "persons",
                        "--key-file", key, csv], check=True, capture_output=True)
        best["occupa"] = min(best.get("occupa", 1e9), time.perf_counter() - t)
        t = time.perf_counter()
        subprocess.run([sys.executable, os.path.join(root, "benches", "peers", "ingest_pandas.py"), csv, key,
                        os.path.join(tmp, f"pandas{run}")], check=True, capture_output=True)
        best["pandas"] = min(best.get("pandas", 1e9), time.perf_counter() - t)
    print(f"rows: {rows}")
    print(f"occupa ingest: {best['occupa']:.2f} s (best of 3, whole process)")
    print(f"pandas+hashlib: {best['pandas']:.2f} s (best of 3, whole process)")
    print(f"ratio: {best['pandas'] / best['occupa']:.1f}x")
