//! The simulator: a realistic pooled population across authorities, written as the CSV
//! files an authority would export, with the planted truth that later methods must recover
//! (`truth.json`, `truth-persons.csv`).
//!
//! Planted structure:
//! - four latent profile classes that drive the ASSO and ISA answers and the GOL sections;
//! - GOL scores, the operator's ±3 adjustment near the thresholds, paths and overrides,
//!   one opportunistic operator whose adjustments rise suddenly in 2025, and one operator
//!   whose persons' chances of work fall suddenly from April 2025;
//! - one main active service (none, A.4, A.5, A.6) chosen by a multinomial logit on
//!   *observed* covariates only (selection on observables);
//! - a monthly job-finding hazard with a known, heterogeneous effect of each service and
//!   of operator quality; employment at 6 and 12 months has closed-form potential-outcome
//!   probabilities, so the true ATE/ATT are exact expectations, not simulated draws;
//! - monthly hires by sector × province from 2019 with trend, seasonality and noise;
//! - optionally dirty files: bad tax codes, impossible dates, out-of-range answers,
//!   duplicated rows and mis-encoded text, each counted in the truth.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use chrono::{Datelike, Months, NaiveDate};
use rand::prelude::*;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Gamma, Normal, Poisson};
use serde::Serialize;

use crate::codice_fiscale::{corrupt_check_character, make_personal, make_temporary};
use crate::instruments::Instruments;
use crate::instruments::gol::{GolAnswers, Section};
use crate::{Error, Result};

/// Simulation settings.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Persons across all tenants.
    pub persons: usize,
    /// Number of authorities.
    pub tenants: usize,
    /// Random seed: the same seed gives the same files.
    pub seed: u64,
    /// Share of rows made dirty (0 = clean files).
    pub dirty_rate: f64,
    /// Last day of the observation window.
    pub end: NaiveDate,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            persons: 20_000,
            tenants: 6,
            seed: 42,
            dirty_rate: 0.0,
            end: NaiveDate::from_ymd_opt(2026, 9, 30).unwrap_or_default(),
        }
    }
}

impl SimConfig {
    fn check(&self) -> Result<()> {
        if self.persons < 10 {
            return Err(Error::Param {
                name: "persons",
                reason: "simulate at least 10 persons".into(),
            });
        }
        if !(1..=60).contains(&self.tenants) {
            return Err(Error::Param {
                name: "tenants",
                reason: "between 1 and 60 tenants".into(),
            });
        }
        if !(0.0..=0.5).contains(&self.dirty_rate) {
            return Err(Error::Param {
                name: "dirty",
                reason: "the dirty-row rate must be within 0..=0.5".into(),
            });
        }
        Ok(())
    }
}

/// Provinces the simulated authorities are spread over (Piemonte first, then Friuli).
const PROVINCES: [&str; 12] = [
    "001", "004", "006", "003", "005", "002", "096", "103", "093", "030", "031", "032",
];
const CLASS_NAMES: [&str; 4] = [
    "pronti al lavoro",
    "bassa qualificazione",
    "fragilità sociale",
    "multi-svantaggio",
];
const SERVICES: [&str; 4] = ["none", "A.4", "A.5", "A.6"];
const SECTORS: [&str; 8] = ["A", "C", "F", "G", "H", "I", "N", "Q"];
const OCCUPATIONS: [&str; 8] = [
    "6.4.1.1.0",
    "7.2.7.9.0",
    "6.1.2.1.0",
    "5.1.2.2.0",
    "8.1.3.1.0",
    "5.2.2.1.0",
    "8.1.4.2.0",
    "5.3.1.1.0",
];
const SURNAMES: [&str; 16] = [
    "Rossi", "Russo", "Ferrari", "Esposito", "Bianchi", "Romano", "Colombo", "Ricci", "Marino",
    "Greco", "Bruno", "Gallo", "Conti", "De Luca", "Costa", "Giordano",
];
const NAMES_M: [&str; 8] = [
    "Marco",
    "Luca",
    "Giuseppe",
    "Andrea",
    "Niccolò",
    "Ahmed",
    "Ion",
    "Francesco",
];
const NAMES_F: [&str; 8] = [
    "Giulia",
    "Francesca",
    "Sara",
    "Chiara",
    "Maria",
    "Fatima",
    "Elena",
    "Lucia",
];
const CITIZENSHIPS: [(&str, f64, &str); 8] = [
    ("ITA", 0.78, ""),
    ("ROU", 0.06, "Z129"),
    ("MAR", 0.04, "Z330"),
    ("ALB", 0.04, "Z100"),
    ("UKR", 0.03, "Z138"),
    ("CHN", 0.01, "Z210"),
    ("NGA", 0.02, "Z335"),
    ("PER", 0.02, "Z611"),
];
const BELFIORE_IT: [&str; 6] = ["L219", "D205", "A182", "F952", "G674", "H501"];

fn logistic(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn code_letters(word: &str, is_name: bool) -> String {
    let up: Vec<char> = word
        .to_uppercase()
        .chars()
        .filter(|c| c.is_ascii_alphabetic())
        .collect();
    let cons: Vec<char> = up
        .iter()
        .copied()
        .filter(|c| !"AEIOU".contains(*c))
        .collect();
    let vow: Vec<char> = up
        .iter()
        .copied()
        .filter(|c| "AEIOU".contains(*c))
        .collect();
    if is_name && cons.len() >= 4 {
        return [cons[0], cons[2], cons[3]].iter().collect();
    }
    cons.iter()
        .chain(vow.iter())
        .chain(['X', 'X', 'X'].iter())
        .take(3)
        .collect()
}

/// Planted effect of the inclusion path (GOL path 4, labour and social services together)
/// on the monthly log-odds of finding a job.
const INCLUSION_EFFECT: f64 = 0.4;
/// Share of persons with a disability or in social services' care whom the operator moves
/// to the inclusion path when the rules give another.
const OVERRIDE_RATE: f64 = 0.25;
/// Chance that an operator adjusts a GOL section score lying within 2 points of its
/// threshold.
const ADJUST_RATE: f64 = 0.35;
/// The planted opportunistic operator: the first operator of the second authority, who
/// from `from` on adjusts sections A and B near their thresholds at `rate` instead of
/// [`ADJUST_RATE`] (a sudden rise the annual report's audit of adjustments must flag).
struct Opportunist {
    tenant: usize,
    from: (i32, u32, u32),
    rate: f64,
}
const OPPORTUNIST: Opportunist = Opportunist {
    tenant: 1,
    from: (2025, 1, 1),
    rate: 0.9,
};
/// The planted declining operator: the first operator of the third authority, whose
/// persons taken in charge from `from` on find work with a monthly job-finding log-odds
/// `drop` lower than the operator's planted quality (a sudden fall in outcomes the
/// quarterly report's anomalies must list).
struct Decliner {
    tenant: usize,
    from: (i32, u32, u32),
    drop: f64,
}
const DECLINER: Decliner = Decliner {
    tenant: 2,
    from: (2025, 4, 1),
    drop: 1.2,
};
/// C + D scores over which the RDD truth is averaged: the two either side of 12.
const RD_WINDOW: (i32, i32) = (11, 12);

/// Choice probabilities of a multinomial logit.
fn propensities(util: &[f64; 4]) -> [f64; 4] {
    let ex = util.map(f64::exp);
    let tot: f64 = ex.iter().sum();
    ex.map(|e| e / tot)
}

/// Planted effect of a service on the monthly log-odds of finding a job.
fn service_effect(service: usize, low_education: bool, class: usize) -> f64 {
    match service {
        1 => 0.10 + if class >= 2 { 0.25 } else { 0.0 }, // counselling helps the fragile
        2 => 0.35 + if low_education { 0.30 } else { 0.0 }, // traineeships help the low-skilled most
        3 => 0.45 - if class == 3 { 0.35 } else { 0.0 },    // matching works for the job-ready
        _ => 0.0,
    }
}

/// P(employed t months after intake) with monthly hazard `h`, a permanent contract with
/// probability `perm`, otherwise a fixed term of 3, 6 or 12 months (equally likely).
fn p_employed(h: f64, perm: f64, t: u32) -> f64 {
    (1..=t)
        .map(|m| {
            let p_start = h * (1.0 - h).powi(m as i32 - 1);
            let left = t - m;
            let p_still = perm
                + (1.0 - perm) * [3u32, 6, 12].iter().filter(|&&d| d > left).count() as f64 / 3.0;
            p_start * p_still
        })
        .sum()
}

/// What a simulation wrote.
#[derive(Debug, Clone, Serialize)]
pub struct SimSummary {
    /// Tenant identifiers, each with a folder of CSV files.
    pub tenants: Vec<String>,
    /// Persons simulated.
    pub persons: usize,
    /// Rows written per table (all tenants, including dirty and duplicated rows).
    pub rows: BTreeMap<String, usize>,
    /// Rows planted as invalid or duplicate per table: what ingestion must quarantine.
    pub expected_quarantined: BTreeMap<String, usize>,
}

#[derive(Default, Clone, Copy, Serialize)]
struct DirtyCounts {
    bad_tax_code: usize,
    bad_date: usize,
    out_of_range: usize,
    duplicate: usize,
    bad_encoding: usize,
}

struct FileWriter {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
    /// Which fields may be corrupted as a date / out of range.
    date_cols: Vec<usize>,
    range_col: Option<(usize, &'static str)>,
    tax_col: Option<usize>,
    text_col: Option<usize>,
}

impl FileWriter {
    fn new(header: &[&str]) -> Self {
        FileWriter {
            header: header.iter().map(|s| s.to_string()).collect(),
            rows: Vec::new(),
            date_cols: vec![],
            range_col: None,
            tax_col: None,
            text_col: None,
        }
    }
    fn col(&self, name: &str) -> usize {
        self.header.iter().position(|h| h == name).unwrap_or(0)
    }
}

struct Style {
    sep: u8,
    latin1: bool,
    italian_dates: bool,
    decimal_comma: bool,
}

impl Style {
    fn date(&self, d: NaiveDate) -> String {
        if self.italian_dates {
            d.format("%d/%m/%Y").to_string()
        } else {
            d.format("%Y-%m-%d").to_string()
        }
    }
    fn num(&self, x: f64) -> String {
        let s = format!("{x:.2}");
        if self.decimal_comma {
            s.replace('.', ",")
        } else {
            s
        }
    }
}

fn write_file(
    path: &Path,
    w: &mut FileWriter,
    style: &Style,
    rate: f64,
    rng: &mut ChaCha8Rng,
) -> Result<(usize, DirtyCounts)> {
    let mut counts = DirtyCounts::default();
    let mut out_rows: Vec<(Vec<String>, bool)> = Vec::with_capacity(w.rows.len());
    for row in w.rows.drain(..) {
        let mut row = row;
        let mut latin1_row = false;
        if rate > 0.0 && rng.random::<f64>() < rate {
            match rng.random_range(0..5) {
                0 if w.tax_col.is_some() => {
                    let c = w.tax_col.unwrap_or(0);
                    row[c] = corrupt_check_character(&row[c]);
                    counts.bad_tax_code += 1;
                }
                1 if !w.date_cols.is_empty() => {
                    let c = w.date_cols[rng.random_range(0..w.date_cols.len())];
                    row[c] = if rng.random::<bool>() {
                        "2023-02-30".into()
                    } else {
                        "31/13/2023".into()
                    };
                    counts.bad_date += 1;
                }
                2 if w.range_col.is_some() => {
                    let (c, v) = w.range_col.unwrap_or((0, ""));
                    row[c] = v.to_string();
                    counts.out_of_range += 1;
                }
                3 => {
                    out_rows.push((row.clone(), false));
                    counts.duplicate += 1;
                }
                4 if w.text_col.is_some() && !style.latin1 => {
                    let c = w.text_col.unwrap_or(0);
                    row[c] = format!("{} – attività città", row[c]);
                    latin1_row = true;
                    counts.bad_encoding += 1;
                }
                _ => {}
            }
        }
        out_rows.push((row, latin1_row));
    }
    let mut wr = csv::WriterBuilder::new()
        .delimiter(style.sep)
        .from_path(path)
        .map_err(|e| Error::io(path, std::io::Error::other(e)))?;
    let enc = |s: &str, latin1: bool| -> Vec<u8> {
        if latin1 {
            s.chars()
                .map(|c| {
                    if (c as u32) < 256 {
                        c as u32 as u8
                    } else if c == '–' {
                        0x96
                    } else {
                        b'?'
                    }
                })
                .collect()
        } else {
            s.as_bytes().to_vec()
        }
    };
    let io = |e: csv::Error| Error::io(path, std::io::Error::other(e));
    wr.write_record(w.header.iter().map(|h| enc(h, style.latin1)))
        .map_err(io)?;
    let n = out_rows.len();
    for (row, latin1_row) in out_rows {
        wr.write_record(row.iter().map(|f| enc(f, style.latin1 || latin1_row)))
            .map_err(io)?;
    }
    wr.flush().map_err(|e| Error::io(path, e))?;
    Ok((n, counts))
}

/// Runs the simulation into `out` (one folder per tenant, plus the truth files).
pub fn simulate(cfg: &SimConfig, instruments: &Instruments, out: &Path) -> Result<SimSummary> {
    cfg.check()?;
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let normal = Normal::new(0.0, 1.0).map_err(|e| Error::Param {
        name: "normal",
        reason: e.to_string(),
    })?;
    let gol = &instruments.gol;
    let start = NaiveDate::from_ymd_opt(2023, 1, 1).unwrap_or_default();
    let window_days = (cfg.end - start).num_days();

    // Authorities, their municipalities, operators (with quality) and employers.
    struct Tenant {
        id: String,
        province: &'static str,
        municipalities: Vec<String>,
        operators: Vec<(String, f64)>,
        employers: Vec<String>,
        style: Style,
    }
    let mut tenants: Vec<Tenant> = (0..cfg.tenants)
        .map(|t| {
            let province = PROVINCES[t % PROVINCES.len()];
            // Eight real municipalities of the province (ISTAT's register), spread over it.
            let register = crate::territory::Territory::get().municipalities_of(province);
            let municipalities = (1..=8)
                .map(|m| {
                    register[(m * 7 + t / PROVINCES.len()) % register.len()]
                        .code
                        .clone()
                })
                .collect();
            let operators = (1..=5)
                .map(|o| {
                    (
                        format!("OP-{:02}-{o}", t + 1),
                        0.35 * normal.sample(&mut rng),
                    )
                })
                .collect();
            let employers = (0..60)
                .map(|_| make_temporary(rng.random_range(0..10_000_000u64) * 1000 + 1 + t as u64))
                .collect();
            let odd = t % 2 == 1;
            Tenant {
                id: format!("t{:02}", t + 1),
                province,
                municipalities,
                operators,
                employers,
                style: Style {
                    sep: if odd { b';' } else { b',' },
                    latin1: odd,
                    italian_dates: odd,
                    decimal_comma: odd,
                },
            }
        })
        .collect();

    // Class-conditional ASSO answer probabilities: classes differ by area.
    let area_level = [
        [0.85, 0.85, 0.80],
        [0.35, 0.70, 0.35],
        [0.55, 0.30, 0.55],
        [0.25, 0.25, 0.30],
    ];
    let isa_level = [
        [0.80; 5],
        [0.60, 0.70, 0.65, 0.55, 0.50],
        [0.45, 0.35, 0.45, 0.50, 0.55],
        [0.30, 0.30, 0.35, 0.35, 0.30],
    ];
    let gol_level = [
        [2.0, 3.0, 2.0, 2.0],
        [7.5, 9.0, 3.0, 2.5],
        [5.0, 6.0, 7.0, 6.0],
        [9.0, 10.0, 8.0, 7.5],
    ];
    let area_of = |i: usize| {
        if i <= 10 {
            0
        } else if i <= 18 {
            1
        } else {
            2
        }
    };

    let mut files: Vec<[FileWriter; 7]> = Vec::new();
    for _ in &tenants {
        let mut p = FileWriter::new(&[
            "codice_fiscale",
            "cognome",
            "nome",
            "anno_nascita",
            "sesso",
            "cittadinanza",
            "comune_istat",
            "titolo_studio",
            "disabilita_l68",
            "sostegno_reddito",
            "servizi_sociali",
            "data_presa_in_carico",
            "data_fine_presa_in_carico",
        ]);
        p.tax_col = Some(0);
        p.date_cols = vec![p.col("data_presa_in_carico")];
        p.range_col = Some((p.col("titolo_studio"), "11"));
        let mut asso_h = vec![
            "codice_fiscale".to_string(),
            "data".into(),
            "operatore".into(),
        ];
        asso_h.extend((1..=instruments.asso.n_items()).map(|i| instruments.asso.item_column(i)));
        let mut a = FileWriter::new(&asso_h.iter().map(String::as_str).collect::<Vec<_>>());
        a.tax_col = Some(0);
        a.date_cols = vec![1];
        a.range_col = Some((5, "9"));
        let mut isa_h = vec![
            "codice_fiscale".to_string(),
            "data".into(),
            "operatore".into(),
        ];
        isa_h.extend((1..=instruments.isa.n_items()).map(|i| instruments.isa.item_column(i)));
        let mut i = FileWriter::new(&isa_h.iter().map(String::as_str).collect::<Vec<_>>());
        i.tax_col = Some(0);
        i.date_cols = vec![1];
        i.range_col = Some((12, "0"));
        let mut gol_h = vec![
            "codice_fiscale".to_string(),
            "data".into(),
            "operatore".into(),
        ];
        for s in Section::ALL {
            gol_h.extend(gol.item_columns(s));
        }
        gol_h.extend([
            "sezione_rettifica".to_string(),
            "punti_rettifica".into(),
            "percorso".into(),
            "motivo_deroga".into(),
        ]);
        let mut g = FileWriter::new(&gol_h.iter().map(String::as_str).collect::<Vec<_>>());
        g.tax_col = Some(0);
        g.date_cols = vec![1];
        g.range_col = Some((4, "5"));
        let mut s = FileWriter::new(&[
            "codice_fiscale",
            "id_datore",
            "codice_servizio",
            "programma",
            "ente",
            "operatore",
            "data_inizio",
            "data_fine",
            "ore",
            "costo",
            "finanziamento",
            "esito",
        ]);
        s.tax_col = None; // B services have no person; corruption of A rows is counted below
        s.date_cols = vec![6];
        s.range_col = Some((8, "-5"));
        s.text_col = Some(4);
        let mut e = FileWriter::new(&[
            "codice_fiscale",
            "data_inizio",
            "data_fine",
            "tipo_contratto",
            "ateco",
            "professione",
            "id_datore",
            "comune_lavoro",
        ]);
        e.tax_col = Some(0);
        e.date_cols = vec![1];
        e.range_col = Some((3, "stagionale"));
        let mut v = FileWriter::new(&[
            "id_datore",
            "data",
            "professione",
            "ateco",
            "comune",
            "numero",
        ]);
        v.date_cols = vec![1];
        v.range_col = Some((5, "0"));
        files.push([p, a, i, g, s, e, v]);
    }

    #[derive(Serialize)]
    struct PersonTruth {
        tax_code: String,
        tenant: String,
        class: usize,
        service: &'static str,
        operator: String,
        propensity: [f64; 4],
        p_employed_6: [f64; 4],
        p_employed_12: [f64; 4],
        months_observed: i64,
        /// What an evaluation observes: the covariates the service assignment uses.
        observed: [f64; 9],
        /// Realised: employed 6 and 12 months after intake (from the drawn job spell,
        /// whether or not the export window shows it).
        employed: [bool; 2],
    }
    let mut truth_people: Vec<PersonTruth> = Vec::with_capacity(cfg.persons);
    // No opportunist in a one-authority simulation: its second authority does not exist.
    let opportunist: String = tenants
        .get(OPPORTUNIST.tenant)
        .map(|t| t.operators[0].0.clone())
        .unwrap_or_default();
    let opportunist_from =
        NaiveDate::from_ymd_opt(OPPORTUNIST.from.0, OPPORTUNIST.from.1, OPPORTUNIST.from.2)
            .unwrap_or_default();
    let decliner: String = tenants
        .get(DECLINER.tenant)
        .map(|t| t.operators[0].0.clone())
        .unwrap_or_default();
    let decliner_from = NaiveDate::from_ymd_opt(DECLINER.from.0, DECLINER.from.1, DECLINER.from.2)
        .unwrap_or_default();
    let mut used_codes: HashSet<String> = HashSet::new();
    let mut class_counts = [0usize; 4];
    let mut path_counts = [0usize; 4];
    // Σ complier weight × effect (6 and 12 months), Σ complier weight; persons counted.
    let mut rd_truth = [(0.0f64, 0.0f64); 2];
    let mut rd_at_cutoff = 0usize;

    for n in 0..cfg.persons {
        let ti = n % cfg.tenants;
        let (tenant_id, municipality, (operator, quality)) = {
            let t = &tenants[ti];
            let m = t.municipalities[rng.random_range(0..t.municipalities.len())].clone();
            let op = t.operators[rng.random_range(0..t.operators.len())].clone();
            (t.id.clone(), m, op)
        };
        let female = rng.random::<bool>();
        let age: i32 = rng.random_range(18..=64);
        let intake = start + chrono::Duration::days(rng.random_range(0..window_days));
        let decline = if operator == decliner && intake >= decliner_from {
            DECLINER.drop
        } else {
            0.0
        };
        let birth_year = intake.year() - age;
        let mut u = rng.random::<f64>();
        let (citizenship, foreign_place) = CITIZENSHIPS
            .iter()
            .find(|(_, p, _)| {
                u -= p;
                u < 0.0
            })
            .map(|(c, _, b)| (*c, *b))
            .unwrap_or(("ITA", ""));
        let education: i64 = {
            let base = if citizenship == "ITA" { 3.0 } else { 2.2 };
            (base + 1.4 * normal.sample(&mut rng))
                .round()
                .clamp(0.0, 8.0) as i64
        };
        // Latent class: multinomial logit on education, citizenship, age.
        let util = [
            0.4 * (education as f64 - 3.0),
            -0.3 * (education as f64 - 3.0) + 0.2,
            if citizenship != "ITA" { 0.4 } else { 0.0 } + 0.01 * (age as f64 - 40.0),
            -0.2 * (education as f64 - 3.0) - 0.5 + 0.02 * (age as f64 - 40.0),
        ];
        let class = {
            let ex: Vec<f64> = util.iter().map(|u| u.exp()).collect();
            let tot: f64 = ex.iter().sum();
            let mut r = rng.random::<f64>() * tot;
            ex.iter()
                .position(|e| {
                    r -= e;
                    r < 0.0
                })
                .unwrap_or(3)
        };
        class_counts[class] += 1;
        let disability = rng.random::<f64>() < [0.03, 0.05, 0.10, 0.15][class];
        let income_support = rng.random::<f64>() < [0.15, 0.35, 0.45, 0.60][class];
        let social_care = rng.random::<f64>() < [0.05, 0.10, 0.55, 0.60][class];
        let exit = if rng.random::<f64>() < 0.35 {
            Some(intake + chrono::Duration::days(rng.random_range(90..720)))
                .filter(|d| *d <= cfg.end)
        } else {
            None
        };

        // Tax code, unique (a clash gets omocodia, as the Agency does).
        let surname = SURNAMES[rng.random_range(0..SURNAMES.len())];
        let name = if female {
            NAMES_F[rng.random_range(0..8)]
        } else {
            NAMES_M[rng.random_range(0..8)]
        };
        let place = if foreign_place.is_empty() {
            BELFIORE_IT[rng.random_range(0..BELFIORE_IT.len())]
        } else {
            foreign_place
        };
        let (month, day) = (rng.random_range(1..=12u8), rng.random_range(1..=28u8));
        let (surname_code, name_code) = (code_letters(surname, false), code_letters(name, true));
        let personal = |level: u8| {
            make_personal(
                &surname_code,
                &name_code,
                (birth_year % 100) as u8,
                month,
                day,
                female,
                place,
                level,
            )
        };
        let mut code = if rng.random::<f64>() < 0.01 {
            make_temporary(rng.random_range(0..10_000_000_000u64))
        } else {
            personal(0)
        };
        let mut level = 0;
        while used_codes.contains(&code) {
            level += 1;
            code = if code.len() == 11 || level > 7 {
                make_temporary(rng.random_range(0..10_000_000_000u64))
            } else {
                personal(level)
            };
        }
        used_codes.insert(code.clone());

        let st = &tenants[ti].style;
        let fw = &mut files[ti];
        fw[0].rows.push(vec![
            code.clone(),
            surname.into(),
            name.into(),
            birth_year.to_string(),
            if female { "F".into() } else { "M".into() },
            citizenship.into(),
            municipality.clone(),
            education.to_string(),
            if disability {
                "sì".into()
            } else {
                "no".into()
            },
            if income_support {
                "sì".into()
            } else {
                "no".into()
            },
            if social_care {
                "sì".into()
            } else {
                "no".into()
            },
            st.date(intake),
            exit.map(|d| st.date(d)).unwrap_or_default(),
        ]);

        // ASSO at intake.
        let asso_date = intake + chrono::Duration::days(rng.random_range(0..14));
        let mut row = vec![code.clone(), st.date(asso_date), operator.clone()];
        for i in 1..=instruments.asso.n_items() {
            let p = area_level[class][area_of(i)];
            let x = (1.0 + 3.0 * p + 0.8 * normal.sample(&mut rng))
                .round()
                .clamp(1.0, 4.0) as i64;
            row.push(if rng.random::<f64>() < 0.02 {
                String::new()
            } else {
                x.to_string()
            });
        }
        fw[1].rows.push(row);

        // GOL assessment.
        let gol_date = intake + chrono::Duration::days(rng.random_range(0..21));
        let mut items: Vec<Vec<i64>> = Vec::new();
        for (s, lvl) in gol_level[class].iter().enumerate() {
            let sev = lvl
                + 1.5 * normal.sample(&mut rng)
                + if s == 0 {
                    0.4 * (3.0 - education as f64)
                } else {
                    0.0
                }
                + if s == 1 && citizenship != "ITA" {
                    1.5
                } else {
                    0.0
                };
            let per = (sev / 5.0).clamp(0.0, 3.0);
            items.push(
                (0..5)
                    .map(|_| {
                        (per + 0.6 * normal.sample(&mut rng))
                            .round()
                            .clamp(0.0, 3.0) as i64
                    })
                    .collect(),
            );
        }
        let c_raw: i64 = items[2].iter().sum();
        let mut adjust: Option<(&str, i64)> = None;
        let near = |v: i64, thr: i64| (v - thr).abs() <= 2;
        let sums: Vec<i64> = items.iter().map(|v| v.iter().sum()).collect();
        // The operator nudges a score towards or across its threshold by 1–3 points.
        let nudge = |rng: &mut ChaCha8Rng, v: i64, thr: i64| {
            if v < thr {
                rng.random_range(1..=3)
            } else {
                -rng.random_range(1..=3)
            }
        };
        let u_adjust = rng.random::<f64>();
        if u_adjust < ADJUST_RATE {
            if near(sums[0], 7) {
                adjust = Some(("A", nudge(&mut rng, sums[0], 7)));
            } else if near(sums[1], 8) {
                adjust = Some(("B", nudge(&mut rng, sums[1], 8)));
            } else if near(c_raw, 6) {
                adjust = Some(("C", nudge(&mut rng, c_raw, 6)));
            }
        } else if u_adjust < OPPORTUNIST.rate
            && operator == opportunist
            && gol_date >= opportunist_from
        {
            // The planted opportunist's extra adjustments draw from their own stream, so
            // every other person of the simulation is the same with or without them; only
            // sections A and B, so the C + D running variable of the inclusion path's
            // discontinuity is not manipulated.
            let mut side =
                ChaCha8Rng::seed_from_u64(cfg.seed ^ (n as u64).wrapping_mul(0x9e37_79b9));
            if near(sums[0], 7) {
                adjust = Some(("A", nudge(&mut side, sums[0], 7)));
            } else if near(sums[1], 8) {
                adjust = Some(("B", nudge(&mut side, sums[1], 8)));
            }
        }
        let c_adj = c_raw + adjust.filter(|a| a.0 == "C").map_or(0, |a| a.1);
        let d_asked = c_adj >= 6;
        let answers = GolAnswers::from_section_scores(
            sums[0] as i32,
            sums[1] as i32,
            sums[2] as i32,
            d_asked.then_some(sums[3] as i32),
        );
        let adj = adjust
            .map(|(t, p)| gol.adjustment(t, p))
            .transpose()
            .map_err(|e| Error::Param {
                name: "adjustment",
                reason: e.to_string(),
            })?;
        let outcome = gol.assess(&answers, adj).map_err(|e| Error::Param {
            name: "gol",
            reason: e.to_string(),
        })?;
        let system = outcome.system_path.number();
        let (path, reason) =
            if (disability || social_care) && system != 4 && rng.random::<f64>() < OVERRIDE_RATE {
                (
                    4u8,
                    if disability {
                        "disabilita_l68"
                    } else {
                        "servizi_sociali"
                    },
                )
            } else {
                (system, "")
            };
        path_counts[path as usize - 1] += 1;
        let mut row = vec![code.clone(), st.date(gol_date), operator.clone()];
        for (s, its) in items.iter().enumerate() {
            for x in its {
                row.push(if s == 3 && !d_asked {
                    String::new()
                } else {
                    x.to_string()
                });
            }
        }
        row.extend([
            adjust.map(|a| a.0.to_string()).unwrap_or_default(),
            adjust.map(|a| a.1.to_string()).unwrap_or_default(),
            path.to_string(),
            reason.to_string(),
        ]);
        fw[3].rows.push(row);

        // Main service: multinomial logit on observed covariates only.
        let low_edu = education <= 2;
        let (a_s, b_s, c_s) = (
            outcome.adjusted[0] as f64,
            outcome.adjusted[1] as f64,
            outcome.adjusted_cd as f64,
        );
        let utility = |path: u8| {
            [
                0.0,
                -1.2 + 0.9 * (path == 4) as u8 as f64 + 0.05 * c_s + 0.4 * social_care as u8 as f64,
                -1.0 + 0.8 * (path == 3 || path == 2) as u8 as f64 + 0.06 * b_s
                    - 0.02 * (age as f64 - 35.0)
                    + 0.3 * low_edu as u8 as f64,
                -0.6 + 0.7 * (path == 1) as u8 as f64 - 0.05 * a_s
                    + 0.2 * (citizenship == "ITA") as u8 as f64
                    - 0.3 * disability as u8 as f64,
            ]
        };
        let util = utility(path);
        let propensity = propensities(&util);
        let mut r = rng.random::<f64>();
        let service = propensity
            .iter()
            .position(|p| {
                r -= p;
                r < 0.0
            })
            .unwrap_or(0);

        // Outcomes: monthly hazard with planted effects, exact potential-outcome probabilities.
        let base = -2.4 + [0.6, -0.2, -0.4, -1.0][class] + 0.08 * (education as f64 - 3.0)
            - 0.02 * (age as f64 - 40.0)
            - 0.4 * disability as u8 as f64
            + quality
            - decline;
        let eta0 = base + if path == 4 { INCLUSION_EFFECT } else { 0.0 };
        let perm = [0.35, 0.2, 0.2, 0.15][class];
        // The inclusion path's effect for this person: employment with the path the rules
        // give at C + D ≥ 12 (4) against the path they give just below (1 + the A and B
        // flags), services chosen under each; what a fuzzy RDD at the threshold recovers
        // for the compliers (persons no override would move to path 4 anyway).
        if (RD_WINDOW.0..=RD_WINDOW.1).contains(&outcome.adjusted_cd) {
            let below = 1 + u8::from(outcome.flags[0]) + u8::from(outcome.flags[1]);
            let world = |p: u8, eta: f64, t: u32| -> f64 {
                let ps = propensities(&utility(p));
                (0..4)
                    .map(|s| {
                        ps[s]
                            * p_employed(logistic(eta + service_effect(s, low_edu, class)), perm, t)
                    })
                    .sum()
            };
            let complier = 1.0
                - if disability || social_care {
                    OVERRIDE_RATE
                } else {
                    0.0
                };
            for (k, t) in [6u32, 12].into_iter().enumerate() {
                rd_truth[k].0 +=
                    complier * (world(4, base + INCLUSION_EFFECT, t) - world(below, base, t));
            }
            rd_truth[0].1 += complier;
            rd_at_cutoff += 1;
        }
        let mut p6 = [0.0; 4];
        let mut p12 = [0.0; 4];
        for s in 0..4 {
            let h = logistic(eta0 + service_effect(s, low_edu, class));
            p6[s] = p_employed(h, perm, 6);
            p12[s] = p_employed(h, perm, 12);
        }
        let months_observed = ((cfg.end - intake).num_days() / 30).max(0);
        truth_people.push(PersonTruth {
            tax_code: code.clone(),
            tenant: tenant_id.clone(),
            class,
            service: SERVICES[service],
            operator: operator.clone(),
            propensity,
            p_employed_6: p6,
            p_employed_12: p12,
            months_observed,
            observed: [
                age as f64,
                f64::from(low_edu),
                f64::from(citizenship == "ITA"),
                f64::from(disability),
                f64::from(social_care),
                f64::from(path),
                a_s,
                b_s,
                c_s,
            ],
            employed: [false, false],
        });

        // Services: A.1 and A.2 for everyone, A.3 for most, then the main service.
        let t = &tenants[ti];
        let provider = format!("Centro per l'impiego {}", t.province);
        let svc = |code_s: &str,
                   start_d: NaiveDate,
                   days: i64,
                   hours: f64,
                   cost: f64,
                   outcome_s: &str|
         -> Vec<String> {
            vec![
                code.clone(),
                String::new(),
                code_s.into(),
                "GOL".into(),
                provider.clone(),
                operator.clone(),
                st.date(start_d),
                st.date(start_d + chrono::Duration::days(days)),
                st.num(hours),
                st.num(cost),
                "PNRR".into(),
                outcome_s.into(),
            ]
        };
        fw[4]
            .rows
            .push(svc("A.1", intake, 0, 1.0, 0.0, "informato"));
        fw[4].rows.push(svc(
            "A.2",
            intake + chrono::Duration::days(rng.random_range(0..7)),
            0,
            2.0,
            0.0,
            if rng.random::<f64>() < 0.92 {
                "patto_firmato"
            } else {
                ""
            },
        ));
        if service > 0 || rng.random::<f64>() < 0.5 {
            let signed = rng.random::<f64>() < 0.9;
            fw[4].rows.push(svc(
                "A.3",
                intake + chrono::Duration::days(rng.random_range(7..30)),
                14,
                4.0,
                140.0,
                if signed {
                    "pai_firmato"
                } else {
                    "pai_non_firmato"
                },
            ));
            if signed && (path == 2 || path == 3) && rng.random::<f64>() < 0.5 {
                let stage = [
                    "inviato_formazione",
                    "iscritto_formazione",
                    "formazione_completata",
                ][rng.random_range(0..3)];
                fw[4].rows.push(svc(
                    "A.3",
                    intake + chrono::Duration::days(rng.random_range(30..60)),
                    60,
                    2.0,
                    70.0,
                    stage,
                ));
            }
        }
        if service > 0 {
            let s0 = intake + chrono::Duration::days(rng.random_range(15..60));
            let (hours, cost, oc) = match service {
                1 => (rng.random_range(4.0..10.0), 300.0, ""),
                2 => (
                    rng.random_range(80.0..400.0),
                    2500.0,
                    if rng.random::<f64>() < 0.6 {
                        "tirocinio_avviato"
                    } else {
                        ""
                    },
                ),
                _ => (
                    rng.random_range(2.0..8.0),
                    400.0,
                    if rng.random::<bool>() {
                        "preselezionato"
                    } else {
                        "inviato_colloquio"
                    },
                ),
            };
            fw[4].rows.push(svc(
                SERVICES[service],
                s0,
                if service == 2 { 120 } else { 30 },
                hours,
                cost,
                oc,
            ));
        }

        // Employment: job-start month M ~ geometric(h), then a spell.
        // The months are drawn at the hazard without the planted decline, so that every
        // other person draws the same numbers; the declining operator's persons then keep
        // each month's job with the ratio of the two hazards, from their own stream, and
        // search on at the lower hazard when it is not kept (a thinned Bernoulli process:
        // exactly geometric at the lower hazard).
        let h_drawn = logistic(eta0 + decline + service_effect(service, low_edu, class));
        let mut m = 1;
        while m <= 36 && rng.random::<f64>() >= h_drawn {
            m += 1;
        }
        let drawn = m;
        if decline > 0.0 && m <= 36 {
            let h = logistic(eta0 + service_effect(service, low_edu, class));
            let mut side = ChaCha8Rng::seed_from_u64(
                cfg.seed ^ (n as u64).wrapping_mul(0x85eb_ca6b_c2b2_ae35),
            );
            if side.random::<f64>() >= h / h_drawn {
                m += 1;
                while m <= 36 && side.random::<f64>() >= h {
                    m += 1;
                }
            }
        }
        if drawn <= 36 {
            // The spell's length is drawn below; record the outcomes once it is known.
            let outcome_at = |perm_job: bool, dur: u32, t: u32| m <= t && (perm_job || m + dur > t);
            let day = chrono::Duration::days(rng.random_range(0..28));
            let start_of = |months: u32| {
                intake
                    .checked_add_months(Months::new(months))
                    .unwrap_or(intake)
                    - day
            };
            let job_start = start_of(m);
            // Whether the job is recorded: the decline only delays it (m ≥ drawn).
            let kept = m <= 36 && job_start <= cfg.end;
            if start_of(drawn) <= cfg.end {
                let permanent = rng.random::<f64>() < perm;
                let dur = [3u32, 6, 12][rng.random_range(0..3)];
                if let Some(p) = truth_people.last_mut().filter(|_| kept) {
                    p.employed = [
                        outcome_at(permanent, dur, 6),
                        outcome_at(permanent, dur, 12),
                    ];
                }
                let end = (!permanent)
                    .then(|| {
                        job_start
                            .checked_add_months(Months::new(dur))
                            .unwrap_or(job_start)
                    })
                    .filter(|d| *d <= cfg.end);
                let contract = if permanent {
                    "indeterminato"
                } else {
                    [
                        "determinato",
                        "determinato",
                        "apprendistato",
                        "somministrazione",
                    ][rng.random_range(0..4)]
                };
                let si = rng.random_range(0..SECTORS.len());
                let employer = t.employers[rng.random_range(0..t.employers.len())].clone();
                if kept {
                    fw[5].rows.push(vec![
                        code.clone(),
                        st.date(job_start),
                        end.map(|d| st.date(d)).unwrap_or_default(),
                        contract.into(),
                        SECTORS[si].into(),
                        OCCUPATIONS[si].into(),
                        employer,
                        municipality.clone(),
                    ]);
                    if service == 3 {
                        fw[4]
                            .rows
                            .push(svc("A.6", job_start, 0, 1.0, 0.0, "assunto"));
                    }
                }
            }
        }

        // ISA at intake and, when observed, six months later (improving with services).
        for (k, months) in [(0u32, 0u32), (1, 6)] {
            let d = intake
                .checked_add_months(Months::new(months))
                .unwrap_or(intake)
                + chrono::Duration::days(rng.random_range(0..14));
            if d > cfg.end {
                continue;
            }
            let mut row = vec![code.clone(), st.date(d), operator.clone()];
            for i in 1..=instruments.isa.n_items() {
                let lvl =
                    isa_level[class][(i - 1) / 10] + if k == 1 && service > 0 { 0.08 } else { 0.0 };
                let x = (1.0 + 4.0 * lvl + 0.9 * normal.sample(&mut rng))
                    .round()
                    .clamp(1.0, 5.0) as i64;
                row.push(x.to_string());
            }
            fw[2].rows.push(row);
        }
    }

    // Employer services (B.1–B.4).
    for (ti, t) in tenants.iter().enumerate() {
        let st = &t.style;
        for e in &t.employers {
            // Outcomes follow the funnel of the standards: contacted → needs → pact →
            // profiles → vacancy; matching → declared → hired.
            for (code_s, outcomes) in [
                ("B.1", &["fabbisogno_espresso"][..]),
                (
                    "B.2",
                    &["patto_azienda", "profili_richiesti", "vacancy_registrata"][..],
                ),
                ("B.3", &[][..]),
                (
                    "B.4",
                    &["candidati_proposti", "disponibile_assumere", "assunto"][..],
                ),
            ] {
                if rng.random::<f64>() < 0.5 {
                    let d = start + chrono::Duration::days(rng.random_range(0..window_days));
                    files[ti][4].rows.push(vec![
                        String::new(),
                        e.clone(),
                        code_s.into(),
                        "GOL".into(),
                        format!("Centro per l'impiego {}", t.province),
                        t.operators[0].0.clone(),
                        st.date(d),
                        st.date(d),
                        st.num(2.0),
                        st.num(0.0),
                        "PNRR".into(),
                        if !outcomes.is_empty() && rng.random::<bool>() {
                            outcomes[rng.random_range(0..outcomes.len())].to_string()
                        } else {
                            String::new()
                        },
                    ]);
                }
            }
        }
    }

    // Labour demand: monthly hires by sector × province since 2019, with trend and seasonality.
    #[derive(Serialize)]
    struct DemandTruth {
        province: String,
        sector: String,
        level: f64,
        annual_growth: f64,
        seasonal: [f64; 12],
        noise_cv: f64,
        monthly_mean: BTreeMap<String, f64>,
    }
    let demand_start = NaiveDate::from_ymd_opt(2019, 1, 1).unwrap_or_default();
    let months_total = (cfg.end.year() - 2019) * 12 + cfg.end.month() as i32;
    let noise_shape = 40.0;
    let gamma = Gamma::new(noise_shape, 1.0 / noise_shape).map_err(|e| Error::Param {
        name: "gamma",
        reason: e.to_string(),
    })?;
    let mut demand = Vec::new();
    // Monthly hires by province and sector, as a regional labour observatory publishes
    // them from the compulsory notices (the long table `occupa forecast` reads).
    let mut monthly: BTreeMap<(String, String, String, &str), i64> = BTreeMap::new();
    for (ti, t) in tenants.iter_mut().enumerate() {
        let mut agg: HashMap<(String, NaiveDate, usize, String), i64> = HashMap::new();
        for (si, sector) in SECTORS.iter().enumerate() {
            let level = 20.0 + 60.0 * rng.random::<f64>();
            let growth = 0.06 * normal.sample(&mut rng);
            let amp = [0.6, 0.1, 0.25, 0.1, 0.1, 0.7, 0.15, 0.05][si];
            let peak = [5.0, 2.0, 4.0, 10.0, 9.0, 6.0, 3.0, 0.0][si];
            let seasonal: [f64; 12] = std::array::from_fn(|m| {
                1.0 + amp * ((m as f64 - peak) * std::f64::consts::PI / 6.0).cos()
            });
            let mean_s: f64 = seasonal.iter().sum::<f64>() / 12.0;
            let seasonal = seasonal.map(|x| x / mean_s);
            let mut monthly_mean = BTreeMap::new();
            for k in 0..(months_total + 12) {
                let d = demand_start
                    .checked_add_months(Months::new(k as u32))
                    .unwrap_or(demand_start);
                let mu =
                    level * (1.0 + growth).powf(k as f64 / 12.0) * seasonal[d.month0() as usize];
                monthly_mean.insert(d.format("%Y-%m").to_string(), mu);
                if k >= months_total {
                    continue; // the future: truth only
                }
                let lam = mu * gamma.sample(&mut rng);
                let y = Poisson::new(lam.max(1e-9))
                    .map(|p| p.sample(&mut rng) as i64)
                    .unwrap_or(0);
                *monthly
                    .entry((
                        d.format("%Y-%m").to_string(),
                        t.province.to_string(),
                        String::new(),
                        sector,
                    ))
                    .or_insert(0) += y;
                let mut left = y;
                while left > 0 {
                    let c = left.min(rng.random_range(1..=4));
                    let e = t.employers[rng.random_range(0..t.employers.len())].clone();
                    let day = d + chrono::Duration::days(rng.random_range(0..28));
                    let mun = rng.random_range(0..t.municipalities.len());
                    *agg.entry((e, day, si, t.municipalities[mun].clone()))
                        .or_insert(0) += c;
                    left -= c;
                }
            }
            demand.push(DemandTruth {
                province: t.province.to_string(),
                sector: sector.to_string(),
                level,
                annual_growth: growth,
                seasonal,
                noise_cv: 1.0 / noise_shape.sqrt(),
                monthly_mean,
            });
        }
        let mut rows: Vec<_> = agg.into_iter().collect();
        rows.sort();
        for ((e, day, si, mun), c) in rows {
            files[ti][6].rows.push(vec![
                e,
                t.style.date(day),
                OCCUPATIONS[si].into(),
                SECTORS[si].into(),
                mun,
                c.to_string(),
            ]);
        }
    }

    // Write files, dirty where asked.
    let names = [
        "persons",
        "asso",
        "isa",
        "gol",
        "services",
        "employment",
        "vacancies",
    ];
    let mut rows_written: BTreeMap<String, usize> = BTreeMap::new();
    let mut expected_q: BTreeMap<String, usize> = BTreeMap::new();
    let mut dirty: BTreeMap<String, BTreeMap<String, DirtyCounts>> = BTreeMap::new();
    for (ti, t) in tenants.iter().enumerate() {
        let dir = out.join(&t.id);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        for (k, fw) in files[ti].iter_mut().enumerate() {
            let path = dir.join(format!("{}.csv", names[k]));
            let (n, c) = write_file(&path, fw, &t.style, cfg.dirty_rate, &mut rng)?;
            *rows_written.entry(names[k].into()).or_insert(0) += n;
            *expected_q.entry(names[k].into()).or_insert(0) +=
                c.bad_tax_code + c.bad_date + c.out_of_range + c.duplicate;
            dirty
                .entry(t.id.clone())
                .or_default()
                .insert(names[k].into(), c);
        }
    }

    // Truth: exact expectations over the simulated people.
    let mut effects = BTreeMap::new();
    for (s, name) in SERVICES.iter().enumerate().skip(1) {
        let all = truth_people.len() as f64;
        let treated: Vec<&PersonTruth> =
            truth_people.iter().filter(|p| p.service == *name).collect();
        let ate = |h: fn(&PersonTruth) -> [f64; 4]| {
            truth_people.iter().map(|p| h(p)[s] - h(p)[0]).sum::<f64>() / all
        };
        let att = |h: fn(&PersonTruth) -> [f64; 4]| {
            treated.iter().map(|p| h(p)[s] - h(p)[0]).sum::<f64>() / treated.len().max(1) as f64
        };
        effects.insert(
            name.to_string(),
            serde_json::json!({
                "versus": "none",
                "n_treated": treated.len(),
                "ate_employed_6m": ate(|p| p.p_employed_6),
                "ate_employed_12m": ate(|p| p.p_employed_12),
                "att_employed_6m": att(|p| p.p_employed_6),
                "att_employed_12m": att(|p| p.p_employed_12),
                "log_odds_effect": {
                    "base": service_effect(s, false, 0),
                    "low_education_extra": service_effect(s, true, 0) - service_effect(s, false, 0),
                    "by_class": (0..4).map(|k| service_effect(s, false, k)).collect::<Vec<_>>(),
                },
            }),
        );
    }
    let w = rd_truth[0].1.max(f64::MIN_POSITIVE);
    let inclusion = serde_json::json!({
        "log_odds_effect": INCLUSION_EFFECT,
        "running": "gol_cd (C + D after the adjustment)",
        "cutoff": 12,
        "treatment": "final GOL path 4 (inclusion); below the cutoff, persons with a disability or in social services' care are moved to it with probability 0.25",
        "late_window": [RD_WINDOW.0, RD_WINDOW.1],
        "persons_in_window": rd_at_cutoff,
        "late_employed_6m": rd_truth[0].0 / w,
        "late_employed_12m": rd_truth[1].0 / w,
        "note": "the compliers' average effect of the path at the cutoff (C + D of 11 or 12), services chosen under each path: what a fuzzy RDD of employment on gol_cd at 12, with path 4 as the treatment, recovers",
    });
    let operators: BTreeMap<String, f64> = tenants
        .iter()
        .flat_map(|t| t.operators.iter().cloned())
        .collect();
    let truth = serde_json::json!({
        "generator": "occupa simulate",
        "seed": cfg.seed,
        "persons": cfg.persons,
        "tenants": tenants.iter().map(|t| serde_json::json!({"id": t.id, "province": t.province, "municipalities": t.municipalities,
            "csv_separator": (t.style.sep as char).to_string(), "encoding": if t.style.latin1 { "windows-1252" } else { "utf-8" }})).collect::<Vec<_>>(),
        "observation_window": {"intake_from": start.to_string(), "end": cfg.end.to_string(),
            "note": "employment outcomes after `end` are not observed; evaluate on persons with months_observed >= 12"},
        "classes": {"names": CLASS_NAMES, "counts": class_counts,
            "asso_area_level": area_level, "isa_dimension_level": isa_level, "gol_section_severity": gol_level},
        "gol_paths": {"counts_final": path_counts, "instrument_version": gol.version},
        "service_assignment": "multinomial logit on observed covariates: age, education, citizenship, disability, social-services care, GOL adjusted scores and final path",
        "effects": effects,
        "inclusion_path": inclusion,
        "operator_quality_log_odds": operators,
        "opportunistic_operator": (!opportunist.is_empty()).then(|| serde_json::json!({
            "operator": opportunist,
            "from": opportunist_from.to_string(),
            "adjust_rate_near_threshold": OPPORTUNIST.rate,
            "usual_rate": ADJUST_RATE,
            "note": "from `from` on, this operator adjusts GOL sections A and B within 2 points of their thresholds at the planted rate instead of the usual one; section C is never touched",
        })),
        "declining_operator": (!decliner.is_empty()).then(|| serde_json::json!({
            "operator": decliner,
            "from": decliner_from.to_string(),
            "drop_log_odds": DECLINER.drop,
            "note": "the persons this operator takes in charge from `from` on find work with a monthly log-odds lower by `drop_log_odds` than its planted quality (operator_quality_log_odds gives it before)",
        })),
        "profiling": {
            "outcome": "employed 12 (or 6) months after taking charge, as the analysis table's employed_12m (employed_6m)",
            "exact_probability": "truth-persons.csv p12_marginal (p6_marginal): the sum over services of the person's service propensity times the probability of being employed with that service; the realised outcome is one draw from it",
            "target": "a profiling logit's coefficients recover the maximum of the expected log-likelihood under these exact probabilities, on the same persons and covariates (the model is an approximation: the truth is a monthly hazard, not a logit)",
            "monthly_hazard_log_odds": {
                "intercept": -2.4, "class": [0.6, -0.2, -0.4, -1.0], "education_per_level_from_3": 0.08,
                "age_per_year_from_40": -0.02, "disability": -0.4, "sex": 0.0, "citizenship": 0.0,
                "inclusion_path": INCLUSION_EFFECT, "operator_quality": "operator_quality_log_odds",
            },
            "permanent_contract_share_by_class": [0.35, 0.2, 0.2, 0.15],
        },
        "demand": demand,
        "dirty": {"rate": cfg.dirty_rate, "by_tenant": dirty, "expected_quarantined": expected_q},
    });
    let hp = out.join("hires.csv");
    {
        let territory = crate::territory::Territory::get();
        let mut w =
            csv::Writer::from_path(&hp).map_err(|e| Error::io(&hp, std::io::Error::other(e)))?;
        let io = |e: csv::Error| Error::io(&hp, std::io::Error::other(e));
        w.write_record(["mese", "provincia", "regione", "settore", "assunzioni"])
            .map_err(io)?;
        for ((month, province, _, sector), y) in &monthly {
            let (p_name, r_name) = territory
                .province(province)
                .map(|p| {
                    let r = territory
                        .region(&p.region_code)
                        .map_or(p.region_code.clone(), |r| r.name.clone());
                    (p.name.clone(), r)
                })
                .unwrap_or_else(|| (province.clone(), String::new()));
            w.write_record([month.as_str(), &p_name, &r_name, sector, &y.to_string()])
                .map_err(io)?;
        }
        w.flush().map_err(|e| Error::io(&hp, e))?;
    }
    let tp = out.join("truth.json");
    std::fs::write(&tp, serde_json::to_vec_pretty(&truth)?).map_err(|e| Error::io(&tp, e))?;
    let pp = out.join("truth-persons.csv");
    let mut w =
        csv::Writer::from_path(&pp).map_err(|e| Error::io(&pp, std::io::Error::other(e)))?;
    let io = |e: csv::Error| Error::io(&pp, std::io::Error::other(e));
    w.write_record([
        "tax_code",
        "tenant",
        "class",
        "service",
        "operator",
        "ps_none",
        "ps_a4",
        "ps_a5",
        "ps_a6",
        "p6_none",
        "p6_a4",
        "p6_a5",
        "p6_a6",
        "p12_none",
        "p12_a4",
        "p12_a5",
        "p12_a6",
        "p6_marginal",
        "p12_marginal",
        "months_observed",
        "age",
        "low_education",
        "italian",
        "disability",
        "social_care",
        "gol_path",
        "gol_a",
        "gol_b",
        "gol_cd",
        "employed_6m",
        "employed_12m",
    ])
    .map_err(io)?;
    for p in &truth_people {
        let mut rec = vec![
            p.tax_code.clone(),
            p.tenant.clone(),
            p.class.to_string(),
            p.service.to_string(),
            p.operator.clone(),
        ];
        rec.extend(
            p.propensity
                .iter()
                .chain(&p.p_employed_6)
                .chain(&p.p_employed_12)
                .map(|x| format!("{x:.6}")),
        );
        // What a profiling model estimates: employment whatever service follows.
        for probs in [&p.p_employed_6, &p.p_employed_12] {
            let m: f64 = p
                .propensity
                .iter()
                .zip(probs.iter())
                .map(|(a, b)| a * b)
                .sum();
            rec.push(format!("{m:.9}"));
        }
        rec.push(p.months_observed.to_string());
        rec.extend(p.observed.iter().map(|v| v.to_string()));
        rec.extend(p.employed.iter().map(|&e| u8::from(e).to_string()));
        w.write_record(rec).map_err(io)?;
    }
    w.flush().map_err(|e| Error::io(&pp, e))?;
    Ok(SimSummary {
        tenants: tenants.iter().map(|t| t.id.clone()).collect(),
        persons: cfg.persons,
        rows: rows_written,
        expected_quarantined: expected_q,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p_employed_matches_a_direct_enumeration() {
        // Enumerate start month and duration explicitly for h = 0.2, perm = 0.3, t = 6.
        let (h, perm, t) = (0.2f64, 0.3f64, 6u32);
        let mut p = 0.0;
        for m in 1..=t {
            let ps = h * (1.0 - h).powi(m as i32 - 1);
            p += ps * perm;
            for d in [3u32, 6, 12] {
                if m + d > t {
                    p += ps * (1.0 - perm) / 3.0;
                }
            }
        }
        assert!((p_employed(h, perm, t) - p).abs() < 1e-12);
    }

    #[test]
    fn code_letters_follow_the_tax_code_rules() {
        assert_eq!(code_letters("Rossi", false), "RSS");
        assert_eq!(code_letters("Marco", true), "MRC");
        assert_eq!(code_letters("Francesco", true), "FNC");
        assert_eq!(code_letters("Bo", false), "BOX");
    }
}
