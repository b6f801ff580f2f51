//! The report of one study run: what was asked, by whom and on what legal basis, who was
//! in the analysis and who was left out, the design's results and diagnostics, and the
//! provenance (hashes of the spec and the data). Self-contained HTML (inline SVG, print
//! stylesheet, tables with captions and header scopes) and a PDF through Typst.
//!
//! Its numbers are the study's `results.json`, already protected there: this module lays
//! them out and never computes or shows a count of its own.

use std::fmt::Write as _;

use crate::pdf::{Asset, escape, render_pdf};
use crate::{Error, Lang, Result};

/// A table of text cells (estimates, counts already protected, labels).
#[derive(Debug, Clone, Default)]
pub struct TextTable {
    /// Caption.
    pub title: String,
    /// Column headers.
    pub header: Vec<String>,
    /// Rows; the first cell is the row's label.
    pub rows: Vec<Vec<String>>,
}

/// One section.
#[derive(Debug, Clone, Default)]
pub struct StudySection {
    /// Heading.
    pub heading: String,
    /// Paragraphs.
    pub text: Vec<String>,
    /// Tables.
    pub tables: Vec<TextTable>,
    /// A chart drawn by this crate (love plot, profile heat map), as SVG.
    pub svg: Option<String>,
}

/// The report of a study run.
#[derive(Debug, Clone)]
pub struct StudyReport {
    /// The study's title.
    pub title: String,
    /// Who asked, why, on what basis.
    pub subtitle: String,
    /// Language of the fixed words.
    pub lang: Lang,
    /// Sections in order.
    pub sections: Vec<StudySection>,
    /// Provenance: spec hash, data, engine version.
    pub provenance: Vec<(String, String)>,
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

impl StudyReport {
    /// Self-contained HTML: works offline, prints cleanly.
    pub fn html(&self) -> String {
        let mut o = String::new();
        let lang = if self.lang == Lang::It { "it" } else { "en" };
        let _ = write!(
            o,
            "<!doctype html><html lang=\"{lang}\"><head><meta charset=\"utf-8\"><title>{}</title><style>\
             body{{font-family:system-ui,sans-serif;max-width:62rem;margin:2rem auto;padding:0 1rem;color:#222}}\
             table{{border-collapse:collapse;margin:.5rem 0 1.5rem;font-variant-numeric:tabular-nums}}\
             caption{{text-align:left;font-weight:600;margin-bottom:.3rem}}\
             th,td{{border-bottom:1px solid #ddd;padding:.25rem .6rem;text-align:right}}\
             th[scope=row],thead th:first-child{{text-align:left}}.note{{font-size:.85rem;color:#555}}\
             dl{{display:grid;grid-template-columns:max-content auto;gap:.2rem 1rem;font-size:.85rem}}\
             dd{{margin:0;word-break:break-all}}@media print{{body{{max-width:none}}h2{{break-after:avoid}}table,figure{{break-inside:avoid}}}}\
             </style></head><body><h1>{}</h1><p>{}</p>",
            esc(&self.title),
            esc(&self.title),
            esc(&self.subtitle)
        );
        for s in &self.sections {
            let _ = write!(o, "<section><h2>{}</h2>", esc(&s.heading));
            for p in &s.text {
                let _ = write!(o, "<p>{}</p>", esc(p));
            }
            for t in &s.tables {
                let _ = write!(o, "<table><caption>{}</caption><thead><tr>", esc(&t.title));
                for h in &t.header {
                    let _ = write!(o, "<th scope=\"col\">{}</th>", esc(h));
                }
                o.push_str("</tr></thead><tbody>");
                for r in &t.rows {
                    o.push_str("<tr>");
                    for (i, c) in r.iter().enumerate() {
                        if i == 0 {
                            let _ = write!(o, "<th scope=\"row\">{}</th>", esc(c));
                        } else {
                            let _ = write!(o, "<td>{}</td>", esc(c));
                        }
                    }
                    o.push_str("</tr>");
                }
                o.push_str("</tbody></table>");
            }
            if let Some(svg) = &s.svg {
                // Drawn by this crate: numbers and escaped labels only.
                let _ = write!(o, "<figure>{svg}</figure>");
            }
            o.push_str("</section>");
        }
        let _ = write!(
            o,
            "<h2>{}</h2><dl>",
            if self.lang == Lang::It {
                "Provenienza"
            } else {
                "Provenance"
            }
        );
        for (k, v) in &self.provenance {
            let _ = write!(o, "<dt>{}</dt><dd>{}</dd>", esc(k), esc(v));
        }
        o.push_str("</dl></body></html>\n");
        o
    }

    /// The report as Typst markup and its chart assets.
    pub fn markup(&self) -> (String, Vec<Asset>) {
        let mut m = String::new();
        let mut assets = Vec::new();
        let lang = if self.lang == Lang::It { "it" } else { "en" };
        // No date: the same study on the same data gives the same bytes.
        let _ = writeln!(
            m,
            "#set document(title: \"{}\", date: none)",
            self.title.replace('\\', "\\\\").replace('"', "\\\"")
        );
        let _ = writeln!(
            m,
            "#set page(paper: \"a4\", margin: 2cm, numbering: \"1 / 1\")"
        );
        let _ = writeln!(m, "#set text(lang: \"{lang}\", size: 10pt)");
        let _ = writeln!(m, "#set table(stroke: 0.4pt + gray, inset: 4pt)");
        let _ = writeln!(
            m,
            "= {}\n\n{}\n",
            escape(&self.title),
            escape(&self.subtitle)
        );
        let _ = writeln!(m, "#outline(depth: 2)\n");
        for (si, s) in self.sections.iter().enumerate() {
            let _ = writeln!(m, "== {}\n", escape(&s.heading));
            for p in &s.text {
                let _ = writeln!(m, "{}\n", escape(p));
            }
            for t in &s.tables {
                let n = t.header.len().max(1);
                let _ = writeln!(m, "*{}*\n", escape(&t.title));
                let _ = writeln!(
                    m,
                    "#table(columns: {n}, align: (left, {}),",
                    vec!["right"; n.saturating_sub(1).max(1)].join(", ")
                );
                let _ = write!(m, "  table.header(");
                let cells: Vec<String> = t
                    .header
                    .iter()
                    .map(|h| format!("[*{}*]", escape(h)))
                    .collect();
                m.push_str(&cells.join(", "));
                m.push_str("),\n");
                for r in &t.rows {
                    let mut cells: Vec<String> =
                        r.iter().map(|c| format!("[{}]", escape(c))).collect();
                    cells.resize(n, "[]".into());
                    let _ = writeln!(m, "  {},", cells.join(", "));
                }
                m.push_str(")\n\n");
            }
            if let Some(svg) = s.svg.as_ref().filter(|s| !s.is_empty()) {
                let path = format!("study-chart-{si}.svg");
                let _ = writeln!(m, "#figure(image(\"{path}\", width: 90%))\n");
                assets.push(Asset {
                    path,
                    bytes: svg.as_bytes().to_vec(),
                });
            }
        }
        let _ = writeln!(
            m,
            "== {}\n",
            if self.lang == Lang::It {
                "Provenienza"
            } else {
                "Provenance"
            }
        );
        for (k, v) in &self.provenance {
            let _ = writeln!(m, "- *{}*: {}", escape(k), escape(v));
        }
        (m, assets)
    }

    /// The PDF.
    pub fn pdf(&self) -> Result<Vec<u8>> {
        let (m, assets) = self.markup();
        render_pdf(&m, &assets).map_err(|e| Error::Pdf(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_escapes_and_the_pdf_renders() {
        let r = StudyReport {
            title: "A <b>study</b> \\ \"quoted\"".into(),
            subtitle: "who & why".into(),
            lang: Lang::En,
            sections: vec![StudySection {
                heading: "Results".into(),
                text: vec!["The effect is 0.05.".into()],
                tables: vec![TextTable {
                    title: "Estimate".into(),
                    header: vec!["".into(), "estimate".into(), "95 % CI".into()],
                    rows: vec![vec!["ATT".into(), "0.050".into(), "[0.01, 0.09]".into()]],
                }],
                svg: None,
            }],
            provenance: vec![("spec".into(), "abc".into())],
        };
        let h = r.html();
        assert!(h.contains("A &lt;b&gt;study&lt;/b&gt;") && !h.contains("<b>study"));
        assert!(h.contains("<th scope=\"row\">ATT</th>"));
        let pdf = r.pdf().unwrap();
        assert!(pdf.starts_with(b"%PDF"));
    }
}
