//! `occupa anonymise-table`: the search on any CSV file, with ARX-style hierarchy files,
//! a released CSV and a risk report. Nothing is written unless the release complies with
//! the risk policy.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use occupa_engine::export::spreadsheet_safe;

use crate::builtin::Builtin;
use crate::hierarchy::Hierarchy;
use crate::metric::{GsFactor, Metric};
use crate::microdata::Microdata;
use crate::privacy::{LDiversity, PrivacyModel};
use crate::risk::{RiskPolicy, RiskProfile};
use crate::search::{Anonymisation, SUPPRESSED, SearchStats};
use crate::{Error, Result};

/// What to release from a table and how: the command line's options, by their names
/// (also the Python package's keyword arguments). Checked into [`TableRules`] once.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableRequest {
    /// Quasi-identifier columns.
    pub qi: Vec<String>,
    /// Sensitive column (needed by `l` and `t`).
    #[serde(default)]
    pub sensitive: Option<String>,
    /// Smallest equivalence class released.
    pub k: usize,
    /// l-diversity of the sensitive column.
    #[serde(default)]
    pub l: Option<f64>,
    /// distinct, entropy or recursive (recursive needs `c`).
    #[serde(default = "distinct")]
    pub l_variant: String,
    /// c of recursive (c,l)-diversity.
    #[serde(default)]
    pub c: Option<f64>,
    /// t-closeness of the sensitive column (equal ground distance).
    #[serde(default)]
    pub t: Option<f64>,
    /// Folder of hierarchy files `<column>.csv`.
    #[serde(default)]
    pub hierarchies: Option<PathBuf>,
    /// Built-in hierarchies, `COL=KIND`.
    #[serde(default)]
    pub builtin: Vec<String>,
    /// Largest fraction of records that may be suppressed whole.
    #[serde(default)]
    pub max_suppression: f64,
    /// Utility metric to optimise: loss, entropy, discernibility, aecs or precision.
    #[serde(default = "loss")]
    pub metric: String,
    /// ARX's generalisation/suppression factor.
    #[serde(default = "half")]
    pub gs_factor: f64,
    /// Columns left out of the release.
    #[serde(default)]
    pub drop: Vec<String>,
    /// Release suppressed records with one value hidden, where that keeps the model.
    #[serde(default)]
    pub local_suppression: bool,
    /// Highest prosecutor risk allowed (default 1/k).
    #[serde(default)]
    pub max_risk: Option<f64>,
    /// Risk above which a record counts as at risk in the report (default 1/k).
    #[serde(default)]
    pub risk_threshold: Option<f64>,
    /// Columns released as they are: every column must be declared (`qi`, `sensitive`,
    /// `drop` or `keep`).
    #[serde(default)]
    pub keep: Vec<String>,
}

fn distinct() -> String {
    "distinct".into()
}
fn loss() -> String {
    "loss".into()
}
fn half() -> f64 {
    0.5
}

impl TableRequest {
    /// The request checked: privacy model, search, policy and hierarchies.
    pub fn rules(&self) -> Result<TableRules> {
        let mut privacy = PrivacyModel::k_anonymity(self.k)?;
        if let Some(l) = self.l {
            let whole = || -> Result<usize> {
                if l.fract() != 0.0 || l < 1.0 {
                    return Err(Error::Param {
                        name: "l",
                        reason: format!("{l}: the {} variant needs a whole number", self.l_variant),
                    });
                }
                Ok(l as usize)
            };
            let variant = match self.l_variant.as_str() {
                "distinct" => LDiversity::Distinct { l: whole()? },
                "entropy" => LDiversity::Entropy { l },
                "recursive" => LDiversity::Recursive {
                    c: self.c.ok_or_else(|| Error::Param {
                        name: "l_variant",
                        reason: "recursive needs c".into(),
                    })?,
                    l: whole()?,
                },
                other => {
                    return Err(Error::Param {
                        name: "l_variant",
                        reason: format!("{other:?}: use distinct, entropy or recursive"),
                    });
                }
            };
            privacy = privacy.with_l_diversity(variant)?;
        }
        if let Some(t) = self.t {
            privacy = privacy.with_t_closeness(t)?;
        }
        let spec = Anonymisation::new(privacy)
            .max_suppression(self.max_suppression)?
            .metric(self.metric.parse::<Metric>()?)
            .gs_factor(GsFactor::new(self.gs_factor)?);
        let mut policy = RiskPolicy::for_k(self.k);
        if let Some(r) = self.max_risk {
            policy.max_highest = r;
            policy.max_average = policy.max_average.min(r);
        }
        if let Some(t) = self.risk_threshold {
            policy.threshold = t;
            policy.max_share_above = 1.0;
        }
        let builtins = self
            .builtin
            .iter()
            .map(|s| {
                let (col, kind) = s.split_once('=').ok_or_else(|| Error::Param {
                    name: "builtin",
                    reason: format!("{s:?}: write COL=KIND"),
                })?;
                Ok((col.trim().to_string(), kind.trim().parse::<Builtin>()?))
            })
            .collect::<Result<_>>()?;
        Ok(TableRules {
            qi: self.qi.clone(),
            sensitive: self.sensitive.clone(),
            hierarchies: self.hierarchies.clone(),
            builtins,
            drop: self.drop.clone(),
            keep: Some(self.keep.clone()),
            spec,
            local_suppression: self.local_suppression,
            policy,
        })
    }
}

/// A checked release of one table: what [`anonymise_records`] applies.
#[derive(Debug, Clone)]
pub struct TableRules {
    /// Quasi-identifier columns.
    pub qi: Vec<String>,
    /// Sensitive column, for l-diversity or t-closeness.
    pub sensitive: Option<String>,
    /// Folder of hierarchy files `<column>.csv`.
    pub hierarchies: Option<PathBuf>,
    /// Built-in hierarchies by column (used instead of a file).
    pub builtins: Vec<(String, Builtin)>,
    /// Columns left out of the release.
    pub drop: Vec<String>,
    /// Columns released as they are. `Some`: every column must be a quasi-identifier,
    /// the sensitive one, dropped or kept, so that a date or a municipality nobody thought
    /// of cannot go out untouched (the command line's rule); `None`: every other column is
    /// released as it is (ARX's insensitive attributes).
    pub keep: Option<Vec<String>>,
    /// What to search for.
    pub spec: Anonymisation,
    /// Whether to release suppressed records with one value hidden where that is safe.
    pub local_suppression: bool,
    /// The risk the release may carry.
    pub policy: RiskPolicy,
}

/// One anonymisation of a file.
#[derive(Debug, Clone)]
pub struct TableJob {
    /// The input: CSV in any separator and encoding, a workbook, or Parquet (header row).
    pub input: PathBuf,
    /// The sheet of a workbook.
    pub sheet: Option<String>,
    /// What to release.
    pub rules: TableRules,
    /// Released CSV.
    pub out: PathBuf,
    /// Risk report (JSON).
    pub report: PathBuf,
    /// Where to list the rows whose quasi-identifier a built-in hierarchy cannot place
    /// (an impossible date, an unknown municipality): they are left out of the release
    /// and listed by line, column and reason, never by value. Without it such rows are an
    /// error naming them.
    pub quarantine: Option<PathBuf>,
}

/// The level chosen for one quasi-identifier.
#[derive(Debug, Clone, Serialize)]
pub struct ColumnLevel {
    /// Column.
    pub column: String,
    /// Level (0 = original values).
    pub level: u8,
    /// Levels in its hierarchy.
    pub height: usize,
}

/// Seconds spent.
#[derive(Debug, Clone, Serialize)]
pub struct Timings {
    /// Reading and encoding the input.
    pub load_s: f64,
    /// The lattice search.
    pub search_s: f64,
    /// Everything, writing included.
    pub total_s: f64,
}

/// The risk report (`risk-report.json`).
#[derive(Debug, Clone, Serialize)]
pub struct TableReport {
    /// Input file.
    pub input: String,
    /// How it was read (format, separator, encoding or sheet).
    pub read: occupa_engine::read::Format,
    /// Records read and anonymised (the rows read less those quarantined).
    pub records: u64,
    /// Rows left out because a built-in hierarchy could not place one of their values.
    pub quarantined: u64,
    /// Records released.
    pub released_records: u64,
    /// Records suppressed whole (every quasi-identifier `*`).
    pub suppressed: u64,
    /// Values hidden by local suppression.
    pub suppressed_values: u64,
    /// The chosen transformation: level per quasi-identifier, in `--qi` order.
    pub node: Vec<u8>,
    /// The same, by column.
    pub levels: Vec<ColumnLevel>,
    /// The optimised metric.
    pub metric: Metric,
    /// Its loss at the chosen node (ARX's definition; record suppression only).
    pub information_loss: f64,
    /// Every metric's loss at the node.
    pub utility: BTreeMap<String, f64>,
    /// Risk before (original quasi-identifiers) and after (released table).
    pub risk_before: RiskProfile,
    /// See `risk_before`.
    pub risk_after: RiskProfile,
    /// Settings used.
    pub settings: Settings,
    /// The search's work.
    pub search: SearchStats,
    /// Seconds.
    pub timings: Timings,
}

/// The settings of a release, as recorded in its report.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    /// Quasi-identifiers.
    pub quasi_identifiers: Vec<String>,
    /// Sensitive attribute.
    pub sensitive: Option<String>,
    /// Privacy model.
    pub privacy: PrivacyModel,
    /// Suppression limit (fraction of records).
    pub max_suppression: f64,
    /// Generalisation/suppression factor of the metrics.
    pub gs_factor: f64,
    /// Whether local suppression ran.
    pub local_suppression: bool,
    /// Risk policy.
    pub policy: RiskPolicy,
}

/// An input/output error naming the file.
pub(crate) fn io(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Input(format!("{}: {e}", path.display()))
}

/// A table anonymised in memory: the report, and the released records (every record
/// read but those quarantined, in the input's order; the quasi-identifiers generalised,
/// `*` where suppressed; the dropped columns left out).
#[derive(Debug)]
pub struct Released {
    /// The risk report.
    pub report: TableReport,
    /// Rows left out because a built-in hierarchy could not place a value: (line, column,
    /// reason), never the value.
    pub quarantine: Vec<(usize, String, String)>,
    header: Vec<String>,
    kept: Vec<usize>,
    qi_pos: Vec<usize>,
    records: Vec<csv::StringRecord>,
    lines: Vec<usize>,
    row_tuple: Vec<u32>,
    tuples: Vec<Option<Vec<String>>>,
    separator: u8,
}

impl Released {
    /// The released columns' names, as read.
    pub fn header(&self) -> Vec<&str> {
        self.kept.iter().map(|&i| self.header[i].as_str()).collect()
    }

    /// The line (1-based, header = 1; a frame's row + 2) each released record was read at.
    pub fn lines(&self) -> &[usize] {
        &self.lines
    }

    /// Each released record's fields, in [`Released::header`]'s order.
    pub fn rows(&self) -> impl Iterator<Item = Vec<&str>> + '_ {
        let mut fields: Vec<&str> = Vec::with_capacity(self.header.len());
        self.records
            .iter()
            .zip(&self.row_tuple)
            .map(move |(rec, &t)| {
                let out = &self.tuples[t as usize];
                fields.clear();
                fields.extend(rec.iter());
                for (j, &c) in self.qi_pos.iter().enumerate() {
                    fields[c] = match out {
                        Some(v) => v[j].as_str(),
                        None => SUPPRESSED,
                    };
                }
                self.kept.iter().map(|&i| fields[i]).collect()
            })
    }

    /// The quasi-identifiers' released values, column by column (in the request's order).
    pub fn generalised(&self) -> Vec<(&str, Vec<&str>)> {
        self.qi_pos
            .iter()
            .enumerate()
            .map(|(j, &c)| {
                let values = self
                    .row_tuple
                    .iter()
                    .map(|&t| match &self.tuples[t as usize] {
                        Some(v) => v[j].as_str(),
                        None => SUPPRESSED,
                    })
                    .collect();
                (self.header[c].as_str(), values)
            })
            .collect()
    }
}

/// Runs the job: reads, searches, checks the policy, writes. Returns the report.
pub fn anonymise_csv(job: &TableJob) -> Result<TableReport> {
    let t0 = Instant::now();
    job.rules.policy.validate()?;
    let table = occupa_engine::read::read_file_with(
        &job.input,
        &occupa_engine::read::ReadOptions {
            sheet: job.sheet.clone(),
        },
    )
    .map_err(|e| Error::Input(e.to_string()))?;
    let mut released = anonymise_records(&job.rules, table, job.quarantine.is_some())?;
    write_atomic(&job.out, |w| {
        // The release keeps the input's separator, so that it opens where the input did.
        let mut wtr = csv::WriterBuilder::new()
            .delimiter(released.separator)
            .from_writer(w);
        // Cells that a spreadsheet would run as formulas are written as text.
        let safe = |f: &str| -> String { spreadsheet_safe(f).into_owned() };
        wtr.write_record(released.header().into_iter().map(safe))?;
        for row in released.rows() {
            wtr.write_record(row.into_iter().map(safe))?;
        }
        wtr.flush()?;
        Ok(())
    })?;
    released.report.timings.total_s = t0.elapsed().as_secs_f64();
    write_atomic(&job.report, |w| {
        serde_json::to_writer_pretty(&mut *w, &released.report).map_err(std::io::Error::other)?;
        w.write_all(b"\n")
    })?;
    if let Some(path) = &job.quarantine {
        write_quarantine(path, &released.quarantine)?;
    }
    Ok(released.report)
}

/// Anonymises a table read into text records (a file, or a frame from Python through
/// [`occupa_engine::read::RawTable::from_dataframe`]): checks, searches, measures the
/// risk and refuses a release above the policy. Rows whose quasi-identifier a built-in
/// hierarchy cannot place are left out and listed when `leave_out_unplaceable`, an error
/// naming them otherwise. Nothing is written.
pub fn anonymise_records(
    rules: &TableRules,
    table: occupa_engine::read::RawTable,
    leave_out_unplaceable: bool,
) -> Result<Released> {
    let t0 = Instant::now();
    rules.policy.validate()?;
    let source = table.path.display().to_string();
    let sep = table.separator().map_or(b',', |c| c as u8);
    let header: Vec<String> = table.header_raw.clone();
    let find = |c: &str| {
        header
            .iter()
            .position(|h| h == c)
            .or_else(|| {
                let n = occupa_engine::read::normalise_header(c);
                let mut it = table.header.iter().enumerate().filter(|(_, h)| **h == n);
                match (it.next(), it.next()) {
                    (Some((i, _)), None) => Some(i),
                    _ => None,
                }
            })
            .ok_or_else(|| {
                Error::Input(format!(
                    "{source}: no column {c:?} ({}); the header has {}",
                    table.format,
                    header.join(", ")
                ))
            })
    };
    if rules.qi.is_empty() {
        return Err(Error::Param {
            name: "qi",
            reason: "name at least one quasi-identifier".into(),
        });
    }
    let mut cols: Vec<usize> = rules.qi.iter().map(|c| find(c)).collect::<Result<_>>()?;
    if let Some(s) = &rules.sensitive {
        if rules.qi.contains(s) {
            return Err(Error::Param {
                name: "sensitive",
                reason: format!("{s:?} is also a quasi-identifier"),
            });
        }
        cols.push(find(s)?);
    }
    let mut records: Vec<csv::StringRecord> = Vec::with_capacity(table.rows.len());
    for r in &table.rows {
        match &r.fields {
            Ok(f) if f.len() == header.len() => records.push(f.clone()),
            Ok(f) => {
                return Err(Error::Input(format!(
                    "{source}: row {} has {} fields, the header {} ({})",
                    r.row,
                    f.len(),
                    header.len(),
                    table.format
                )));
            }
            Err(reason) => {
                return Err(Error::Input(format!(
                    "{source}: row {}: {reason} ({})",
                    r.row, table.format
                )));
            }
        }
    }
    for d in &rules.drop {
        find(d)?;
    }
    let kept: Vec<usize> = (0..header.len())
        .filter(|i| !rules.drop.contains(&header[*i]))
        .collect();
    let mut lines: Vec<usize> = table.rows.iter().map(|r| r.row).collect();
    refuse_identifiers(rules, &source, &header, &records, &lines, &kept, &cols)?;
    if let Some(keep) = &rules.keep {
        for k in keep {
            find(k)?;
        }
        let declared = |h: &String| {
            rules.qi.contains(h)
                || rules.sensitive.as_ref() == Some(h)
                || rules.drop.contains(h)
                || keep.contains(h)
        };
        let undeclared: Vec<&String> = header.iter().filter(|h| !declared(h)).collect();
        if !undeclared.is_empty() {
            return Err(Error::Input(format!(
                "{source}: column(s) {} are not declared: name each as a quasi-identifier (--qi), \
                 the sensitive column (--sensitive), left out (--drop) or released as it is \
                 (--keep); a column released as it is can identify people (a date, a \
                 municipality); nothing written",
                undeclared
                    .iter()
                    .map(|h| h.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    let quarantine = quarantine_unplaceable(
        rules,
        &source,
        leave_out_unplaceable,
        &cols,
        &mut records,
        &mut lines,
    )?;
    let quarantined = quarantine.len() as u64;
    if records.is_empty() {
        return Err(Error::Input(format!(
            "{source}: every row has a value its built-in hierarchy cannot place (the first: line \
             {}, column {}: {}); nothing written",
            quarantine[0].0, quarantine[0].1, quarantine[0].2
        )));
    }
    let rows: Vec<Vec<&str>> = records
        .iter()
        .map(|r| cols.iter().map(|&c| r[c].trim()).collect())
        .collect();
    let hierarchies: Vec<Hierarchy> = rules
        .qi
        .iter()
        .enumerate()
        .map(|(j, c)| {
            if let Some((_, b)) = rules.builtins.iter().find(|(col, _)| col == c) {
                let mut values: Vec<&str> = rows.iter().map(|r| r[j]).collect();
                values.sort_unstable();
                values.dedup();
                return b.build(c, &values);
            }
            let path = rules
                .hierarchies
                .as_ref()
                .map(|d| d.join(format!("{c}.csv")))
                .filter(|p| p.exists())
                .ok_or_else(|| Error::Hierarchy {
                    column: c.clone(),
                    reason: format!(
                        "no hierarchy: write {}/{c}.csv (one row per value, level 0 first) \
                         or use a built-in one (--builtin {c}=age|date|municipality|\
                         citizenship|flat|ordinal:MIN-MAX:W1,W2)",
                        rules
                            .hierarchies
                            .as_ref()
                            .map_or("DIR".into(), |d| d.display().to_string())
                    ),
                })?;
            Hierarchy::from_csv(c, &path)
        })
        .collect::<Result<_>>()?;
    let data = Microdata::new(hierarchies, rules.sensitive.as_deref(), &rows, 2)?;
    let load_s = t0.elapsed().as_secs_f64();

    let mut fit = rules.spec.fit(&data)?;
    let search_s = fit.stats().seconds;
    if rules.local_suppression {
        fit.suppress_values(&data, &rules.spec);
    }

    // Risk, measured on the released strings.
    let threshold = rules.policy.threshold;
    let mut before: FxHashMap<Vec<&str>, u64> = FxHashMap::default();
    let mut after: FxHashMap<Vec<&str>, u64> = FxHashMap::default();
    // Rows with the same quasi-identifiers and sensitive value are released alike:
    // work per distinct record (a row standing for it), weighted by its count.
    let mut first_row = vec![usize::MAX; data.distinct()];
    for (r, &t) in data.row_tuple.iter().enumerate() {
        if first_row[t as usize] == usize::MAX {
            first_row[t as usize] = r;
        }
    }
    let released: Vec<Option<Vec<&str>>> = first_row.iter().map(|&r| fit.row(&data, r)).collect();
    for ((&r, out), &n) in first_row.iter().zip(&released).zip(&data.counts) {
        *before.entry(rows[r][..data.dims()].to_vec()).or_default() += n as u64;
        if let Some(v) = out {
            *after.entry(v.clone()).or_default() += n as u64;
        }
    }
    let risk_before = RiskProfile::from_class_sizes(before.values().copied(), threshold);
    let risk_after = RiskProfile::from_class_sizes(after.values().copied(), threshold);
    if let Err(why) = rules.policy.check(&risk_after) {
        return Err(Error::Policy(why));
    }

    let utility: BTreeMap<String, f64> = rules
        .spec
        .utility(&data, fit.node())?
        .into_iter()
        .map(|(m, v)| (m.name().to_string(), v))
        .collect();

    let report = TableReport {
        input: source,
        read: table.format.clone(),
        records: data.len() as u64,
        quarantined,
        released_records: risk_after.records,
        suppressed: fit.suppressed_records(),
        suppressed_values: fit.suppressed_values(&data),
        node: fit.node().to_vec(),
        levels: data
            .names()
            .iter()
            .zip(fit.node())
            .zip(data.hierarchies())
            .map(|((c, &level), h)| ColumnLevel {
                column: c.clone(),
                level,
                height: h.height(),
            })
            .collect(),
        metric: rules.spec.chosen_metric(),
        information_loss: fit.loss(),
        utility,
        risk_before,
        risk_after,
        settings: Settings {
            quasi_identifiers: rules.qi.clone(),
            sensitive: rules.sensitive.clone(),
            privacy: rules.spec.privacy().clone(),
            max_suppression: rules.spec.suppression_limit(),
            gs_factor: rules.spec.gs().get(),
            local_suppression: rules.local_suppression,
            policy: rules.policy,
        },
        search: fit.stats().clone(),
        timings: Timings {
            load_s,
            search_s,
            total_s: t0.elapsed().as_secs_f64(),
        },
    };
    let tuples = released
        .into_iter()
        .map(|v| v.map(|v| v[..data.dims()].iter().map(|s| s.to_string()).collect()))
        .collect();
    let row_tuple = data.row_tuple.clone();
    drop(rows);
    Ok(Released {
        report,
        quarantine,
        qi_pos: cols[..data.dims()].to_vec(),
        header,
        kept,
        records,
        lines,
        row_tuple,
        tuples,
        separator: sep,
    })
}

/// Every released column is checked in every row (each distinct value once): a column
/// named like a direct identifier, or holding a tax code in any shape, a long number (a
/// temporary code, a VAT or phone number), an e-mail address, or, outside the
/// quasi-identifiers, a person's name, is refused unless `--drop` leaves it out. A
/// quasi-identifier goes out generalised, but at level 0 as read, so it is checked for
/// everything but names (category labels such as `San Giovanni` are not people).
fn refuse_identifiers(
    rules: &TableRules,
    source: &str,
    header: &[String],
    records: &[csv::StringRecord],
    lines: &[usize],
    kept: &[usize],
    generalised: &[usize],
) -> Result<()> {
    use occupa_engine::identifiers::{IdKind, Scanner};
    use occupa_engine::schema::IDENTIFYING_HEADERS;
    let scanner = Scanner::new();
    let qi = &generalised[..rules.qi.len()];
    for &i in kept {
        let name = occupa_engine::read::normalise_header(&header[i]);
        if IDENTIFYING_HEADERS.contains(&name.as_str()) {
            return Err(Error::Input(format!(
                "{source}: column {} identifies people directly and would be released; leave it \
                 out with --drop {}",
                header[i], header[i]
            )));
        }
        let mut seen: rustc_hash::FxHashSet<&str> = rustc_hash::FxHashSet::default();
        for (row, r) in records.iter().enumerate() {
            let v = &r[i];
            if !seen.insert(v) {
                continue;
            }
            let found = scanner
                .find(v, &[])
                .into_iter()
                .find(|s| s.kind != IdKind::Name || !qi.contains(&i));
            if let Some(s) = found {
                let what = match s.kind {
                    IdKind::TaxCode => "a tax code",
                    IdKind::Number => "a long number (a temporary tax code, VAT or phone number)",
                    IdKind::Email => "an e-mail address",
                    IdKind::Name => "a person's name",
                };
                return Err(Error::Input(format!(
                    "{source}: column {} holds {what} (line {}), which would be released as it is; \
                     leave it out with --drop {}",
                    header[i], lines[row], header[i]
                )));
            }
        }
    }
    Ok(())
}

/// Writes through the engine's atomic write (staging file, fsync, rename), buffered.
/// Leaves out the rows with a quasi-identifier value that its built-in hierarchy cannot
/// place, listing them when `leave_out` (line, column, reason; no value, since the
/// input may identify people), or refuses naming the first of them when no quarantine file
/// is given. Returns how many rows were left out.
fn quarantine_unplaceable(
    rules: &TableRules,
    source: &str,
    leave_out: bool,
    cols: &[usize],
    records: &mut Vec<csv::StringRecord>,
    lines: &mut Vec<usize>,
) -> Result<Vec<(usize, String, String)>> {
    let mut bad: Vec<(usize, &str, String)> = Vec::new(); // (row index, column, reason)
    for (j, c) in rules.qi.iter().enumerate() {
        let Some((_, b)) = rules.builtins.iter().find(|(col, _)| col == c) else {
            continue;
        };
        let mut verdict: FxHashMap<&str, Option<String>> = FxHashMap::default();
        for (i, r) in records.iter().enumerate() {
            let v = r[cols[j]].trim();
            // The reason without the value (the input may identify people).
            let why = verdict.entry(v).or_insert_with(|| {
                b.build(c, &[v]).err().map(|e| {
                    let e = e.to_string();
                    let e = e.split_once(": ").map_or(e.as_str(), |x| x.1);
                    e.replace(&format!("{v:?}"), "")
                        .replace(v, "")
                        .replace("value  ", "value ")
                })
            });
            if let Some(why) = why {
                bad.push((i, c.as_str(), why.clone()));
            }
        }
    }
    if bad.is_empty() {
        return Ok(Vec::new());
    }
    bad.sort_by_key(|b| b.0);
    if !leave_out {
        let rows: std::collections::BTreeSet<usize> = bad.iter().map(|b| b.0).collect();
        let first = &bad[0];
        return Err(Error::Input(format!(
            "{}: line {}, column {}: {} ({} row(s) in all have a value their built-in \
             hierarchy cannot place); correct them, or leave them out of the release and \
             list them (--quarantine FILE; quarantine=True in Python)",
            source,
            lines[first.0],
            first.1,
            first.2,
            rows.len()
        )));
    }
    // One entry per row (its first unplaceable value), by line.
    let mut listed: Vec<(usize, String, String)> = Vec::new();
    for (i, c, why) in &bad {
        if listed.last().is_none_or(|l| l.0 != lines[*i]) {
            listed.push((lines[*i], c.to_string(), why.clone()));
        }
    }
    let drop: std::collections::BTreeSet<usize> = bad.iter().map(|b| b.0).collect();
    let mut k = 0;
    records.retain(|_| {
        k += 1;
        !drop.contains(&(k - 1))
    });
    let mut k = 0;
    lines.retain(|_| {
        k += 1;
        !drop.contains(&(k - 1))
    });
    Ok(listed)
}

/// Writes the quarantine list (line, column, reason; never a value), after the release.
fn write_quarantine(path: &Path, listed: &[(usize, String, String)]) -> Result<()> {
    write_atomic(path, |w| {
        let mut wtr = csv::Writer::from_writer(w);
        wtr.write_record(["line", "column", "reason"])?;
        for (line, c, why) in listed {
            wtr.write_record([line.to_string().as_str(), c, why.as_str()])?;
        }
        wtr.flush()?;
        Ok(())
    })
}

fn write_atomic(
    path: &Path,
    write: impl FnOnce(&mut std::io::BufWriter<&mut std::fs::File>) -> std::io::Result<()>,
) -> Result<()> {
    occupa_engine::store::write_atomic(path, |f| {
        let mut w = std::io::BufWriter::new(f);
        write(&mut w)
            .and_then(|()| w.flush())
            .map_err(|e| occupa_engine::Error::io(path, e))
    })
    .map_err(|e| Error::Input(e.to_string()))
}
