//! Typed cell values and the lenient-but-exact parsers that real Italian exports need:
//! dates as `2024-03-01`, `01/03/2024`, `1-3-2024` or `20240301`; decimal commas
//! (`1.234,50`); booleans as `sì`/`no`, `S`/`N`, `1`/`0`, `true`/`false`.

use chrono::{Datelike, NaiveDate};

/// A validated cell, ready for the store.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Missing (allowed only in optional columns).
    Null,
    /// Text.
    Str(String),
    /// Text from a fixed code list (no allocation per row).
    Code(&'static str),
    /// Integer.
    Int(i64),
    /// Real number.
    Float(f64),
    /// Date as days since 1970-01-01 (Arrow's date32).
    Date(i32),
    /// Yes/no.
    Bool(bool),
}

impl Value {
    /// The text of a `Str` or `Code`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            Value::Code(s) => Some(s),
            _ => None,
        }
    }

    /// Appends a canonical byte form to a hasher input (for duplicate detection that does
    /// not depend on how the source formatted the value).
    pub fn canonical(&self, out: &mut Vec<u8>) {
        match self {
            Value::Null => out.push(0),
            // A code and the same text are the same value.
            Value::Str(s) => {
                out.push(1);
                out.extend_from_slice(s.as_bytes());
            }
            Value::Code(s) => {
                out.push(1);
                out.extend_from_slice(s.as_bytes());
            }
            Value::Int(i) => {
                out.push(2);
                out.extend_from_slice(&i.to_le_bytes());
            }
            Value::Float(f) => {
                out.push(3);
                out.extend_from_slice(&f.to_bits().to_le_bytes());
            }
            Value::Date(d) => {
                out.push(4);
                out.extend_from_slice(&d.to_le_bytes());
            }
            Value::Bool(b) => out.push(5 + *b as u8),
        }
        out.push(0x1f);
    }
}

const EPOCH_DAYS_FROM_CE: i32 = 719_163;

/// Days since 1970-01-01.
pub fn days(date: NaiveDate) -> i32 {
    date.num_days_from_ce() - EPOCH_DAYS_FROM_CE
}

/// The date of a day number.
pub fn date_of(days: i32) -> NaiveDate {
    NaiveDate::from_num_days_from_ce_opt(days + EPOCH_DAYS_FROM_CE).unwrap_or(NaiveDate::MIN)
}

/// Parses a date in the forms Italian systems export. Two-digit years are refused: they
/// are ambiguous for birth dates and silently wrong guesses are worse than a quarantine.
pub fn parse_date(s: &str) -> Result<NaiveDate, String> {
    let s = s.trim();
    // Timestamps: keep the date part.
    let s = s.split(['T', ' ']).next().unwrap_or(s);
    let parts: Vec<&str> = s.split(['-', '/', '.']).collect();
    let num = |p: &str| {
        p.parse::<u32>()
            .map_err(|_| format!("{s:?} is not a date (use YYYY-MM-DD or DD/MM/YYYY)"))
    };
    let (y, m, d) = match parts.as_slice() {
        [a] if a.len() == 8 && a.bytes().all(|b| b.is_ascii_digit()) => {
            (num(&a[..4])?, num(&a[4..6])?, num(&a[6..])?)
        }
        [a, b, c] if a.len() == 4 => (num(a)?, num(b)?, num(c)?),
        [a, b, c] if c.len() == 4 => (num(c)?, num(b)?, num(a)?),
        _ => {
            return Err(format!(
                "{s:?} is not a date (use YYYY-MM-DD or DD/MM/YYYY)"
            ));
        }
    };
    if !(1900..=2100).contains(&y) {
        return Err(format!("{s:?}: year {y} outside 1900–2100"));
    }
    NaiveDate::from_ymd_opt(y as i32, m, d).ok_or_else(|| format!("{s:?} is not a calendar date"))
}

/// `1.700`, `-12.345.678`: an integer grouped by thousands with points (the first group
/// 1–3 digits, not starting with 0, then groups of exactly three).
pub fn grouped_integer(t: &str) -> bool {
    let body = t.strip_prefix(['-', '+']).unwrap_or(t);
    let mut groups = body.split('.');
    let first = groups.next().unwrap_or("");
    let digits = |g: &str| g.bytes().all(|b| b.is_ascii_digit());
    let mut rest = 0;
    for g in groups {
        if g.len() != 3 || !digits(g) {
            return false;
        }
        rest += 1;
    }
    rest > 0 && (1..=3).contains(&first.len()) && digits(first) && !first.starts_with('0')
}

/// [`parse_float`] in a file separated by `;`, tab or `|` (Italian Excel's), where
/// `1.200` groups thousands (1200), as `1.234,5` does; elsewhere the same as
/// [`parse_float`].
pub fn parse_float_in(s: &str, grouping: bool) -> Result<f64, String> {
    let t = s.trim();
    if grouping && grouped_integer(t) {
        return parse_float(&t.replace('.', ""));
    }
    parse_float(t)
}

/// [`parse_int`] with the same rule as [`parse_float_in`].
pub fn parse_int_in(s: &str, grouping: bool) -> Result<i64, String> {
    let t = s.trim();
    if grouping && grouped_integer(t) {
        return parse_int(&t.replace('.', ""));
    }
    parse_int(t)
}

/// Parses an integer; `1.000` with a thousands dot is accepted only when unambiguous.
pub fn parse_int(s: &str) -> Result<i64, String> {
    let t = s.trim();
    if let Ok(v) = t.parse::<i64>() {
        return Ok(v);
    }
    // Spreadsheets often write integers as 3.0 or 3,0.
    match parse_float(t) {
        Ok(f) if f.fract() == 0.0 && f.abs() < 9e15 => Ok(f as i64),
        _ => Err(format!("{t:?} is not a whole number")),
    }
}

/// Parses a real number with either decimal separator. With both separators present the
/// last one is the decimal mark (`1.234,5` and `1,234.5` are both 1234.5); a lone comma is
/// a decimal comma (`12,5`).
pub fn parse_float(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let err = || format!("{t:?} is not a number");
    if t.is_empty() {
        return Err(err());
    }
    let (last_dot, last_comma) = (t.rfind('.'), t.rfind(','));
    let cleaned: String = match (last_dot, last_comma) {
        (Some(d), Some(c)) if c > d => t
            .chars()
            .filter(|&ch| ch != '.')
            .map(|ch| if ch == ',' { '.' } else { ch })
            .collect(),
        (Some(_), Some(_)) => t.chars().filter(|&ch| ch != ',').collect(),
        (None, Some(_)) if t.matches(',').count() == 1 => t.replace(',', "."),
        (None, Some(_)) => return Err(err()),
        _ => t.to_string(),
    };
    let v: f64 = cleaned.parse().map_err(|_| err())?;
    if v.is_finite() { Ok(v) } else { Err(err()) }
}

/// Parses yes/no in Italian and English.
pub fn parse_bool(s: &str) -> Result<bool, String> {
    const YES: [&str; 9] = ["1", "si", "sì", "s", "y", "yes", "true", "vero", "x"];
    const NO: [&str; 5] = ["0", "no", "n", "false", "falso"];
    let t = s.trim();
    // This runs three times per person row: allocate only for non-ASCII text ("Sì").
    let lowered;
    let t = if t.is_ascii() {
        t
    } else {
        lowered = t.to_lowercase();
        lowered.as_str()
    };
    let eq = |w: &&str| t.eq_ignore_ascii_case(w);
    if YES.iter().any(eq) {
        Ok(true)
    } else if NO.iter().any(eq) {
        Ok(false)
    } else {
        Err(format!("{t:?} is not yes/no (use sì/no, 1/0)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn dates_in_italian_and_iso_forms() {
        let d = NaiveDate::from_ymd_opt(2024, 3, 1).unwrap();
        for s in [
            "2024-03-01",
            "01/03/2024",
            "1/3/2024",
            "01-03-2024",
            "01.03.2024",
            "20240301",
            "2024-03-01T10:00:00",
        ] {
            assert_eq!(parse_date(s).unwrap(), d, "{s}");
        }
    }

    #[test]
    fn impossible_dates_are_rejected() {
        for s in [
            "2023-02-30",
            "31/13/2023",
            "01/03/24",
            "",
            "ieri",
            "1850-01-01",
        ] {
            assert!(parse_date(s).is_err(), "{s}");
        }
    }

    #[test]
    fn decimal_commas() {
        assert_eq!(parse_float("12,5").unwrap(), 12.5);
        // In a `;` file a point groups thousands; in a `,` file it is a decimal point.
        assert_eq!(parse_float_in("1.200", true).unwrap(), 1200.0);
        assert_eq!(parse_float_in("1.200", false).unwrap(), 1.2);
        assert_eq!(parse_float_in("1.234,5", true).unwrap(), 1234.5);
        assert_eq!(parse_float_in("2.5", true).unwrap(), 2.5);
        assert_eq!(parse_float_in("0.750", true).unwrap(), 0.75);
        assert_eq!(parse_int_in("12.345", true).unwrap(), 12345);
        assert_eq!(parse_int_in("3,0", true).unwrap(), 3);
        assert_eq!(parse_float("1.234,50").unwrap(), 1234.5);
        assert_eq!(parse_float("1,234.50").unwrap(), 1234.5);
        assert_eq!(parse_float(" 7 ").unwrap(), 7.0);
        assert!(parse_float("1,2,3").is_err());
        assert!(parse_float("NaN").is_err());
        assert_eq!(parse_int("3,0").unwrap(), 3);
        assert!(parse_int("3,5").is_err());
    }

    #[test]
    fn booleans() {
        assert!(parse_bool("Sì").unwrap());
        assert!(!parse_bool("N").unwrap());
        assert!(parse_bool("forse").is_err());
    }

    proptest! {
        #[test]
        fn day_numbers_round_trip(d in -20000i32..60000) {
            prop_assert_eq!(days(date_of(d)), d);
        }

        #[test]
        fn any_valid_date_parses_in_both_forms(y in 1900i32..2100, m in 1u32..=12, d in 1u32..=28) {
            let date = NaiveDate::from_ymd_opt(y, m, d).unwrap();
            prop_assert_eq!(parse_date(&date.format("%Y-%m-%d").to_string()).unwrap(), date);
            prop_assert_eq!(parse_date(&date.format("%d/%m/%Y").to_string()).unwrap(), date);
        }
    }
}
