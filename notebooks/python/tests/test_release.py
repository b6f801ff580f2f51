"""Anonymisation, releases and studies from Python give what the command line gives, and
keep its rules: a release of a frame equals ``occupa anonymise-table`` on the frame's CSV
cell for cell; a store is never read as a release; a study runs with the command's access
rules and writes the same results."""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

import occupa

ROOT = Path(__file__).resolve().parents[3]
BINARY = Path(os.environ.get("OCCUPA_BIN", ROOT / "target" / "release" / "occupa"))


def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BINARY), *args], check=check, capture_output=True, text=True
    )


def people(n: int = 3000, seed: int = 11) -> pd.DataFrame:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        rows.append(
            {
                "eta": rng.randint(18, 70),
                "sesso": rng.choice(["F", "M"]),
                "cittadinanza": rng.choice(["ITA", "ITA", "ITA", "ROU", "MAR", "ALB", "CHN"]),
                "data_presa_in_carico": f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
                "occupato_12m": rng.choice(["0", "1"]),
                "punteggio": round(rng.uniform(0.0, 100.0), 2),
            }
        )
    return pd.DataFrame(rows)


BUILTIN = {
    "eta": "age",
    "sesso": "flat",
    "cittadinanza": "citizenship",
    "data_presa_in_carico": "date",
}
QI = ["eta", "sesso", "cittadinanza", "data_presa_in_carico"]


def cli_release(tmp_path: Path, frame: pd.DataFrame, *extra: str):
    src = tmp_path / "in.csv"
    frame.to_csv(src, index=False)
    out, report = tmp_path / "out.csv", tmp_path / "report.json"
    args = ["anonymise-table", "--input", str(src), "--qi", ",".join(QI), "--k", "5",
            "--sensitive", "occupato_12m", "--l", "2", "--max-suppression", "0.05",
            "--keep", "punteggio", "--out", str(out), "--report", str(report)]
    for c, kind in BUILTIN.items():
        args += ["--builtin", f"{c}={kind}"]
    cli(*args, *extra)
    return (
        pd.read_csv(out, dtype=str, keep_default_na=False),
        json.loads(report.read_text()),
    )


def as_text(table) -> pd.DataFrame:
    if isinstance(table, pl.DataFrame):
        table = table.to_pandas()
    elif isinstance(table, pa.Table):
        table = table.to_pandas()
    buf = io.StringIO()
    table.to_csv(buf, index=False)
    buf.seek(0)
    return pd.read_csv(buf, dtype=str, keep_default_na=False)


def comparable(report: dict) -> dict:
    """The report without what differs by nature between a file and a frame: timings,
    the input's name and how it was read, the search's seconds."""
    r = {k: v for k, v in report.items() if k not in ("timings", "input", "read", "quarantine")}
    r["search"] = {k: v for k, v in r["search"].items() if "second" not in k}
    return r


@pytest.mark.parametrize("kind", ["pandas", "polars", "pyarrow"])
def test_anonymise_table_is_the_command_line_cell_for_cell(tmp_path, kind):
    frame = people()
    want_rows, want_report = cli_release(tmp_path, frame)
    table = {
        "pandas": frame,
        "polars": pl.from_pandas(frame),
        "pyarrow": pa.Table.from_pandas(frame, preserve_index=False),
    }[kind]
    released, report = occupa.anonymise_table(
        table, qi=QI, k=5, sensitive="occupato_12m", l=2, max_suppression=0.05,
        keep=["punteggio"], builtin=BUILTIN,
    )
    assert type(released).__module__.split(".")[0] == type(table).__module__.split(".")[0]
    got_rows = as_text(released)
    assert list(got_rows.columns) == list(want_rows.columns)
    pd.testing.assert_frame_equal(got_rows, want_rows)
    assert comparable(report) == comparable(want_report)
    # The release is not the input: the search generalised something, and k holds.
    assert report["risk_after"]["highest"] <= 0.2
    assert (got_rows["eta"] != frame["eta"].astype(str)).any()
    # The kept numeric column keeps its type in a pandas release.
    if kind == "pandas":
        assert released["punteggio"].dtype == frame["punteggio"].dtype


def test_identifiers_and_undeclared_columns_are_refused(tmp_path):
    frame = people(400)
    with_code = frame.assign(codice="RSSMRA85T10A562S")
    with pytest.raises(occupa.OccupaError, match="tax code"):
        occupa.anonymise_table(
            with_code, qi=QI, k=5, sensitive="occupato_12m", builtin=BUILTIN,
            keep=["punteggio", "codice"],
        )
    # Dropped, it goes nowhere.
    released, _ = occupa.anonymise_table(
        with_code, qi=QI, k=5, sensitive="occupato_12m", builtin=BUILTIN,
        keep=["punteggio"], drop=["codice"], max_suppression=0.1,
    )
    assert "codice" not in released.columns
    assert "RSSMRA85T10A562S" not in released.to_csv()
    with pytest.raises(occupa.OccupaError, match="not declared"):
        occupa.anonymise_table(frame, qi=QI, k=5, sensitive="occupato_12m", builtin=BUILTIN)


def test_unplaceable_rows_are_an_error_or_left_out_without_their_value(tmp_path):
    frame = people(600)
    frame.loc[17, "data_presa_in_carico"] = "2025-02-31"
    with pytest.raises(occupa.OccupaError, match="line 19"):
        occupa.anonymise_table(
            frame, qi=QI, k=5, sensitive="occupato_12m", builtin=BUILTIN,
            keep=["punteggio"], max_suppression=0.1,
        )
    released, report = occupa.anonymise_table(
        frame, qi=QI, k=5, sensitive="occupato_12m", builtin=BUILTIN,
        keep=["punteggio"], max_suppression=0.1, quarantine=True,
    )
    assert len(released) == len(frame) - 1
    assert report["quarantined"] == 1
    assert report["quarantine"] == [
        {"row": 17, "column": "data_presa_in_carico", "reason": report["quarantine"][0]["reason"]}
    ]
    assert "2025-02-31" not in json.dumps(report)
    # The same rows as the command line with --quarantine.
    want_rows, _ = cli_release(tmp_path, frame, "--quarantine", str(tmp_path / "q.csv"))
    pd.testing.assert_frame_equal(as_text(released), want_rows)


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    """A small pooled store, its research release and the example studies' specs."""
    root = tmp_path_factory.mktemp("demo")
    cli("demo", "--persons", "6000", "--tenants", "3", "--data", str(root / "data"),
        "--out", str(root / "out"), "--key-file", str(root / "key"))
    return root


def test_read_release_reads_a_release_and_refuses_a_store(demo):
    release = occupa.read_release(demo / "out" / "release")
    assert release.report["k"] >= 2
    persons = release.persons
    assert len(persons) == release.report["released_persons"]
    assert persons["id"].is_unique
    # Numbers where every value is one; generalised columns stay text.
    assert pd.api.types.is_numeric_dtype(persons["employed_6m"])
    assert persons["age"].map(type).eq(str).all()
    assert set(release.employment["id"]) <= set(persons["id"])
    assert "persons.csv" in release.dictionary
    polars = occupa.read_release(demo / "out" / "release", backend="polars")
    assert polars.persons.height == len(persons)
    with pytest.raises(occupa.OccupaError, match="is a store"):
        occupa.read_release(demo / "data")
    with pytest.raises(occupa.OccupaError, match="not a research release"):
        occupa.read_release(demo / "out")


def test_a_study_gives_the_command_line_results(demo, tmp_path):
    spec = demo / "out" / "studies" / "specs" / "a5-employment.toml"
    # Two copies of the release, so that neither run sees the other's publication.
    for copy in ("a", "b"):
        shutil.copytree(demo / "out" / "release", tmp_path / copy)
    cli("study", "run", str(spec), "--data", str(tmp_path / "a"), "--out", str(tmp_path / "cli"))
    got = occupa.study.run(spec, data=tmp_path / "b", out=tmp_path / "py")
    want = json.loads((tmp_path / "cli" / "results.json").read_text())
    # The results name the data they were run on: the two copies' folders.
    assert want["analysis"].pop("source") == "the release a"
    assert got["analysis"].pop("source") == "the release b"
    assert got == want
    assert got["study"] == "a5-employment-12m" and got["method"] == "aipw"
    # Audited in the release's own log.
    log = (tmp_path / "b" / "audit.jsonl").read_text()
    assert "a5-employment-12m" in log and '"done"' in log
    # The spec as text runs the same.
    again = occupa.study.run(spec.read_text(), data=tmp_path / "b", out=tmp_path / "py2")
    again["analysis"].pop("source")
    assert again == want
    # The folder keeps the text that ran, and the manifest its hash.
    kept = (tmp_path / "py2" / "spec.toml").read_bytes()
    manifest = json.loads((tmp_path / "py2" / "manifest.json").read_text())
    assert kept == spec.read_bytes()
    assert manifest["spec_sha256"] == hashlib.sha256(kept).hexdigest()


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """A store of two authorities with nothing published yet (the demo's store already
    holds its studies' publications, against which a second run is protected)."""
    root = tmp_path_factory.mktemp("store")
    cli("simulate", "--out", str(root / "exports"), "--persons", "3000", "--tenants", "2")
    cli("key", "new", "--out", str(root / "key"))
    for tenant in ("t01", "t02"):
        for table in ("persons", "asso", "isa", "gol", "services", "employment", "vacancies"):
            cli("ingest", "--data", str(root / "data"), "--tenant", tenant, "--table", table,
                "--key-file", str(root / "key"), str(root / "exports" / tenant / f"{table}.csv"))
    return root / "data"


def test_a_study_reads_only_its_own_tenant(demo, store, tmp_path):
    spec = (demo / "out" / "studies" / "specs" / "intake-tables.toml").read_text()
    data = store
    # t01's staff cannot run a spec naming t02, nor read the store without a tenant.
    with pytest.raises(occupa.OccupaError):
        occupa.study.run(spec, data=data, out=tmp_path / "x", tenant="t02")
    with pytest.raises(occupa.OccupaError):
        occupa.study.run(spec, data=data, out=tmp_path / "y")
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
    got = occupa.study.run(spec, data=data, out=tmp_path / "t01", tenant="t01")
    assert got
    # A release-only study is refused on a store.
    release_spec = (demo / "out" / "studies" / "specs" / "a5-employment.toml").read_text()
    with pytest.raises(occupa.OccupaError, match="is a store"):
        occupa.study.run(release_spec, data=data, out=tmp_path / "z", tenant="t01")
