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
            _ => {
                let rest = s.strip_prefix("ordinal:").ok_or_else(|| {
                    bad(format!(
                        "{s:?}: use age, date, municipality, citizenship, flat or ordinal:MIN-MAX:W1,W2"
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

fn unplaceable(column: &str, value: &str, what: &str) -> Error {
    Error::Hierarchy {
        column: column.to_string(),
        reason: format!("value {value:?} is not {what}"),
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
                    let p = t
                        .province_of(v)
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
