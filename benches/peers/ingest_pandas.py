"""The peer of `occupa ingest --table persons`: the same job in pandas + hashlib.

Reads the persons CSV, validates every column as Occupa does (tax-code check character
with omocodia, ranges, codes, dates, booleans), replaces the tax code by
HMAC-SHA256(key, domain tag + code) truncated to 128 bits, drops the names, quarantines
bad rows, and writes Parquet (zstd). Usage: ingest_pandas.py CSV KEYFILE OUTDIR
"""
import hashlib
import hmac
import os
import re
import sys
import time

import pandas as pd

ODD = {**{str(d): v for d, v in zip(range(10), [1, 0, 5, 7, 9, 13, 15, 17, 19, 21])},
       **dict(zip("ABCDEFGHIJKLMNOPQRSTUVWXYZ",
                  [1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24, 23]))}
EVEN = {**{str(d): d for d in range(10)}, **{c: i for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZ")}}
CF_RE = re.compile(r"^[A-Z]{6}[0-9LMNPQRSTUV]{2}[ABCDEHLMPRST][0-9LMNPQRSTUV]{2}[A-Z][0-9LMNPQRSTUV]{3}[A-Z]$")


def cf_ok(code: str) -> bool:
    code = code.strip().upper()
    if len(code) == 11 and code.isdigit():
        s = sum(int(c) for c in code[0:10:2])
        s += sum((2 * int(c)) - 9 if 2 * int(c) > 9 else 2 * int(c) for c in code[1:10:2])
        return (10 - s % 10) % 10 == int(code[10])
    if not CF_RE.match(code):
        return False
    total = sum(ODD[c] for c in code[0:15:2]) + sum(EVEN[c] for c in code[1:15:2])
    return chr(ord("A") + total % 26) == code[15]


def main():
    src, keyfile, out = sys.argv[1], sys.argv[2], sys.argv[3]
    t0 = time.perf_counter()
    key = bytes.fromhex(open(keyfile).read().strip())
    df = pd.read_csv(src, dtype=str, keep_default_na=False)
    n = len(df)
    ok = pd.Series(True, index=df.index)
    ok &= df["codice_fiscale"].map(cf_ok)
    year = pd.to_numeric(df["anno_nascita"], errors="coerce")
    ok &= year.between(1900, 2100)
    ok &= df["sesso"].isin(["M", "F"])
    ok &= df["cittadinanza"].str.fullmatch(r"[A-Za-z]{3}")
    ok &= df["comune_istat"].str.fullmatch(r"\d{6}")
    edu = pd.to_numeric(df["titolo_studio"], errors="coerce")
    ok &= edu.between(0, 8)
    yes = {"1", "si", "sì", "s", "y", "yes", "true"}
    no = {"0", "no", "n", "false"}
    bools = {}
    for c in ["disabilita_l68", "sostegno_reddito", "servizi_sociali"]:
        low = df[c].str.strip().str.lower()
        ok &= low.isin(yes | no)
        bools[c] = low.isin(yes)
    intake = pd.to_datetime(df["data_presa_in_carico"], format="%d/%m/%Y", errors="coerce")
    ok &= intake.notna()
    exit_ = pd.to_datetime(df["data_fine_presa_in_carico"].replace("", None), format="%d/%m/%Y", errors="coerce")
    good = df[ok]
    tag = b"occupa/person/v1\x00"
    base = hmac.new(key, tag, hashlib.sha256)

    def pseudo(code):
        h = base.copy()
        h.update(code.strip().upper().encode())
        return h.hexdigest()[:32]

    stored = pd.DataFrame({
        "person_id": good["codice_fiscale"].map(pseudo),
        "birth_year": year[ok].astype("int64"),
        "sex": good["sesso"],
        "citizenship": good["cittadinanza"].str.upper(),
        "municipality": good["comune_istat"],
        "education": edu[ok].astype("int64"),
        "disability_l68": bools["disabilita_l68"][ok],
        "income_support": bools["sostegno_reddito"][ok],
        "social_services_care": bools["servizi_sociali"][ok],
        "intake_date": intake[ok].dt.date,
        "exit_date": exit_[ok].dt.date,
    })
    stored = stored.drop_duplicates("person_id")
    os.makedirs(out, exist_ok=True)
    stored.to_parquet(os.path.join(out, "persons.parquet"), compression="zstd", index=False)
    df[~ok].drop(columns=["codice_fiscale", "cognome", "nome"]).to_csv(os.path.join(out, "quarantine.csv"))
    print(f"pandas: {n} rows, {len(stored)} stored, {time.perf_counter() - t0:.2f} s")


if __name__ == "__main__":
    main()
