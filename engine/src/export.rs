//! Cells of the files people open in spreadsheets (CSV, XLSX): text that starts like a
//! formula (`=`, `+`, `-`, `@`, or a tab or carriage return before one) would be run by
//! Excel or LibreOffice when the file is opened, so it is written with a leading `'`,
//! which both show as text. Numbers (`-3,5`, `+12`) are left as they are. Every CSV and
//! XLSX writer of the workspace passes its text through here.

use std::borrow::Cow;

/// `s` as a spreadsheet will read it as text, never as a formula.
///
/// ```
/// use occupa_engine::export::spreadsheet_safe;
/// assert_eq!(spreadsheet_safe("=HYPERLINK(\"http://x\")"), "'=HYPERLINK(\"http://x\")");
/// assert_eq!(spreadsheet_safe("-3,5"), "-3,5");
/// assert_eq!(spreadsheet_safe("Torino"), "Torino");
/// ```
pub fn spreadsheet_safe(s: &str) -> Cow<'_, str> {
    let first = s.trim_start_matches([' ', '\u{a0}']).chars().next();
    let risky = matches!(
        first,
        Some('=' | '+' | '-' | '@' | '\t' | '\r' | '\n' | '＝' | '＋' | '－' | '＠')
    );
    if risky && !is_number(s.trim()) {
        Cow::Owned(format!("'{s}"))
    } else {
        Cow::Borrowed(s)
    }
}

fn is_number(s: &str) -> bool {
    let t = s.replace(',', ".");
    !t.is_empty() && t.parse::<f64>().is_ok_and(f64::is_finite)
}

/// A CSV field (comma-separated, RFC 4180 quoting), spreadsheet-safe.
pub fn csv_field(s: &str) -> Cow<'_, str> {
    let safe = spreadsheet_safe(s);
    if safe.contains([',', ';', '"', '\n', '\r']) {
        Cow::Owned(format!("\"{}\"", safe.replace('"', "\"\"")))
    } else {
        safe
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_are_neutralised() {
        for bad in [
            "=1+1",
            "+cmd|' /C calc'!A0",
            "-2+3",
            "@SUM(A1)",
            "\t=1",
            " =1",
            "－1＋1",
        ] {
            assert!(spreadsheet_safe(bad).starts_with('\''), "{bad:?}");
        }
        for ok in ["-3.5", "+12", "-1,25", "abc", "", "3-4"] {
            assert_eq!(spreadsheet_safe(ok), ok);
        }
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("=a\"b"), "\"'=a\"\"b\"");
    }
}
