//! Table schemas: which columns each table has, what values they admit, how export
//! headers map onto them, and the per-row checks that span several columns.
//!
//! `engine/DATA.md` is the data dictionary generated from the same definitions.

use std::collections::HashMap;
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use crate::codice_fiscale::{TaxCode, TaxCodeKind};
use crate::identifiers::{Redactions, Scanner};
use crate::instruments::Instruments;
use crate::instruments::gol::{OverrideReason, Path, Section};
use crate::pseudonym::{Domain, Pseudonymiser};
use crate::territory::Territory;
use crate::value::{self, Value};

/// The tables of the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    /// Persons in charge (one row per person per authority).
    Persons,
    /// ASSO questionnaires.
    Asso,
    /// ISA questionnaires (repeated over time).
    Isa,
    /// GOL assessments.
    Gol,
    /// Services delivered (to persons A.1–A.6, to employers B.1–B.4).
    Services,
    /// Employment events from the mandatory communications (CO).
    Employment,
    /// Vacancies / hiring demand.
    Vacancies,
}

impl Table {
    /// All tables, in ingestion order.
    pub const ALL: [Table; 7] = [
        Table::Persons,
        Table::Asso,
        Table::Isa,
        Table::Gol,
        Table::Services,
        Table::Employment,
        Table::Vacancies,
    ];

    /// The folder name in the store.
    pub fn name(self) -> &'static str {
        match self {
            Table::Persons => "persons",
            Table::Asso => "asso",
            Table::Isa => "isa",
            Table::Gol => "gol",
            Table::Services => "services",
            Table::Employment => "employment",
            Table::Vacancies => "vacancies",
        }
    }

    /// Parses a table name (English or Italian).
    pub fn parse(s: &str) -> Option<Table> {
        let s = s.trim().to_ascii_lowercase();
        Table::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .or(match s.as_str() {
                "persone" => Some(Table::Persons),
                "servizi" => Some(Table::Services),
                "occupazione" | "co" | "comunicazioni_obbligatorie" => Some(Table::Employment),
                "vacancy" | "posti_vacanti" => Some(Table::Vacancies),
                _ => None,
            })
    }
}

/// What a column admits.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// A person's tax code; stored only as its keyed pseudonym.
    PersonId,
    /// An employer's VAT number or tax code; stored only as its keyed pseudonym.
    EmployerId,
    /// Whole number in a closed range.
    Int {
        /// Smallest allowed.
        min: i64,
        /// Largest allowed.
        max: i64,
    },
    /// Real number in a closed range.
    Float {
        /// Smallest allowed.
        min: f64,
        /// Largest allowed.
        max: f64,
    },
    /// A date.
    Date,
    /// Yes/no.
    Bool,
    /// One of a list of codes (stored as given in the list).
    Code(&'static [&'static str]),
    /// Free text; identifiers found inside (tax codes, long numbers, e-mail addresses,
    /// names) are removed before storing, see [`crate::identifiers`].
    Text {
        /// Longest accepted, in characters.
        max_len: usize,
    },
    /// 6-digit ISTAT municipality code whose province exists.
    Municipality,
    /// ISO 3166-1 alpha-3 country code.
    Citizenship,
    /// ATECO 2007 section letter (A–U) or division/class/category (`47`, `47.11`, `47.11.1`).
    Ateco,
    /// CP2011 occupation code, 1 to 5 dot-separated levels (`5.1.2.2.0`).
    Occupation,
    /// An instrument answer from its scale.
    Answer(Vec<i64>),
}

/// The stored physical type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutType {
    /// UTF-8 text.
    Str,
    /// 64-bit integer.
    Int,
    /// 64-bit float.
    Float,
    /// Date (days since 1970-01-01).
    Date,
    /// Boolean.
    Bool,
}

impl Kind {
    fn out_type(&self) -> OutType {
        match self {
            Kind::Int { .. } | Kind::Answer(_) => OutType::Int,
            Kind::Float { .. } => OutType::Float,
            Kind::Date => OutType::Date,
            Kind::Bool => OutType::Bool,
            _ => OutType::Str,
        }
    }
}

/// One column of a table.
#[derive(Debug, Clone)]
pub struct ColumnDef {
    /// Name in the store.
    pub name: String,
    /// Header names accepted in input files (case-insensitive), besides `name`.
    pub aliases: Vec<String>,
    /// Admitted values.
    pub kind: Kind,
    /// Whether an empty cell is an error.
    pub required: bool,
    /// One-line description for the data dictionary.
    pub doc: String,
}

impl ColumnDef {
    /// The stored type.
    pub fn out_type(&self) -> OutType {
        self.kind.out_type()
    }
}

/// Headers that identify people directly: read, never stored.
pub const IDENTIFYING_HEADERS: &[&str] = &[
    "nome",
    "cognome",
    "name",
    "surname",
    "first_name",
    "last_name",
    "nominativo",
    "email",
    "e_mail",
    "pec",
    "telefono",
    "phone",
    "cellulare",
    "mobile",
    "indirizzo",
    "address",
    "data_nascita",
    "birth_date",
    "luogo_nascita",
    "birth_place",
    "iban",
];

/// Of [`IDENTIFYING_HEADERS`], the columns that carry a person's name: their tokens are
/// looked for in the row's free text and added to the tenant's name registry.
pub const NAME_HEADERS: &[&str] = &[
    "nome",
    "cognome",
    "name",
    "surname",
    "first_name",
    "last_name",
    "nominativo",
];

/// Service codes of the Piemonte standards (seed 003).
pub const SERVICE_CODES: &[&str] = &[
    "A.1", "A.2", "A.3", "A.4", "A.5", "A.6", "B.1", "B.2", "B.3", "B.4",
];

/// Recorded outcomes of a service, used by the physical indicators (seed 003).
pub const SERVICE_OUTCOMES: &[&str] = &[
    "informato",
    "patto_firmato",
    "pai_firmato",
    "pai_non_firmato",
    "inviato_formazione",
    "iscritto_formazione",
    "formazione_completata",
    "tirocinio_avviato",
    "preselezionato",
    "inviato_colloquio",
    "assunto",
    "fabbisogno_espresso",
    "patto_azienda",
    "profili_richiesti",
    "vacancy_registrata",
    "candidati_proposti",
    "disponibile_assumere",
];

/// Contract types of the mandatory communications.
pub const CONTRACT_TYPES: &[&str] = &[
    "indeterminato",
    "determinato",
    "apprendistato",
    "somministrazione",
    "intermittente",
    "parasubordinato",
    "altro",
];

/// A table's columns plus what is computed from them at ingestion.
#[derive(Debug, Clone)]
pub struct Schema {
    /// Which table.
    pub table: Table,
    /// Input columns, in store order.
    pub columns: Vec<ColumnDef>,
    /// Computed columns (name, type, description), appended after the input columns.
    pub derived: Vec<(String, OutType, String)>,
    /// Columns whose values identify a record for duplicate detection; empty = whole row.
    pub key_columns: Vec<String>,
}

fn col(name: &str, aliases: &[&str], kind: Kind, required: bool, doc: &str) -> ColumnDef {
    ColumnDef {
        name: name.to_string(),
        aliases: aliases.iter().map(|s| s.to_string()).collect(),
        kind,
        required,
        doc: doc.to_string(),
    }
}

fn person(required: bool) -> ColumnDef {
    col(
        "person_id",
        &["codice_fiscale", "cf", "tax_code", "codicefiscale"],
        Kind::PersonId,
        required,
        "Keyed pseudonym (HMAC-SHA256, 128 bits, hex) of the validated tax code; the code itself is never stored",
    )
}

fn employer(required: bool) -> ColumnDef {
    col(
        "employer_id",
        &[
            "id_datore",
            "datore",
            "piva_datore",
            "codice_fiscale_datore",
            "employer",
        ],
        Kind::EmployerId,
        required,
        "Keyed pseudonym of the employer's VAT number or tax code",
    )
}

fn operator() -> ColumnDef {
    col(
        "operator",
        &["operatore", "id_operatore"],
        Kind::Text { max_len: 40 },
        true,
        "Operator identifier (no names)",
    )
}

fn sector() -> ColumnDef {
    col(
        "sector",
        &["ateco", "settore"],
        Kind::Ateco,
        true,
        "ATECO 2007 sector",
    )
}

fn occupation() -> ColumnDef {
    col(
        "occupation",
        &["professione", "cp2011", "qualifica"],
        Kind::Occupation,
        true,
        "CP2011 occupation code",
    )
}

fn date(name: &str, aliases: &[&str], required: bool, doc: &str) -> ColumnDef {
    col(name, aliases, Kind::Date, required, doc)
}

impl Schema {
    /// The schema of a table given the loaded instruments (which fix the answer scales).
    pub fn of(table: Table, instruments: &Instruments) -> Schema {
        let text = |n| Kind::Text { max_len: n };
        let mut derived = Vec::new();
        let mut key_columns = Vec::new();
        let columns = match table {
            Table::Persons => {
                key_columns.push("person_id".to_string());
                vec![
                    person(true),
                    col(
                        "birth_year",
                        &["anno_nascita"],
                        Kind::Int {
                            min: 1900,
                            max: 2100,
                        },
                        true,
                        "Year of birth (the full birth date is not stored)",
                    ),
                    col(
                        "sex",
                        &["sesso", "genere"],
                        Kind::Code(&["M", "F"]),
                        true,
                        "Sex as registered: M or F",
                    ),
                    col(
                        "citizenship",
                        &["cittadinanza"],
                        Kind::Citizenship,
                        true,
                        "Citizenship, ISO 3166-1 alpha-3 (ITA, ROU, MAR…)",
                    ),
                    col(
                        "municipality",
                        &[
                            "comune_istat",
                            "comune_residenza",
                            "codice_comune",
                            "comune",
                        ],
                        Kind::Municipality,
                        true,
                        "Municipality of residence, 6-digit ISTAT code (province = first 3 digits)",
                    ),
                    col(
                        "education",
                        &["titolo_studio", "isced"],
                        Kind::Int { min: 0, max: 8 },
                        true,
                        "Highest education level, ISCED 2011 (0–8)",
                    ),
                    col(
                        "disability_l68",
                        &["disabilita_l68", "l68", "disabilita"],
                        Kind::Bool,
                        true,
                        "Person with a disability under L. 68/1999",
                    ),
                    col(
                        "income_support",
                        &["sostegno_reddito", "beneficiario_sostegno"],
                        Kind::Bool,
                        true,
                        "Receives an income-support benefit (ADI, NASpI…)",
                    ),
                    col(
                        "social_services_care",
                        &["servizi_sociali", "in_carico_servizi_sociali"],
                        Kind::Bool,
                        true,
                        "In the care of social services",
                    ),
                    date(
                        "intake_date",
                        &["data_presa_in_carico", "data_ingresso"],
                        true,
                        "Date the authority took the person in charge",
                    ),
                    date(
                        "exit_date",
                        &["data_fine_presa_in_carico", "data_uscita"],
                        false,
                        "Date the person left the authority's charge (empty = still in charge)",
                    ),
                ]
            }
            Table::Asso | Table::Isa => {
                let q = if table == Table::Asso {
                    &instruments.asso
                } else {
                    &instruments.isa
                };
                key_columns.extend(["person_id".to_string(), "date".to_string()]);
                let mut cols = vec![
                    person(true),
                    date(
                        "date",
                        &["data", "data_compilazione"],
                        true,
                        "Date the questionnaire was completed",
                    ),
                    operator(),
                ];
                for i in 1..=q.n_items() {
                    cols.push(col(
                        &q.item_column(i),
                        &[],
                        Kind::Answer(q.allowed().to_vec()),
                        false,
                        &format!(
                            "Answer to item {i}, one of {:?} (empty = not answered)",
                            q.allowed()
                        ),
                    ));
                }
                for g in &q.groups {
                    derived.push((
                        format!("score_{}", g.id),
                        OutType::Float,
                        format!("{} score 0–100 ({} rule {})", g.label_en, q.id, q.version),
                    ));
                }
                cols
            }
            Table::Gol => {
                let g = &instruments.gol;
                key_columns.extend(["person_id".to_string(), "date".to_string()]);
                let mut cols = vec![
                    person(true),
                    date(
                        "date",
                        &["data", "data_assessment"],
                        true,
                        "Date of the assessment",
                    ),
                    operator(),
                ];
                for s in Section::ALL {
                    for c in g.item_columns(s) {
                        cols.push(col(&c, &[], Kind::Answer(g.allowed().to_vec()), s != Section::D,
                            &format!("Section {s:?} item; section D is asked only when C reaches its threshold")));
                    }
                }
                cols.push(col(
                    "adjust_target",
                    &["sezione_rettifica"],
                    Kind::Code(&["A", "B", "C", "CD"]),
                    false,
                    "Section moved by the operator's professional evaluation",
                ));
                cols.push(col(
                    "adjust_points",
                    &["punti_rettifica", "rettifica"],
                    Kind::Int { min: -10, max: 10 },
                    false,
                    "Points added (±, within the instrument's plafond)",
                ));
                cols.push(col(
                    "path",
                    &["percorso", "percorso_gol"],
                    Kind::Int { min: 1, max: 4 },
                    true,
                    "Final GOL path 1–4",
                ));
                cols.push(col("override_reason", &["motivo_deroga"], Kind::Code(&["disabilita_l68", "servizi_sociali", "esecuzione_penale"]), false,
                    "Why the final path differs from the system's (only the three admissible categories)"));
                for (n, d) in [
                    ("score_a", "Section A score"),
                    ("score_b", "Section B score"),
                    ("score_c", "Section C score"),
                ] {
                    derived.push((n.to_string(), OutType::Int, d.to_string()));
                }
                derived.push((
                    "score_d".to_string(),
                    OutType::Int,
                    "Section D score (empty when not asked)".to_string(),
                ));
                derived.push((
                    "score_cd".to_string(),
                    OutType::Int,
                    "C + D after the adjustment".to_string(),
                ));
                derived.push((
                    "path_system".to_string(),
                    OutType::Int,
                    format!("Path assigned by the rules ({} {})", g.name, g.version),
                ));
                cols
            }
            Table::Services => vec![
                person(false),
                employer(false),
                col(
                    "service_code",
                    &["codice_servizio", "servizio"],
                    Kind::Code(SERVICE_CODES),
                    true,
                    "Service standard A.1–A.6 (persons) or B.1–B.4 (employers)",
                ),
                col(
                    "programme",
                    &["programma"],
                    text(60),
                    true,
                    "Programme (GOL, FSE+, regional…)",
                ),
                col(
                    "provider",
                    &["ente", "soggetto_erogatore", "provider"],
                    text(120),
                    true,
                    "Public or accredited provider",
                ),
                operator(),
                date("start_date", &["data_inizio"], true, "Start of the service"),
                date(
                    "end_date",
                    &["data_fine"],
                    false,
                    "End of the service (empty = ongoing)",
                ),
                col(
                    "hours",
                    &["ore", "durata_ore"],
                    Kind::Float {
                        min: 0.0,
                        max: 2000.0,
                    },
                    true,
                    "Hours delivered",
                ),
                col(
                    "cost",
                    &["costo", "importo"],
                    Kind::Float {
                        min: 0.0,
                        max: 1.0e6,
                    },
                    false,
                    "Cost in euro",
                ),
                col(
                    "funding",
                    &["finanziamento", "fonte_finanziamento"],
                    text(60),
                    false,
                    "Funding source",
                ),
                col(
                    "outcome",
                    &["esito"],
                    Kind::Code(SERVICE_OUTCOMES),
                    false,
                    "Recorded outcome (pact signed, PAI, traineeship, hired…)",
                ),
            ],
            Table::Employment => vec![
                person(true),
                date(
                    "start_date",
                    &["data_inizio", "data_assunzione"],
                    true,
                    "Start of the contract",
                ),
                date(
                    "end_date",
                    &["data_fine", "data_cessazione"],
                    false,
                    "End of the contract (empty = open-ended or ongoing)",
                ),
                col(
                    "contract_type",
                    &["tipo_contratto", "tipologia_contrattuale"],
                    Kind::Code(CONTRACT_TYPES),
                    true,
                    "Contract type",
                ),
                sector(),
                occupation(),
                employer(true),
                col(
                    "municipality",
                    &["comune_lavoro", "comune_sede"],
                    Kind::Municipality,
                    false,
                    "Municipality of the workplace",
                ),
            ],
            Table::Vacancies => vec![
                employer(true),
                date(
                    "date",
                    &["data", "data_richiesta"],
                    true,
                    "Date the demand was recorded",
                ),
                occupation(),
                sector(),
                col(
                    "municipality",
                    &["comune", "comune_sede"],
                    Kind::Municipality,
                    true,
                    "Municipality of the workplace",
                ),
                col(
                    "count",
                    &["numero", "posti", "n_posti"],
                    Kind::Int {
                        min: 1,
                        max: 10_000,
                    },
                    true,
                    "Positions / hires",
                ),
            ],
        };
        Schema {
            table,
            columns,
            derived,
            key_columns,
        }
    }

    /// All stored columns with their types: inputs, then derived (then the store adds `row_key`).
    pub fn stored_columns(&self) -> Vec<(String, OutType)> {
        let mut v: Vec<_> = self
            .columns
            .iter()
            .map(|c| (c.name.clone(), c.out_type()))
            .collect();
        v.extend(self.derived.iter().map(|(n, t, _)| (n.clone(), *t)));
        v
    }
}

/// Why a row was rejected.
#[derive(Debug, Clone, PartialEq)]
pub struct Reject {
    /// The column at fault (store name), or `*` for the whole row.
    pub column: String,
    /// What is wrong. It may quote the value when the value was judged safe to show
    /// ([`Scanner::may_echo`]); see `plain`.
    pub reason: String,
    /// When the value was rejected on its own: the schema column it came from and the
    /// reason without the value, for a caller that learns only later whether the value
    /// may be shown (an ingest knows every name of the file only at its end).
    pub plain: Option<(usize, String)>,
}

impl Reject {
    /// Replaces the reason by the one that does not quote the value.
    pub fn without_value(&mut self) {
        if let Some((_, plain)) = &self.plain {
            self.reason = plain.clone();
        }
    }
}

fn reject(column: &str, reason: impl Into<String>) -> Reject {
    Reject {
        column: column.to_string(),
        reason: reason.into(),
        plain: None,
    }
}

/// Everything a row conversion needs, shared read-only across threads.
pub struct RowContext<'a> {
    /// The table's schema.
    pub schema: &'a Schema,
    /// Instruments for scoring.
    pub instruments: &'a Instruments,
    /// Keyed pseudonymiser.
    pub pseudonymiser: &'a Pseudonymiser,
    /// Finds identifiers in free text (with the tenant's name registry).
    pub scanner: Scanner<'a>,
    /// Identifiers removed from free text so far.
    pub redacted: Mutex<Redactions>,
}

impl<'a> RowContext<'a> {
    /// A context with an empty tally.
    pub fn new(
        schema: &'a Schema,
        instruments: &'a Instruments,
        pseudonymiser: &'a Pseudonymiser,
        scanner: Scanner<'a>,
    ) -> Self {
        RowContext {
            schema,
            instruments,
            pseudonymiser,
            scanner,
            redacted: Mutex::new(Redactions::default()),
        }
    }

    /// Identifiers removed so far.
    pub fn redactions(&self) -> Redactions {
        self.redacted.lock().map(|r| *r).unwrap_or_default()
    }
}

/// Per-worker state reused from row to row: free texts repeat (providers, programmes,
/// operator codes), so each distinct text is scanned once.
#[derive(Default)]
pub struct RowScratch {
    texts: HashMap<String, (String, Redactions)>,
    tally: Redactions,
}

impl RowScratch {
    /// Adds this worker's tally to the context's and clears it.
    pub fn flush(&mut self, ctx: &RowContext<'_>) {
        if let Ok(mut r) = ctx.redacted.lock() {
            r.merge(&self.tally);
        }
        self.tally = Redactions::default();
    }
}

/// A converted row: stored values (input then derived columns) and its duplicate key.
pub struct Row {
    /// Values in [`Schema::stored_columns`] order.
    pub values: Vec<Value>,
    /// Duplicate-detection key.
    pub key: u64,
}

fn is_ateco(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() == 1 {
        return (b'A'..=b'U').contains(&b[0]);
    }
    let parts: Vec<&str> = s.split('.').collect();
    parts[0].len() == 2
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 2 && p.bytes().all(|c| c.is_ascii_digit()))
        && parts.len() <= 4
        && parts[0] != "00"
}

fn is_occupation(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() <= 5
        && parts
            .iter()
            .all(|p| p.len() == 1 && p.as_bytes()[0].is_ascii_digit())
        && parts[0] != "0"
}

/// What a column holds, for an error that cannot quote the value.
fn what(kind: &Kind) -> String {
    match kind {
        Kind::PersonId => "a tax code".into(),
        Kind::EmployerId => "a VAT number or tax code".into(),
        Kind::Int { min, max } => format!("a whole number in {min}..={max}"),
        Kind::Float { min, max } => format!("a number in {min}..={max}"),
        Kind::Date => "a date (YYYY-MM-DD or DD/MM/YYYY)".into(),
        Kind::Bool => "yes/no".into(),
        Kind::Code(list) => format!("one of {}", list.join(", ")),
        Kind::Text { max_len } => format!("text of at most {max_len} characters"),
        Kind::Municipality => "a 6-digit ISTAT municipality code".into(),
        Kind::Citizenship => "an ISO 3166-1 alpha-3 code".into(),
        Kind::Ateco => "an ATECO 2007 code".into(),
        Kind::Occupation => "a CP2011 occupation code".into(),
        Kind::Answer(scale) => format!("an answer in {scale:?}"),
    }
}

impl RowContext<'_> {
    /// Validates and converts one record. `cells[i]` is the raw text of input column i
    /// (`None` when the file lacks an optional column).
    pub fn convert(&self, cells: &[Option<&str>]) -> Result<Row, Reject> {
        let mut values = Vec::with_capacity(self.schema.columns.len() + self.schema.derived.len());
        let mut scratch = RowScratch::default();
        let key = self.convert_into(
            |i| cells.get(i).copied().flatten(),
            &[],
            &mut values,
            &mut scratch,
            false,
        );
        scratch.flush(self);
        Ok(Row { values, key: key? })
    }

    /// As [`RowContext::convert`], with cell `i` given by `cell(i)`, into a reused buffer
    /// (`grouping`: the file is separated by `;`, tab or `|`, so `1.200` is 1200)
    /// (cleared first); returns the row's duplicate key. No allocation per row other than
    /// the stored strings. `row_names` are the normalised name tokens of the person the
    /// row is about (from its name columns), removed from its free text.
    ///
    /// A rejection quotes the value only when [`Scanner::may_echo`] allows it: a tax code
    /// or a name typed into the wrong column is never written back into the quarantine.
    pub fn convert_into<'c>(
        &self,
        cell: impl Fn(usize) -> Option<&'c str>,
        row_names: &[String],
        values: &mut Vec<Value>,
        scratch: &mut RowScratch,
        grouping: bool,
    ) -> Result<u64, Reject> {
        let schema = self.schema;
        values.clear();
        let tax: std::cell::RefCell<Option<TaxCode>> = std::cell::RefCell::new(None);
        for (ci, def) in schema.columns.iter().enumerate() {
            let raw = cell(ci).map(str::trim).unwrap_or("");
            if raw.is_empty() {
                if def.required {
                    return Err(reject(&def.name, "required value is missing"));
                }
                values.push(Value::Null);
                continue;
            }
            let name = def.name.as_str();
            let converted = (|| -> Result<Value, Reject> {
                Ok(match &def.kind {
                    Kind::PersonId => {
                        let code = TaxCode::parse(raw)
                            .map_err(|e| reject(name, format!("invalid tax code: {e}")))?;
                        let p = self.pseudonymiser.pseudonym(Domain::Person, code.as_str());
                        *tax.borrow_mut() = Some(code);
                        Value::Str(p)
                    }
                    Kind::EmployerId => {
                        let code = TaxCode::parse(raw).map_err(|e| {
                            reject(name, format!("invalid employer VAT number / tax code: {e}"))
                        })?;
                        Value::Str(
                            self.pseudonymiser
                                .pseudonym(Domain::Employer, code.as_str()),
                        )
                    }
                    Kind::Int { min, max } => {
                        let i = value::parse_int_in(raw, grouping).map_err(|e| reject(name, e))?;
                        if i < *min || i > *max {
                            return Err(reject(name, format!("{i} is outside {min}..={max}")));
                        }
                        Value::Int(i)
                    }
                    Kind::Answer(scale) => {
                        let i = value::parse_int(raw).map_err(|e| reject(name, e))?;
                        if scale.binary_search(&i).is_err() {
                            return Err(reject(
                                name,
                                format!("answer {i} is not one of {scale:?}"),
                            ));
                        }
                        Value::Int(i)
                    }
                    Kind::Float { min, max } => {
                        let f =
                            value::parse_float_in(raw, grouping).map_err(|e| reject(name, e))?;
                        if f < *min || f > *max {
                            return Err(reject(name, format!("{f} is outside {min}..={max}")));
                        }
                        Value::Float(f)
                    }
                    Kind::Date => Value::Date(value::days(
                        value::parse_date(raw).map_err(|e| reject(name, e))?,
                    )),
                    Kind::Bool => Value::Bool(value::parse_bool(raw).map_err(|e| reject(name, e))?),
                    Kind::Code(list) => {
                        let found = list.iter().find(|c| c.eq_ignore_ascii_case(raw));
                        Value::Code(found.ok_or_else(|| {
                            reject(name, format!("{raw:?} is not one of {}", list.join(", ")))
                        })?)
                    }
                    Kind::Text { max_len } => {
                        if raw.chars().count() > *max_len {
                            return Err(reject(name, format!("longer than {max_len} characters")));
                        }
                        if row_names.is_empty()
                            && let Some((text, found)) = scratch.texts.get(raw)
                        {
                            scratch.tally.merge(found);
                            Value::Str(text.clone())
                        } else {
                            let mut found = Redactions::default();
                            let text = self.scanner.redact(raw, row_names, &mut found).into_owned();
                            scratch.tally.merge(&found);
                            if row_names.is_empty() {
                                if scratch.texts.len() > 100_000 {
                                    scratch.texts.clear();
                                }
                                scratch.texts.insert(raw.to_string(), (text.clone(), found));
                            }
                            Value::Str(text)
                        }
                    }
                    Kind::Municipality => {
                        let code = if raw.len() < 6 && raw.bytes().all(|b| b.is_ascii_digit()) {
                            format!("{raw:0>6}")
                        } else {
                            raw.to_string()
                        };
                        if Territory::get().province_of(&code).is_none() {
                            return Err(reject(
                                name,
                                format!(
                                    "{raw:?} is not a municipality code of ISTAT's register (6 digits; codes valid at {}, ceased since 2019 or of an older province layout): check the code at situas.istat.it",
                                    crate::territory::REGISTER_DATE
                                ),
                            ));
                        }
                        Value::Str(code)
                    }
                    Kind::Citizenship => {
                        let up = raw.to_ascii_uppercase();
                        if up.len() != 3 || !up.bytes().all(|b| b.is_ascii_uppercase()) {
                            return Err(reject(
                                name,
                                format!("{raw:?} is not an ISO 3166-1 alpha-3 code"),
                            ));
                        }
                        Value::Str(up)
                    }
                    Kind::Ateco => {
                        let up = raw.to_ascii_uppercase();
                        if !is_ateco(&up) {
                            return Err(reject(name, format!("{raw:?} is not an ATECO 2007 code")));
                        }
                        Value::Str(up)
                    }
                    Kind::Occupation => {
                        if !is_occupation(raw) {
                            return Err(reject(
                                name,
                                format!("{raw:?} is not a CP2011 occupation code"),
                            ));
                        }
                        Value::Str(raw.to_string())
                    }
                })
            })();
            let v = match converted {
                Ok(v) => v,
                Err(mut rej) => {
                    rej.plain = Some((
                        ci,
                        format!(
                            "not {} (the value is not shown: it may identify a person)",
                            what(&def.kind)
                        ),
                    ));
                    if !self.scanner.may_echo(raw)
                        || row_names
                            .iter()
                            .any(|n| raw.to_lowercase().contains(n.as_str()))
                    {
                        rej.without_value();
                    }
                    return Err(rej);
                }
            };
            values.push(v);
        }
        self.check_and_derive(values, tax.borrow().as_ref())?;
        Ok(self.key(values))
    }

    fn idx(&self, name: &str) -> usize {
        self.schema
            .columns
            .iter()
            .position(|c| c.name == name)
            .unwrap_or(usize::MAX)
    }

    fn get(&self, values: &[Value], name: &str) -> Value {
        values.get(self.idx(name)).cloned().unwrap_or(Value::Null)
    }

    fn check_and_derive(
        &self,
        values: &mut Vec<Value>,
        tax: Option<&TaxCode>,
    ) -> Result<(), Reject> {
        let date_order = |values: &[Value], start: &str, end: &str| -> Result<(), Reject> {
            if let (Value::Date(s), Value::Date(e)) =
                (self.get(values, start), self.get(values, end))
                && e < s
            {
                return Err(reject(
                    end,
                    format!(
                        "ends before it starts ({} < {})",
                        value::date_of(e),
                        value::date_of(s)
                    ),
                ));
            }
            Ok(())
        };
        match self.schema.table {
            Table::Persons => {
                date_order(values, "intake_date", "exit_date")?;
                let (Value::Int(by), Value::Date(intake)) = (
                    self.get(values, "birth_year"),
                    self.get(values, "intake_date"),
                ) else {
                    return Ok(());
                };
                let intake_year = chrono::Datelike::year(&value::date_of(intake)) as i64;
                if !(14..=100).contains(&(intake_year - by)) {
                    return Err(reject(
                        "birth_year",
                        format!("age at intake {} is outside 14–100", intake_year - by),
                    ));
                }
                if let Some(code) = tax.filter(|c| matches!(c.kind(), TaxCodeKind::Personal { .. }))
                {
                    if code
                        .birth_year_2digits()
                        .is_some_and(|y| y as i64 != by % 100)
                    {
                        return Err(reject(
                            "birth_year",
                            "does not match the year encoded in the tax code",
                        ));
                    }
                    let female = self.get(values, "sex").as_str() == Some("F");
                    if code.is_female().is_some_and(|f| f != female) {
                        return Err(reject(
                            "sex",
                            "does not match the sex encoded in the tax code",
                        ));
                    }
                }
            }
            Table::Asso | Table::Isa => {
                let q = if self.schema.table == Table::Asso {
                    &self.instruments.asso
                } else {
                    &self.instruments.isa
                };
                let answers: Vec<Option<i64>> = (1..=q.n_items())
                    .map(|i| match self.get(values, &q.item_column(i)) {
                        Value::Int(a) => Some(a),
                        _ => None,
                    })
                    .collect();
                if answers.iter().all(Option::is_none) {
                    return Err(reject("*", "no item is answered"));
                }
                values.extend(
                    q.score(&answers)
                        .into_iter()
                        .map(|s| s.map_or(Value::Null, Value::Float)),
                );
            }
            Table::Gol => {
                let g = &self.instruments.gol;
                let sec: Vec<Vec<Option<i64>>> = Section::ALL
                    .iter()
                    .map(|s| {
                        g.item_columns(*s)
                            .iter()
                            .map(|c| {
                                if let Value::Int(a) = self.get(values, c) {
                                    Some(a)
                                } else {
                                    None
                                }
                            })
                            .collect()
                    })
                    .collect();
                let answers = g
                    .answers_from_items([&sec[0], &sec[1], &sec[2], &sec[3]])
                    .map_err(|e| reject("*", e.to_string()))?;
                let adj = match (
                    self.get(values, "adjust_target"),
                    self.get(values, "adjust_points"),
                ) {
                    (Value::Code(t), Value::Int(p)) => Some(
                        g.adjustment(t, p)
                            .map_err(|e| reject("adjust_points", e.to_string()))?,
                    ),
                    (Value::Null, Value::Int(0)) | (Value::Null, Value::Null) => None,
                    (Value::Code(_), Value::Null) => {
                        return Err(reject(
                            "adjust_points",
                            "a section is adjusted but the points are missing",
                        ));
                    }
                    _ => {
                        return Err(reject(
                            "adjust_target",
                            "points are adjusted but the section is missing",
                        ));
                    }
                };
                let outcome = g
                    .assess(&answers, adj)
                    .map_err(|e| reject("*", e.to_string()))?;
                let Value::Int(chosen) = self.get(values, "path") else {
                    return Err(reject("path", "required value is missing"));
                };
                let chosen = Path::new(chosen).map_err(|e| reject("path", e.to_string()))?;
                let reason = match self.get(values, "override_reason") {
                    Value::Code(r) => OverrideReason::parse(r),
                    _ => None,
                };
                g.final_path(outcome.system_path, chosen, reason)
                    .map_err(|e| reject("path", e.to_string()))?;
                values.extend([
                    Value::Int(outcome.scores.get(Section::A) as i64),
                    Value::Int(outcome.scores.get(Section::B) as i64),
                    Value::Int(outcome.scores.get(Section::C) as i64),
                    outcome
                        .scores
                        .d()
                        .map_or(Value::Null, |d| Value::Int(d as i64)),
                    Value::Int(outcome.adjusted_cd as i64),
                    Value::Int(outcome.system_path.number() as i64),
                ]);
            }
            Table::Services => {
                date_order(values, "start_date", "end_date")?;
                let Value::Code(code) = self.get(values, "service_code") else {
                    return Ok(());
                };
                if code.starts_with('A') && self.get(values, "person_id") == Value::Null {
                    return Err(reject(
                        "person_id",
                        format!(
                            "service {code} is delivered to a person: the tax code is required"
                        ),
                    ));
                }
                if code.starts_with('B') && self.get(values, "employer_id") == Value::Null {
                    return Err(reject(
                        "employer_id",
                        format!(
                            "service {code} is delivered to an employer: the employer id is required"
                        ),
                    ));
                }
            }
            Table::Employment => date_order(values, "start_date", "end_date")?,
            Table::Vacancies => {}
        }
        Ok(())
    }

    fn key(&self, values: &[Value]) -> u64 {
        let schema = self.schema;
        if schema.key_columns == ["person_id"]
            && let Value::Str(p) = &values[self.idx("person_id")]
        {
            return u64::from_str_radix(&p[..16], 16).unwrap_or(0);
        }
        let mut buf = Vec::with_capacity(128);
        buf.extend_from_slice(schema.table.name().as_bytes());
        if schema.key_columns.is_empty() {
            values[..schema.columns.len()]
                .iter()
                .for_each(|v| v.canonical(&mut buf));
        } else {
            for k in &schema.key_columns {
                values[self.idx(k)].canonical(&mut buf);
            }
        }
        let d = Sha256::digest(&buf);
        u64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
    }
}

/// The data dictionary (`engine/DATA.md`), generated from the schemas so it cannot drift.
pub fn data_dictionary(instruments: &Instruments) -> String {
    let mut out = String::from(
        "# Data dictionary\n\nGenerated from `engine/src/schema.rs` (a test fails when this file is out of date;\n\
         regenerate with `OCCUPA_WRITE_DATA_MD=1 cargo test --release -p occupa-engine data_md`).\n\n\
         Every table is stored per tenant as `tenants/<tenant>/<table>/<ingest-id>.parquet`, with two\n\
         extra column, `row_key` (duplicate-detection key); the part's name is its ingest id. Headers are matched\n\
         case-insensitively, with spaces, dots and dashes read as `_`. Identifying columns (names,\n\
         contacts, full birth date: `nome`, `cognome`, `email`, `telefono`, `indirizzo`, `data_nascita`…)\n\
         are read and dropped; unknown columns are ignored; neither is ever stored.\n\n\
         Territory: `municipality` is the 6-digit ISTAT code, checked against ISTAT's register of\n\
         municipalities (`engine/data/territory/municipalities.csv`: codes valid at 2024-12-04, ceased\n\
         since 2019, or of an older province layout); its first three digits are the province\n\
         (`provinces.csv`; an old layout's code is placed through today's code), which belongs to a\n\
         region (`regions.csv`).\n",
    );
    for table in Table::ALL {
        let s = Schema::of(table, instruments);
        out.push_str(&format!("\n## `{}`\n\n", table.name()));
        if !s.key_columns.is_empty() {
            out.push_str(&format!(
                "A row is a duplicate when its {} match a stored row.\n\n",
                s.key_columns.join(" and ")
            ));
        } else {
            out.push_str("A row is a duplicate when all its stored values match a stored row.\n\n");
        }
        out.push_str("| column | accepted headers | type | required | description |\n|---|---|---|---|---|\n");
        let mut answers_done = false;
        for c in &s.columns {
            if let Kind::Answer(scale) = &c.kind
                && matches!(table, Table::Asso | Table::Isa)
            {
                if !answers_done {
                    let q = if table == Table::Asso {
                        &instruments.asso
                    } else {
                        &instruments.isa
                    };
                    out.push_str(&format!("| `{}` … `{}` | same | integer | no | item answers, one of {:?} (empty = not answered) |\n", q.item_column(1), q.item_column(q.n_items()), scale));
                    answers_done = true;
                }
                continue;
            }
            let ty = match &c.kind {
                Kind::PersonId | Kind::EmployerId => "pseudonym (text)".to_string(),
                Kind::Int { min, max } => format!("integer {min}–{max}"),
                Kind::Float { min, max } => format!("number {min}–{max}"),
                Kind::Date => "date".into(),
                Kind::Bool => "yes/no".into(),
                Kind::Code(list) => format!("one of: {}", list.join(", ")),
                Kind::Text { max_len } => format!("text ≤ {max_len}"),
                Kind::Municipality => "ISTAT municipality".into(),
                Kind::Citizenship => "ISO 3166-1 alpha-3".into(),
                Kind::Ateco => "ATECO 2007".into(),
                Kind::Occupation => "CP2011".into(),
                Kind::Answer(scale) => format!("answer {scale:?}"),
            };
            let mut headers = vec![format!("`{}`", c.name)];
            headers.extend(c.aliases.iter().map(|a| format!("`{a}`")));
            out.push_str(&format!(
                "| `{}` | {} | {} | {} | {} |\n",
                c.name,
                headers.join(", "),
                ty,
                if c.required { "yes" } else { "no" },
                c.doc
            ));
        }
        for (n, t, d) in &s.derived {
            out.push_str(&format!("| `{n}` | (computed) | {t:?} | — | {d} |\n"));
        }
    }
    out
}

/// The ATECO 2007 section of a division (01–99).
pub fn ateco_section(division: u32) -> Option<&'static str> {
    Some(match division {
        1..=3 => "A",
        5..=9 => "B",
        10..=33 => "C",
        35 => "D",
        36..=39 => "E",
        41..=43 => "F",
        45..=47 => "G",
        49..=53 => "H",
        55..=56 => "I",
        58..=63 => "J",
        64..=66 => "K",
        68 => "L",
        69..=75 => "M",
        77..=82 => "N",
        84 => "O",
        85 => "P",
        86..=88 => "Q",
        90..=93 => "R",
        94..=96 => "S",
        97..=98 => "T",
        99 => "U",
        _ => return None,
    })
}

/// The ATECO 2007 section of a sector as the files write it: a section letter (`G`) or a
/// division, group or class (`47`, `47.11`, `47.11.1`).
pub fn ateco_section_of(code: &str) -> Option<&'static str> {
    let c = code.trim();
    if c.len() == 1 && c.as_bytes()[0].is_ascii_uppercase() {
        let letters = "ABCDEFGHIJKLMNOPQRSTU";
        return letters.find(c).map(|i| &letters[i..=i]);
    }
    let division: u32 = c.split('.').next()?.parse().ok()?;
    ateco_section(division)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pseudonym::Key;

    fn ctx_for<'a>(
        schema: &'a Schema,
        inst: &'a Instruments,
        p: &'a Pseudonymiser,
    ) -> RowContext<'a> {
        RowContext::new(schema, inst, p, Scanner::new())
    }

    #[test]
    fn data_md_is_up_to_date() {
        let text = data_dictionary(&Instruments::builtin().unwrap());
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("DATA.md");
        if std::env::var_os("OCCUPA_WRITE_DATA_MD").is_some() {
            std::fs::write(&path, &text).unwrap();
        }
        assert_eq!(
            std::fs::read_to_string(&path).unwrap_or_default(),
            text,
            "engine/DATA.md is stale: regenerate it"
        );
    }

    #[test]
    fn ateco_and_occupation_codes() {
        for ok in ["G", "47", "47.11", "47.11.1", "01.1"] {
            assert!(is_ateco(ok), "{ok}");
        }
        for bad in ["V", "4", "471", "47..1", "00"] {
            assert!(!is_ateco(bad), "{bad}");
        }
        assert!(is_occupation("5.1.2.2.0") && is_occupation("2"));
        assert!(!is_occupation("0.1") && !is_occupation("5.12"));
    }

    #[test]
    fn persons_row_is_pseudonymised_and_cross_checked() {
        let inst = Instruments::builtin().unwrap();
        let schema = Schema::of(Table::Persons, &inst);
        let p = Pseudonymiser::new(&Key::from_bytes([3; 32]));
        let ctx = ctx_for(&schema, &inst, &p);
        let cells = [
            "RSSMRA85T10A562S",
            "1985",
            "M",
            "ita",
            "1272",
            "3",
            "no",
            "sì",
            "0",
            "01/02/2024",
            "",
        ];
        let cells: Vec<Option<&str>> = cells.iter().map(|s| Some(*s)).collect();
        let row = ctx.convert(&cells).unwrap();
        assert_eq!(
            row.values[0],
            Value::Str(p.pseudonym(Domain::Person, "RSSMRA85T10A562S"))
        );
        assert_eq!(row.values[3], Value::Str("ITA".into()));
        assert_eq!(row.values[4], Value::Str("001272".into()));
        let mut wrong_sex = cells.clone();
        wrong_sex[2] = Some("F");
        assert_eq!(ctx.convert(&wrong_sex).err().unwrap().column, "sex");
        let mut wrong_year = cells.clone();
        wrong_year[1] = Some("1986");
        assert_eq!(ctx.convert(&wrong_year).err().unwrap().column, "birth_year");
        let mut exit_before = cells.clone();
        exit_before[10] = Some("2023-01-01");
        assert_eq!(ctx.convert(&exit_before).err().unwrap().column, "exit_date");
    }

    #[test]
    fn tax_codes_in_free_text_are_removed() {
        let inst = Instruments::builtin().unwrap();
        let schema = Schema::of(Table::Services, &inst);
        let p = Pseudonymiser::new(&Key::from_bytes([3; 32]));
        let ctx = ctx_for(&schema, &inst, &p);
        let mut cells: Vec<Option<&str>> = vec![None; schema.columns.len()];
        let col = |n: &str| schema.columns.iter().position(|c| c.name == n).unwrap();
        cells[col("person_id")] = Some("RSSMRA85T10A562S");
        cells[col("service_code")] = Some("A.5");
        cells[col("programme")] = Some("GOL");
        cells[col("provider")] = Some("colloquio con RSS MRA 85T10 A562S, ok");
        cells[col("operator")] = Some("Mario Rossi");
        cells[col("start_date")] = Some("2024-05-02");
        cells[col("hours")] = Some("3");
        let row = ctx.convert(&cells).unwrap();
        assert_eq!(
            row.values[col("provider")],
            Value::Str("colloquio con [codice fiscale rimosso], ok".into())
        );
        assert_eq!(
            row.values[col("operator")],
            Value::Str("[nome rimosso]".into())
        );
        let r = ctx.redactions();
        assert_eq!((r.tax_codes, r.names), (1, 1));
    }

    #[test]
    fn a_rejection_never_quotes_an_identifier() {
        let inst = Instruments::builtin().unwrap();
        let schema = Schema::of(Table::Persons, &inst);
        let p = Pseudonymiser::new(&Key::from_bytes([3; 32]));
        let ctx = ctx_for(&schema, &inst, &p);
        let mut cells: Vec<Option<&str>> = [
            "RSSMRA85T10A562S",
            "1985",
            "M",
            "ita",
            "1272",
            "3",
            "no",
            "sì",
            "0",
            "01/02/2024",
            "",
        ]
        .iter()
        .map(|s| Some(*s))
        .collect();
        for planted in ["BNCLRA90C44F205Z", "bianchi", "laura.b@example.it"] {
            cells[3] = Some(planted);
            let err = ctx.convert(&cells).err().unwrap();
            assert_eq!(err.column, "citizenship");
            assert!(
                !err.reason
                    .to_lowercase()
                    .contains(&planted.to_lowercase()[..6]),
                "{}",
                err.reason
            );
            assert!(err.reason.contains("not shown"), "{}", err.reason);
        }
        // A harmless value is still quoted, so the user can fix it.
        cells[3] = Some("XX1");
        assert!(ctx.convert(&cells).err().unwrap().reason.contains("XX1"));
    }

    #[test]
    fn gol_row_needs_admissible_override() {
        let inst = Instruments::builtin().unwrap();
        let schema = Schema::of(Table::Gol, &inst);
        let p = Pseudonymiser::new(&Key::from_bytes([3; 32]));
        let ctx = ctx_for(&schema, &inst, &p);
        // A = 3+3+1 = 7 → one flag → GOL 2; chosen 4 without a reason is rejected.
        let mut cells: Vec<Option<&str>> =
            vec![Some("RSSMRA85T10A562S"), Some("2024-05-02"), Some("OP1")];
        cells.extend(["3", "3", "1", "0", "0"].map(Some));
        cells.extend(["0"; 10].map(Some));
        cells.extend([None; 5]);
        cells.extend([None, None, Some("4"), None]);
        let err = ctx.convert(&cells).err().unwrap();
        assert_eq!(err.column, "path");
        let n = cells.len();
        cells[n - 1] = Some("servizi_sociali");
        let row = ctx.convert(&cells).unwrap();
        assert_eq!(row.values.last(), Some(&Value::Int(2)));
        cells[n - 1] = None;
        cells[n - 2] = Some("2");
        assert!(ctx.convert(&cells).is_ok());
    }
}
