//! Identifiers planted in simulated exports, and the search for them in what a command
//! wrote. One copy, shared by two test binaries: `tests/it/attacks.rs` (the store, the
//! release) and `studies/tests/cli/identifiers.rs` (the reports, through the binary). It
//! uses only std, csv, polars and occupa_engine, which both packages have.

use std::path::{Path, PathBuf};

use occupa_engine::codice_fiscale::make_temporary;
use occupa_engine::read::read_file;
use polars::prelude::*;

/// A comma-separated UTF-8 copy of an export, with `edit` applied to its rows.
fn rewrite(path: &Path, edit: impl Fn(usize, &[String], &mut Vec<String>)) {
    let t = read_file(path).unwrap();
    let mut w = csv::Writer::from_path(path).unwrap();
    w.write_record(&t.header).unwrap();
    for (i, r) in t.rows.iter().enumerate() {
        let mut fields: Vec<String> = r
            .fields
            .as_ref()
            .unwrap()
            .iter()
            .map(String::from)
            .collect();
        edit(i, &t.header, &mut fields);
        w.write_record(&fields).unwrap();
    }
    w.flush().unwrap();
}

fn col(header: &[String], name: &str) -> usize {
    header.iter().position(|h| h == name).unwrap()
}

/// Upper-case letters and digits only: how a code is searched for, whatever its spacing.
pub(crate) fn compact(s: &str) -> String {
    s.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// Every text a store or an output folder holds: string cells of Parquet files, and the
/// contents of text files (CSV, JSON, JSON lines, Markdown, HTML).
pub(crate) fn texts_under(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            match p.extension().and_then(|e| e.to_str()).unwrap_or("") {
                "parquet" => {
                    let df = ParquetReader::new(std::fs::File::open(&p).unwrap())
                        .finish()
                        .unwrap();
                    for c in df.get_columns() {
                        out.push((p.clone(), c.name().to_string()));
                        if c.dtype() == &DataType::String {
                            for v in c.str().unwrap().into_iter().flatten() {
                                out.push((p.clone(), v.to_string()));
                            }
                        }
                    }
                }
                "csv" | "json" | "jsonl" | "md" | "html" | "txt" | "typ" | "svg" => {
                    out.push((p.clone(), std::fs::read_to_string(&p).unwrap()));
                }
                _ => {}
            }
        }
    }
    out
}

/// What was planted, and how to look for it.
pub(crate) struct Planted {
    /// Tax codes (16 or 11 characters), searched compacted and upper case.
    pub codes: Vec<String>,
    /// Words searched case-insensitively (rare names, e-mail local parts).
    pub words: Vec<String>,
    /// Digit runs (phone numbers), searched among the digits.
    pub digits: Vec<String>,
}

impl Planted {
    /// Fails naming the file if any planted identifier is found in `texts`.
    pub(crate) fn assert_absent(&self, texts: &[(PathBuf, String)]) {
        for (path, t) in texts {
            let c = compact(t);
            for code in &self.codes {
                assert!(
                    !c.contains(code.as_str()),
                    "a planted tax code in {}",
                    path.display()
                );
                // Its first 11 characters identify the person as well.
                if code.len() == 16 {
                    assert!(
                        !c.contains(&code[..11]),
                        "part of a planted tax code in {}",
                        path.display()
                    );
                }
            }
            let lower = t.to_lowercase();
            for w in &self.words {
                assert!(
                    !lower.contains(w.as_str()),
                    "planted {w:?} in {}",
                    path.display()
                );
            }
            let digits: String = t.chars().filter(char::is_ascii_digit).collect();
            for d in &self.digits {
                assert!(
                    !digits.contains(d.as_str()),
                    "planted number in {}",
                    path.display()
                );
            }
        }
    }
}

/// Simulated exports of two tenants with identifiers planted in every free-text column of
/// t01's services and questionnaires, in every shape seen in real files, and in columns
/// where they do not belong (a tax code as citizenship, a surname as sex).
pub(crate) fn plant(exports: &Path) -> Planted {
    let persons = exports.join("t01/persons.csv");
    let t = read_file(&persons).unwrap();
    let h = &t.header;
    let first = t.rows[0].fields.as_ref().unwrap();
    let code = first.get(col(h, "codice_fiscale")).unwrap().to_string();
    assert_eq!(
        code.len(),
        16,
        "the first simulated person has a personal code"
    );
    // A rare name, in no shipped list: only the tenant's own registry can know it.
    let (surname, name) = ("Quaglierini", "Ottorino");
    let temporary = make_temporary(4_815_162_342);
    let wrong_check = {
        let last = code.as_bytes()[15];
        format!(
            "{}{}",
            &code[..15],
            if last == b'Z' {
                'A'
            } else {
                (last + 1) as char
            }
        )
    };
    let omocodic = format!(
        "{}{}{}",
        &code[..14],
        "LMNPQRSTUV".as_bytes()[(code.as_bytes()[14] - b'0') as usize] as char,
        &code[15..]
    );
    let spaced = format!(
        "{} {} {} {}",
        &code[..3],
        &code[3..6],
        &code[6..11],
        &code[11..]
    );
    rewrite(&persons, |i, h, f| {
        if i == 0 {
            f[col(h, "cognome")] = surname.into();
            f[col(h, "nome")] = name.into();
        }
        // Identifiers in the wrong column: quarantined, never echoed.
        if i == 1 {
            f[col(h, "cittadinanza")] = wrong_check.clone();
        }
        if i == 2 {
            f[col(h, "sesso")] = "Quaglierini".into();
        }
        if i == 3 {
            f[col(h, "comune_istat")] = "=HYPERLINK(\"http://x\")".into();
        }
    });
    let shapes = [
        format!("CF {spaced}"),
        code.to_lowercase(),
        format!("rif{code}ok"),
        wrong_check.clone(),
        code[..15].to_string(),
        omocodic.clone(),
        format!("provv. {temporary}"),
        format!(
            "colloquio con {} {}",
            name.to_lowercase(),
            surname.to_lowercase()
        ),
        format!("{} {}", surname.to_uppercase(), name.to_uppercase()),
        format!("sig. {surname}"),
        "scrivere a ottorino.q@example.it".into(),
        "tel 333 765 4321".into(),
    ];
    rewrite(&exports.join("t01/services.csv"), |i, h, f| {
        let s = &shapes[i % shapes.len()];
        f[col(h, "ente")] = format!("Centro per l'impiego 001 {s}");
        f[col(h, "finanziamento")] = s.chars().take(60).collect();
        if i % 3 == 0 {
            f[col(h, "operatore")] = format!("{name} {surname}");
        }
        if i % 5 == 0 {
            f[col(h, "programma")] = format!("GOL {}", code.to_lowercase());
        }
    });
    rewrite(&exports.join("t01/asso.csv"), |i, h, f| {
        if i % 4 == 0 {
            f[col(h, "operatore")] = format!("{} {}", surname.to_lowercase(), &spaced);
        }
    });
    Planted {
        codes: vec![code.clone(), wrong_check, omocodic, temporary],
        words: vec![
            surname.to_lowercase(),
            name.to_lowercase(),
            "ottorino.q".into(),
        ],
        digits: vec!["3337654321".into()],
    }
}
