//! Built-in generalisation hierarchies for the quasi-identifiers of employment-service
//! data, so that a release needs no hand-written hierarchy files:
//!
//! | kind | levels |
//! |---|---|
//! | `age` | years → 5-year band → 10-year band → 20-year band → `*` |
//! | `date` | day → month (`2026-03`) → quarter (`2026Q1`) → year → `*` |
//! | `municipality` | ISTAT code → province → region → `*` |
//! | `citizenship` | ISO 3166-1 alpha-3 → ISTAT area of citizenship → EU / non-EU → `*` |
//! | `ordinal:MIN-MAX:W1,W2…` | score → intervals of width W1 → of W2 … → `*` |
//! | `flat` | value → `*` (sex, yes/no flags: any category) |
//! | `months` | months from taking charge → 3-month → 6-month → 12-month spans → `*` |
//! | `timing` | days to a first service (`0-29`, `30-89`, `90-179`, `180+`, `never`) → `0-89`/`90+`/`never` → `ever`/`never` → `*` |
//! | `contract` | contract type → stable / fixed-term / other → `*` |
//! | `ateco` | ATECO 2007 code → division → section → `*` |
//! | `cp2011` | CP2011 occupation → 3-digit group → major group → `*` |
//! | `service` | service standard (`A.5`) → to persons / to employers (`A`, `B`) → `*` |
//!
//! In `months`, `timing` and `contract`, the values `""` (unknown, ongoing) and `none`
//! are categories of their own up to `*`.
//!
//! Each is built over the values seen in the column (and, for ages and scores, the whole
//! range, so that the loss metric sees the true domain); a value the kind cannot place is
//! an error naming the value and the column.

use chrono::Datelike;
use occupa_engine::territory::{Territory, citizenship_area};
use occupa_engine::value::{parse_date, parse_int};

use crate::hierarchy::Hierarchy;
use crate::{Error, Result};

/// A kind of built-in hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Builtin {
    /// Ages in years.
    Age,
    /// Calendar dates.
    Date,
    /// ISTAT municipality codes.
    Municipality,
    /// ISO 3166-1 alpha-3 citizenship codes.
    Citizenship,
    /// Any categories, released as they are or not at all.
    Flat,
    /// Months relative to taking charge (negative before it).
    Months,
    /// Days to a first service, in the bands the release uses.
    Timing,
    /// Contract types of the mandatory communications.
    Contract,
    /// ATECO 2007 sectors.
    Ateco,
    /// CP2011 occupations.
    Cp2011,
    /// Service standards A.1–A.6, B.1–B.4.
    Service,
    /// Integer scores in `min..=max`, grouped into intervals of increasing widths.
    Ordinal {
        /// Smallest score.
        min: i64,
        /// Largest score.
        max: i64,
        /// Interval widths, each a multiple of the one before.
        widths: Vec<i64>,
    },
}

impl std::str::FromStr for Builtin {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let bad = |reason: String| Error::Param {
            name: "builtin hierarchy",
            reason,
        };
        Ok(match s {
            "age" => Builtin::Age,
            "date" => Builtin::Date,
            "municipality" => Builtin::Municipality,
            "citizenship" => Builtin::Citizenship,
            "flat" => Builtin::Flat,
            "months" => Builtin::Months,
            "timing" => Builtin::Timing,
            "contract" => Builtin::Contract,
            "ateco" => Builtin::Ateco,
            "cp2011" => Builtin::Cp2011,
            "service" => Builtin::Service,
            _ => {
                let rest = s.strip_prefix("ordinal:").ok_or_else(|| {
                    bad(format!(
                        "{s:?}: use age, date, municipality, citizenship, flat, months, timing, \
                         contract, ateco, cp2011, service or ordinal:MIN-MAX:W1,W2"
                    ))
                })?;
                let (range, widths) = rest.split_once(':').ok_or_else(|| {
                    bad(format!(
                        "{s:?}: write ordinal:MIN-MAX:W1,W2 (e.g. ordinal:0-30:5,10)"
                    ))
                })?;
                let (lo, hi) = range
                    .split_once('-')
                    .ok_or_else(|| bad(format!("{range:?} is not MIN-MAX")))?;
                let num = |x: &str| {
                    x.trim()
                        .parse::<i64>()
                        .map_err(|_| bad(format!("{x:?} is not a whole number")))
                };
                let (min, max) = (num(lo)?, num(hi)?);
                let widths: Vec<i64> = widths.split(',').map(num).collect::<Result<_>>()?;
                if min > max {
                    return Err(bad(format!("{min} > {max}")));
                }
                let mut prev = 1;
                for &w in &widths {
                    if w <= prev || w % prev != 0 {
                        return Err(bad(format!(
                            "widths {widths:?} must grow, each a multiple of the one before (intervals nest)"
                        )));
                    }
                    prev = w;
                }
                Builtin::Ordinal { min, max, widths }
            }
        })
    }
}

pub use occupa_engine::schema::ateco_section;

fn unplaceable(column: &str, value: &str, what: &str) -> Error {
    Error::Hierarchy {
        column: column.to_string(),
        reason: format!("value {value:?} is not {what}"),
    }
}

/// `lo..hi` spans of `width` months (month 0 is the first after taking charge).
fn span(v: i64, width: i64) -> String {
    let lo = v.div_euclid(width) * width;
    format!("{lo}..{}", lo + width - 1)
}

/// Values that are no measurement (unknown, ongoing, no contract): kept as they are up to
/// the top level, so they never merge with a real value.
fn special(v: &str, height: usize) -> Option<Vec<String>> {
    matches!(v, "" | "none").then(|| {
        let mut r = vec![v.to_string(); height - 1];
        r.push("*".into());
        r
    })
}

/// Bands of days to a first service.
pub const TIMING_BANDS: [&str; 5] = ["0-29", "30-89", "90-179", "180+", "never"];

/// The timing band of `days` from taking charge (`None`: never).
pub fn timing_band(days: Option<i64>) -> &'static str {
    match days {
        None => "never",
        Some(d) if d < 30 => "0-29",
        Some(d) if d < 90 => "30-89",
        Some(d) if d < 180 => "90-179",
        Some(_) => "180+",
    }
}

/// `lo-hi` bands of `width` starting at `origin`.
fn band(v: i64, origin: i64, width: i64, cap: Option<i64>) -> String {
    let lo = origin + (v - origin).div_euclid(width) * width;
    let hi = lo + width - 1;
    format!("{lo}-{}", cap.map_or(hi, |c| hi.min(c)))
}

impl Builtin {
    /// The hierarchy of `column` over the distinct values seen in it.
    pub fn build(&self, column: &str, values: &[&str]) -> Result<Hierarchy> {
        let mut rows: Vec<Vec<String>> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut push = |row: Vec<String>| {
            if seen.insert(row[0].clone()) {
                rows.push(row);
            }
        };
        match self {
            Builtin::Age => {
                let age_row = |raw: String, a: i64| {
                    vec![
                        raw,
                        band(a, 0, 5, None),
                        band(a, 0, 10, None),
                        band(a, 0, 20, None),
                        "*".into(),
                    ]
                };
                for a in 0..=120 {
                    push(age_row(a.to_string(), a));
                }
                for v in values {
                    let a = parse_int(v)
                        .ok()
                        .filter(|a| (0..=120).contains(a))
                        .ok_or_else(|| unplaceable(column, v, "an age in years (0 to 120)"))?;
                    push(age_row(v.to_string(), a));
                }
            }
            Builtin::Ordinal { min, max, widths } => {
                let row = |raw: String, s: i64| {
                    let mut r = vec![raw];
                    r.extend(widths.iter().map(|&w| band(s, *min, w, Some(*max))));
                    r.push("*".into());
                    r
                };
                for s in *min..=*max {
                    push(row(s.to_string(), s));
                }
                for v in values {
                    let s = parse_int(v)
                        .ok()
                        .filter(|s| (*min..=*max).contains(s))
                        .ok_or_else(|| {
                            unplaceable(column, v, &format!("a score from {min} to {max}"))
                        })?;
                    push(row(v.to_string(), s));
                }
            }
            Builtin::Flat => {
                for v in values {
                    push(vec![v.to_string(), "*".into()]);
                }
            }
            Builtin::Months => {
                for v in values {
                    if let Some(r) = special(v, 5) {
                        push(r);
                        continue;
                    }
                    let m = parse_int(v)
                        .ok()
                        .filter(|m| (-1200..=1200).contains(m))
                        .ok_or_else(|| unplaceable(column, v, "a number of months"))?;
                    push(vec![
                        v.to_string(),
                        span(m, 3),
                        span(m, 6),
                        span(m, 12),
                        "*".into(),
                    ]);
                }
            }
            Builtin::Timing => {
                for v in TIMING_BANDS.iter().copied().chain(values.iter().copied()) {
                    if let Some(r) = special(v, 4) {
                        push(r);
                        continue;
                    }
                    let (l1, l2) = match v {
                        "0-29" | "30-89" => ("0-89", "ever"),
                        "90-179" | "180+" => ("90+", "ever"),
                        "never" => ("never", "never"),
                        _ => {
                            return Err(unplaceable(
                                column,
                                v,
                                "a timing band (0-29, 30-89, 90-179, 180+, never)",
                            ));
                        }
                    };
                    push(vec![v.to_string(), l1.into(), l2.into(), "*".into()]);
                }
            }
            Builtin::Contract => {
                for v in values {
                    if let Some(r) = special(v, 3) {
                        push(r);
                        continue;
                    }
                    let group = match v.to_ascii_lowercase().as_str() {
                        "indeterminato" | "apprendistato" => "stabile",
                        "determinato" | "somministrazione" | "intermittente" => "a termine",
                        _ => "altro",
                    };
                    push(vec![v.to_string(), group.into(), "*".into()]);
                }
            }
            Builtin::Ateco => {
                for v in values {
                    if let Some(r) = special(v, 4) {
                        push(r);
                        continue;
                    }
                    let division = v.get(..2).unwrap_or(v);
                    let section = if v.len() == 1 {
                        Some(v.to_string())
                    } else {
                        division
                            .parse::<u32>()
                            .ok()
                            .and_then(ateco_section)
                            .map(String::from)
                    };
                    let section =
                        section.ok_or_else(|| unplaceable(column, v, "an ATECO 2007 code"))?;
                    push(vec![
                        v.to_string(),
                        division.to_string(),
                        section,
                        "*".into(),
                    ]);
                }
            }
            Builtin::Cp2011 => {
                for v in values {
                    if let Some(r) = special(v, 4) {
                        push(r);
                        continue;
                    }
                    let parts: Vec<&str> = v.split('.').collect();
                    if parts.is_empty() || parts[0].is_empty() {
                        return Err(unplaceable(column, v, "a CP2011 occupation code"));
                    }
                    let group = parts[..parts.len().min(3)].join(".");
                    push(vec![v.to_string(), group, parts[0].to_string(), "*".into()]);
                }
            }
            Builtin::Service => {
                for v in values {
                    if let Some(r) = special(v, 3) {
                        push(r);
                        continue;
                    }
                    let side = v.get(..1).filter(|s| matches!(*s, "A" | "B"));
                    let side =
                        side.ok_or_else(|| unplaceable(column, v, "a service standard (A.1–B.4)"))?;
                    push(vec![v.to_string(), side.to_string(), "*".into()]);
                }
            }
            Builtin::Date => {
                for v in values {
                    if v.is_empty() {
                        // No date (e.g. still in charge): a category of its own.
                        push(
                            vec![String::new(); 4]
                                .into_iter()
                                .chain(["*".into()])
                                .collect(),
                        );
                        continue;
                    }
                    let d = parse_date(v).map_err(|_| unplaceable(column, v, "a date"))?;
                    push(vec![
                        v.to_string(),
                        format!("{:04}-{:02}", d.year(), d.month()),
                        format!("{:04}Q{}", d.year(), d.month0() / 3 + 1),
                        format!("{:04}", d.year()),
                        "*".into(),
                    ]);
                }
            }
            Builtin::Municipality => {
                let t = Territory::get();
                for v in values {
                    // Excel drops the leading zeros of ISTAT codes (001272 becomes 1272).
                    let padded =
                        (v.len() < 6 && !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                            .then(|| format!("{v:0>6}"));
                    let p = t
                        .province_of(padded.as_deref().unwrap_or(v))
                        .ok_or_else(|| unplaceable(column, v, "an ISTAT municipality code"))?;
                    let r = t
                        .region(&p.region_code)
                        .ok_or_else(|| unplaceable(column, v, "in a known region"))?;
                    push(vec![
                        v.to_string(),
                        p.name.clone(),
                        r.name.clone(),
                        "*".into(),
                    ]);
                }
            }
            Builtin::Citizenship => {
                for v in values {
                    let area = citizenship_area(v)
                        .ok_or_else(|| unplaceable(column, v, "an ISO 3166-1 alpha-3 code"))?;
                    let eu = if matches!(area, "Italia" | "Unione europea") {
                        "UE"
                    } else {
                        "non UE"
                    };
                    push(vec![v.to_string(), area.to_string(), eu.into(), "*".into()]);
                }
            }
        }
        if rows.is_empty() {
            return Err(Error::Hierarchy {
                column: column.to_string(),
                reason: "no values to build a hierarchy from".into(),
            });
        }
        Hierarchy::from_rows(column, rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn age_bands_nest() {
        let h = Builtin::Age.build("age", &["37", "90"]).unwrap();
        assert_eq!(h.height(), 5);
        let row = h.row_of("37").unwrap();
        let labels: Vec<&str> = (0..5).map(|l| h.label(row, l)).collect();
        assert_eq!(labels, ["37", "35-39", "30-39", "20-39", "*"]);
        let err = Builtin::Age.build("age", &["abc"]).unwrap_err().to_string();
        assert!(err.contains("age") && err.contains("\"abc\""), "{err}");
    }

    #[test]
    fn dates_go_to_month_quarter_year() {
        let h = Builtin::Date.build("start", &["2026-05-17"]).unwrap();
        let row = h.row_of("2026-05-17").unwrap();
        let labels: Vec<&str> = (0..5).map(|l| h.label(row, l)).collect();
        assert_eq!(labels, ["2026-05-17", "2026-05", "2026Q2", "2026", "*"]);
    }

    #[test]
    fn municipalities_go_to_province_and_region() {
        let h = Builtin::Municipality
            .build("comune", &["001272", "092009"])
            .unwrap();
        let row = h.row_of("001272").unwrap();
        assert_eq!((h.label(row, 1), h.label(row, 2)), ("Torino", "Piemonte"));
        assert!(Builtin::Municipality.build("comune", &["999999"]).is_err());
    }

    #[test]
    fn citizenship_goes_to_area_then_eu() {
        let h = Builtin::Citizenship
            .build("cit", &["ITA", "ROU", "MAR", "ALB"])
            .unwrap();
        let eu = |v: &str| h.label(h.row_of(v).unwrap(), 2).to_string();
        assert_eq!(
            [eu("ITA"), eu("ROU"), eu("MAR"), eu("ALB")],
            ["UE", "UE", "non UE", "non UE"]
        );
        assert_eq!(
            h.label(h.row_of("MAR").unwrap(), 1),
            "Africa settentrionale"
        );
        assert!(Builtin::Citizenship.build("cit", &["ZZZ"]).is_err());
    }

    #[test]
    fn record_hierarchies_nest_and_keep_special_values() {
        let labels = |b: Builtin, v: &str, values: &[&str]| -> Vec<String> {
            let h = b.build("c", values).unwrap();
            let row = h.row_of(v).unwrap();
            (0..h.height())
                .map(|l| h.label(row, l).to_string())
                .collect()
        };
        assert_eq!(
            labels(Builtin::Months, "7", &["7", "-2", ""]),
            ["7", "6..8", "6..11", "0..11", "*"]
        );
        assert_eq!(
            labels(Builtin::Months, "-2", &["-2"]),
            ["-2", "-3..-1", "-6..-1", "-12..-1", "*"]
        );
        assert_eq!(labels(Builtin::Months, "", &[""]), ["", "", "", "", "*"]);
        assert_eq!(
            labels(Builtin::Timing, "30-89", &[]),
            ["30-89", "0-89", "ever", "*"]
        );
        assert_eq!(
            labels(Builtin::Contract, "apprendistato", &["apprendistato"]),
            ["apprendistato", "stabile", "*"]
        );
        assert_eq!(
            labels(Builtin::Ateco, "47.11", &["47.11"]),
            ["47.11", "47", "G", "*"]
        );
        assert_eq!(
            labels(Builtin::Cp2011, "5.1.2.2.0", &["5.1.2.2.0"]),
            ["5.1.2.2.0", "5.1.2", "5", "*"]
        );
        assert_eq!(labels(Builtin::Service, "A.5", &["A.5"]), ["A.5", "A", "*"]);
        assert!(Builtin::Ateco.build("c", &["00"]).is_err());
        assert!(Builtin::Timing.build("c", &["soon"]).is_err());
    }

    #[test]
    fn ordinal_intervals_are_checked_and_nest() {
        let b: Builtin = "ordinal:0-30:5,10".parse().unwrap();
        let h = b.build("score", &["7"]).unwrap();
        let row = h.row_of("27").unwrap();
        let labels: Vec<&str> = (0..4).map(|l| h.label(row, l)).collect();
        assert_eq!(labels, ["27", "25-29", "20-29", "*"]);
        assert_eq!(h.label(h.row_of("30").unwrap(), 1), "30-30");
        assert!("ordinal:0-30:5,7".parse::<Builtin>().is_err());
        assert!(b.build("score", &["31"]).is_err());
    }
}
