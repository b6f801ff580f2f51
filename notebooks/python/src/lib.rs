//! The `occupa` Python package's engine: the command line's evaluations, clusterings and
//! forecasts on any table that speaks the Arrow PyCapsule protocol (`__arrow_c_stream__`:
//! pyarrow, polars, and pandas through pyarrow).
//!
//! Each function takes the table and the spec as JSON (the study files' and the command
//! line's fields, unknown ones refused) and returns the command line's JSON: the pure
//! Python layer (`occupa/__init__.py`) turns keyword arguments into the spec and the JSON
//! into dicts and DataFrames. The Arrow arrays are imported without a copy by polars' own
//! C-stream reader (no second Arrow implementation); the one copy is into the engine's
//! columns, as for a Parquet file, so that a frame and its file give the same numbers.
//! The GIL is released from there to the end.
//!
//! The only unsafe code of the workspace is here: taking the C stream out of its capsule
//! and reading it, as the Arrow C stream interface requires of a consumer.
#![allow(unsafe_code)]

use occupa_anonymiser::csvtable::{TableRequest, anonymise_records};
use occupa_engine::causal::runner::EvaluationSpec;
use occupa_engine::cluster::run::{ClusteringSpec, cluster_table};
use occupa_engine::columns::Table;
use occupa_engine::forecast::runner::ForecastRequest;
use occupa_engine::profile::model::{FittedProfile, ProfileSpec};
use occupa_engine::read::{Format, RawTable};
use occupa_studies::study::{RunArgs, run_study};
use polars::prelude::{Column, DataFrame, Series};
use polars_arrow::array::{Array, StructArray};
use polars_arrow::datatypes::{ArrowDataType, Field};
use polars_arrow::ffi::{ArrowArrayStream, ArrowArrayStreamReader};
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::PyCapsule;

create_exception!(
    occupa,
    OccupaError,
    PyException,
    "An error the Occupa engine reported: a bad spec, a column missing or of the wrong kind, \
     a method that cannot run on these data. The message says which and what to do."
);

fn err(e: impl std::fmt::Display) -> PyErr {
    OccupaError::new_err(e.to_string())
}

/// The table's columns as Arrow arrays, read from its C stream while the GIL is held (no
/// data is copied: the arrays keep the producer's buffers alive).
struct Imported {
    fields: Vec<Field>,
    chunks: Vec<Vec<Box<dyn Array>>>,
}

fn import_stream(table: &Bound<'_, PyAny>) -> PyResult<Imported> {
    if !table.hasattr("__arrow_c_stream__")? {
        return Err(err(format!(
            "a {} is not a table Occupa can read: pass a pandas, polars or pyarrow table \
             (anything with __arrow_c_stream__)",
            table.get_type().name()?
        )));
    }
    let capsule = table
        .call_method0("__arrow_c_stream__")?
        .cast_into::<PyCapsule>()?;
    let ptr = capsule.pointer_checked(Some(c"arrow_array_stream"))?;
    // SAFETY: the capsule holds an ArrowArrayStream (its name says so); it is moved out and
    // a released one left in its place, as the PyCapsule protocol asks of a consumer.
    let stream = unsafe {
        std::ptr::replace(
            ptr.as_ptr().cast::<ArrowArrayStream>(),
            ArrowArrayStream::empty(),
        )
    };
    // SAFETY: a stream taken from a producer's capsule, read once.
    let mut reader = unsafe { ArrowArrayStreamReader::try_new(Box::new(stream)) }.map_err(err)?;
    let ArrowDataType::Struct(fields) = reader.field().dtype.clone() else {
        return Err(err(
            "the Arrow stream is not a table (its schema is not a struct)",
        ));
    };
    let mut chunks: Vec<Vec<Box<dyn Array>>> = vec![Vec::new(); fields.len()];
    // SAFETY: the reader owns the stream; each batch is imported with its schema.
    while let Some(batch) = unsafe { reader.next() } {
        let batch = batch.map_err(err)?;
        let batch = batch
            .as_any()
            .downcast_ref::<StructArray>()
            .ok_or_else(|| err("a batch of the Arrow stream is not a struct array"))?;
        for (c, a) in chunks.iter_mut().zip(batch.values()) {
            c.push(a.clone());
        }
    }
    Ok(Imported { fields, chunks })
}

/// The name errors and reports give a table passed from Python.
const SOURCE: &str = "the table passed from Python";

/// The imported columns as a polars frame, without a copy.
fn to_dataframe(imported: Imported) -> occupa_engine::Result<DataFrame> {
    let mut columns = Vec::new();
    for (f, chunks) in imported.fields.iter().zip(imported.chunks) {
        let s = if chunks.is_empty() {
            Series::new_empty(
                f.name.clone(),
                &polars::prelude::DataType::from_arrow_field(f),
            )
        } else {
            Series::try_from((f, chunks)).map_err(|e| occupa_engine::Error::Param {
                name: "table",
                reason: format!("column {}: {e}", f.name),
            })?
        };
        columns.push(Column::from(s));
    }
    DataFrame::new(columns).map_err(|e| occupa_engine::Error::Param {
        name: "table",
        reason: e.to_string(),
    })
}

/// The imported columns `wanted` (all when empty) as the engine's table, read as a Parquet
/// file of them would be. Every column enters the frame (without a copy): the engine
/// matches the wanted names as it does a file's header (case and accents aside).
fn to_table(imported: Imported, wanted: &[String]) -> occupa_engine::Result<Table> {
    let df = to_dataframe(imported)?;
    let names: Vec<&str> = wanted.iter().map(String::as_str).collect();
    Table::from_dataframe(SOURCE, &df, &names)
}

fn json<T: serde::Serialize>(v: &T) -> occupa_engine::Result<String> {
    serde_json::to_string(v).map_err(|e| occupa_engine::Error::Param {
        name: "output",
        reason: e.to_string(),
    })
}

fn spec<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> PyResult<T> {
    serde_json::from_str(text).map_err(|e| err(format!("{what}: {e}")))
}

/// `occupa evaluate --json` on a table: `spec` is the evaluation's JSON (as in a study
/// file); returns the command line's JSON.
#[pyfunction]
fn evaluate(py: Python<'_>, table: &Bound<'_, PyAny>, spec_json: &str) -> PyResult<String> {
    let valid = spec::<EvaluationSpec>(spec_json, "the evaluation")?
        .check()
        .map_err(err)?;
    let imported = import_stream(table)?;
    py.detach(move || {
        let t = to_table(imported, &valid.columns())?;
        json(&valid.run(&t)?)
    })
    .map_err(err)
}

/// `occupa cluster --json` on a table; returns the command line's JSON (with each row's
/// cluster in `labels`).
#[pyfunction]
fn cluster(py: Python<'_>, table: &Bound<'_, PyAny>, spec_json: &str) -> PyResult<String> {
    let valid = spec::<ClusteringSpec>(spec_json, "the clustering")?
        .check()
        .map_err(err)?;
    let imported = import_stream(table)?;
    py.detach(move || {
        let t = to_table(imported, &valid.columns)?;
        let report = cluster_table(&t, &valid)?;
        // The command line writes the labels to a file (--labels-out); here they come back.
        let mut v = serde_json::to_value(&report).map_err(|e| occupa_engine::Error::Param {
            name: "output",
            reason: e.to_string(),
        })?;
        if let Some(m) = v.as_object_mut() {
            m.insert("labels".into(), serde_json::json!(report.labels));
        }
        json(&v)
    })
    .map_err(err)
}

/// `occupa forecast` on a long table (one row per series and period); returns
/// `{"summary": the command line's JSON, "forecasts": {column: values}}` with the columns
/// of its CSV.
#[pyfunction]
fn forecast(py: Python<'_>, table: &Bound<'_, PyAny>, spec_json: &str) -> PyResult<String> {
    let request = spec::<ForecastRequest>(spec_json, "the forecast")?;
    let valid = request.check().map_err(err)?;
    let imported = import_stream(table)?;
    py.detach(move || {
        let mut wanted: Vec<String> = valid.request().id.clone();
        wanted.push(valid.request().time.clone());
        wanted.push(valid.request().value.clone());
        wanted.extend(valid.key_columns().into_iter().map(String::from));
        let t = to_table(imported, &wanted)?;
        let set = valid.series(&t)?;
        let out = valid.run(&set, &|| {})?;
        let r = valid.request();
        let columns = out.columns(&set, &r.levels, r.horizon);
        json(&serde_json::json!({"summary": out.summary, "forecasts": columns}))
    })
    .map_err(err)
}

/// What `anonymise_table` gives back: the risk report (JSON), the released columns' names,
/// the generalised quasi-identifiers by column, the 0-based row of each released record,
/// and the rows left out (line = row + 2, column, reason).
type Anonymised = (
    String,
    Vec<String>,
    Vec<(String, Vec<String>)>,
    Vec<usize>,
    Vec<(usize, String, String)>,
);

/// `occupa anonymise-table` on a table: `spec_json` holds the command line's options by
/// name. The records are the ones a Parquet file of the table gives; nothing is written.
#[pyfunction]
fn anonymise_table(
    py: Python<'_>,
    table: &Bound<'_, PyAny>,
    spec_json: &str,
    quarantine: bool,
) -> PyResult<Anonymised> {
    let request = spec::<TableRequest>(spec_json, "the anonymisation")?;
    let rules = request.rules().map_err(err)?;
    let imported = import_stream(table)?;
    py.detach(move || -> Result<Anonymised, String> {
        let df = to_dataframe(imported).map_err(|e| e.to_string())?;
        let raw = RawTable::from_dataframe(std::path::Path::new(SOURCE), &df, Format::Arrow)
            .map_err(|e| e.to_string())?;
        drop(df);
        let released = anonymise_records(&rules, raw, quarantine).map_err(|e| e.to_string())?;
        let report = serde_json::to_string(&released.report).map_err(|e| e.to_string())?;
        let header = released.header().into_iter().map(String::from).collect();
        let generalised = released
            .generalised()
            .into_iter()
            .map(|(c, v)| (c.to_string(), v.into_iter().map(String::from).collect()))
            .collect();
        // A frame's row i is read as line i + 2 (the header is line 1).
        let rows = released.lines().iter().map(|l| l - 2).collect();
        Ok((report, header, generalised, rows, released.quarantine))
    })
    .map_err(err)
}

/// `occupa study run`: the study file `spec` on `data` (a research release, or the store
/// of the caller's own `tenant`) into the new folder `out`; audited like the command's.
#[pyfunction]
#[pyo3(signature = (spec, data, out, who=None, tenant=None, lang="it"))]
fn study_run(
    py: Python<'_>,
    spec: std::path::PathBuf,
    data: std::path::PathBuf,
    out: std::path::PathBuf,
    who: Option<String>,
    tenant: Option<String>,
    lang: &str,
) -> PyResult<()> {
    let args = RunArgs {
        spec,
        data,
        out,
        who,
        tenant,
        lang: lang.to_string(),
        quiet: true,
    };
    py.detach(|| run_study(&args)).map_err(err)
}

/// The engine's version, as `occupa --version` prints it.
/// `occupa profile fit --json` on a table: `spec_json` is the profile's spec (the CLI's
/// options by name); returns the command line's JSON and the fitted model's JSON (what a
/// scoring rule keeps).
#[pyfunction]
fn profile_fit(
    py: Python<'_>,
    table: &Bound<'_, PyAny>,
    spec_json: &str,
) -> PyResult<(String, String)> {
    let spec = spec::<ProfileSpec>(spec_json, "the profile")?;
    spec.check().map_err(err)?;
    let imported = import_stream(table)?;
    py.detach(move || {
        let t = to_table(imported, &[])?;
        let (fitted, report) = spec.fit(&t)?;
        Ok::<_, occupa_engine::Error>((json(&report.to_json()?)?, json(&fitted)?))
    })
    .map_err(err)
}

/// Each row's probability (NaN when not scored), risk class (0 when not scored) and why a
/// row was not scored.
/// (Classes as u32: PyO3 turns a `Vec<u8>` into `bytes`.)
type Scored = (Vec<f64>, Vec<u32>, Vec<Option<String>>);

/// Scores a table with a fitted profile's JSON.
#[pyfunction]
fn profile_score(py: Python<'_>, table: &Bound<'_, PyAny>, model_json: &str) -> PyResult<Scored> {
    let fitted = spec::<FittedProfile>(model_json, "the model")?
        .loaded()
        .map_err(err)?;
    let imported = import_stream(table)?;
    py.detach(move || {
        let t = to_table(imported, &[])?;
        let s = fitted.predict(&t)?;
        let class = s.class.iter().map(|&c| u32::from(c)).collect();
        Ok::<_, occupa_engine::Error>((s.p, class, s.unscored))
    })
    .map_err(err)
}

#[pyfunction]
fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

#[pymodule]
fn _occupa(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // The protection's LP solver reports some numerical statuses by a panic that the
    // anonymiser catches and reads as a failure (it hides more): not for the notebook.
    occupa_anonymiser::publication::system::quiet_caught_solver_panics();
    m.add("OccupaError", m.py().get_type::<OccupaError>())?;
    m.add_function(wrap_pyfunction!(evaluate, m)?)?;
    m.add_function(wrap_pyfunction!(cluster, m)?)?;
    m.add_function(wrap_pyfunction!(forecast, m)?)?;
    m.add_function(wrap_pyfunction!(anonymise_table, m)?)?;
    m.add_function(wrap_pyfunction!(study_run, m)?)?;
    m.add_function(wrap_pyfunction!(profile_fit, m)?)?;
    m.add_function(wrap_pyfunction!(profile_score, m)?)?;
    m.add_function(wrap_pyfunction!(version, m)?)?;
    Ok(())
}
