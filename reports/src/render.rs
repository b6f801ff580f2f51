//! Renderers of the report model: HTML (self-contained), Typst markup for the PDF,
//! XLSX and CSV. Suppressed values print as `x` everywhere.

use occupa_engine::export::{csv_field, spreadsheet_safe};
use std::fmt::Write as _;
use std::sync::Once;

use plotters::prelude::*;

use crate::pdf::{Asset, escape};
use crate::{FigureTable, Lang, PubTable, Report};

const HIDDEN: &str = "x";

/// A count in the report's language: `1.234` in Italian, `1,234` in English; `x` hidden.
pub(crate) fn fmt_count(v: Option<u64>, lang: Lang) -> String {
    fmt_figure(v.map(|n| n as f64), 0, lang)
}

/// Columns from which a PDF table is set in 8 points instead of 10.
const WIDE_TABLE: usize = 8;
/// Columns from which a PDF table's width is shared out ([`pdf_columns`]).
const SHARED_COLUMNS: usize = 6;

/// A PDF table's column widths: natural widths, or for a table of many columns the page
/// shared out by content, each column in proportion to its longest unbreakable word (its
/// heading's or a cell's; labels and notes, which wrap, up to a cap). Natural widths there
/// left the labels a word a line while figures had room to spare; equal shares let a long
/// heading word ("Memorizzate") run into the next column.
fn pdf_columns(headers: &[String], rows: &[Vec<String>]) -> String {
    let n = headers.len();
    if n < SHARED_COLUMNS {
        return n.to_string();
    }
    let word = |s: &str| {
        s.split_whitespace()
            .map(|w| w.chars().count())
            .max()
            .unwrap_or(0)
    };
    let mut widths: Vec<usize> = headers.iter().map(|h| word(h)).collect();
    for row in rows {
        for (j, cell) in row.iter().enumerate().take(n) {
            // A label or a note wraps between words; up to 28 characters it need not.
            let wraps = j == 0 || cell.chars().any(|c| c.is_alphabetic());
            let w = if wraps {
                cell.chars().count().min(28).max(word(cell))
            } else {
                cell.chars().count()
            };
            widths[j] = widths[j].max(w);
        }
    }
    let parts: Vec<String> = widths.iter().map(|w| format!("{}fr", w + 2)).collect();
    format!("({})", parts.join(", "))
}

/// A row label for HTML: a word with a hyphen (an operator's code, OP-03-1) is kept on
/// one line; browsers would break it after a hyphen.
fn row_label_html(label: &str) -> String {
    label
        .split(' ')
        .map(|w| {
            if w.contains('-') {
                format!("<span class=\"nw\">{}</span>", esc_html(w))
            } else {
                esc_html(w)
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

pub(crate) fn esc_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// plotters measures text with ab_glyph: give it a font that ships inside the binary.
pub(crate) fn ensure_font() {
    static FONT: Once = Once::new();
    FONT.call_once(|| {
        for bytes in typst_assets::fonts() {
            if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                break;
            }
        }
    });
}

/// A line chart of one series as SVG (plotters), with hidden points left as gaps.
pub fn chart_svg(title: &str, points: &[(String, Option<u64>)]) -> String {
    ensure_font();
    let mut svg = String::new();
    let max = points.iter().filter_map(|p| p.1).max().unwrap_or(1).max(1) as f64 * 1.15;
    {
        let root = SVGBackend::with_string(&mut svg, (720, 300)).into_drawing_area();
        let draw = || -> Result<(), Box<dyn std::error::Error + '_>> {
            root.fill(&WHITE)?;
            let mut chart = ChartBuilder::on(&root)
                .caption(title, ("sans-serif", 18))
                .margin(12)
                .margin_right(36)
                .x_label_area_size(36)
                .y_label_area_size(60)
                .build_cartesian_2d(0f64..(points.len().max(2) - 1) as f64, 0f64..max)?;
            let labels: Vec<String> = points.iter().map(|p| p.0.clone()).collect();
            chart
                .configure_mesh()
                .x_labels(points.len())
                .x_label_formatter(&|x| labels.get(x.round() as usize).cloned().unwrap_or_default())
                .y_label_formatter(&|y| format!("{y:.0}"))
                .draw()?;
            // Consecutive published points form segments; a hidden point breaks the line.
            let mut seg: Vec<(f64, f64)> = Vec::new();
            let blue = RGBColor(31, 90, 160);
            for (i, (_, v)) in points.iter().enumerate() {
                match v {
                    Some(y) => seg.push((i as f64, *y as f64)),
                    None => {
                        if !seg.is_empty() {
                            chart.draw_series(LineSeries::new(
                                std::mem::take(&mut seg),
                                blue.stroke_width(2),
                            ))?;
                        }
                    }
                }
            }
            chart.draw_series(points.iter().enumerate().filter_map(|(i, (_, v))| {
                v.map(|y| Circle::new((i as f64, y as f64), 3, blue.filled()))
            }))?;
            if !seg.is_empty() {
                chart.draw_series(LineSeries::new(seg, blue.stroke_width(2)))?;
            }
            root.present()?;
            Ok(())
        };
        if draw().is_err() {
            return String::new();
        }
    }
    svg
}

fn table_html(t: &PubTable, lang: Lang, out: &mut String) {
    let _ = write!(
        out,
        "<div class=\"wide\"><table id=\"{}\"><caption>{}</caption><thead><tr><th scope=\"col\">{}</th>",
        esc_html(&t.id),
        esc_html(&t.title),
        esc_html(&t.label_header)
    );
    for c in &t.columns {
        let _ = write!(out, "<th scope=\"col\">{}</th>", esc_html(c));
    }
    out.push_str("</tr></thead><tbody>");
    let n = t.rows.len();
    for (i, (label, vals)) in t.rows.iter().enumerate() {
        let cls = if t.has_total && i + 1 == n {
            " class=\"total\""
        } else {
            ""
        };
        let _ = write!(
            out,
            "<tr{cls}><th scope=\"row\">{}</th>",
            row_label_html(label)
        );
        for v in vals {
            let _ = write!(
                out,
                "<td{}>{}</td>",
                if v.is_none() { " class=\"hidden\"" } else { "" },
                fmt_count(*v, lang)
            );
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table></div>\n");
}

/// A figure in the report's language: decimal comma and grouped thousands in Italian.
pub(crate) fn fmt_figure(v: Option<f64>, decimals: usize, lang: Lang) -> String {
    let Some(x) = v.filter(|x| x.is_finite()) else {
        return HIDDEN.to_string();
    };
    let s = format!("{:.*}", decimals, x.abs());
    let (int, frac) = s.split_once('.').unwrap_or((&s, ""));
    let (group, point) = if lang == Lang::It {
        ('.', ',')
    } else {
        (',', '.')
    };
    let mut out = String::new();
    if x < 0.0 {
        out.push('-');
    }
    for (i, ch) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            out.push(group);
        }
        out.push(ch);
    }
    if !frac.is_empty() {
        out.push(point);
        out.push_str(frac);
    }
    out
}

fn figure_html(t: &FigureTable, lang: Lang, out: &mut String) {
    let _ = write!(
        out,
        "<div class=\"wide\"><table id=\"{}\"><caption>{}</caption><thead><tr>",
        esc_html(&t.id),
        esc_html(&t.title)
    );
    for (k, h) in t.headers.iter().enumerate() {
        // A note column's heading sits over its text, on the left.
        let note = !t.notes.is_empty() && k + 1 == t.headers.len();
        let _ = write!(
            out,
            "<th scope=\"col\"{}>{}</th>",
            if note { " class=\"note\"" } else { "" },
            esc_html(h)
        );
    }
    out.push_str("</tr></thead><tbody>");
    for (i, (label, vals)) in t.rows.iter().enumerate() {
        let _ = write!(out, "<tr><th scope=\"row\">{}</th>", row_label_html(label));
        for (v, d) in vals.iter().zip(&t.decimals) {
            let _ = write!(
                out,
                "<td{}>{}</td>",
                if v.is_none() { " class=\"hidden\"" } else { "" },
                fmt_figure(*v, *d, lang)
            );
        }
        if let Some(note) = t.notes.get(i) {
            let _ = write!(out, "<td class=\"note\">{}</td>", esc_html(note));
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table></div>\n");
}

/// One figure table as CSV: its stable column ids, numbers with a point, hidden as `x`.
pub fn figure_csv(t: &FigureTable) -> String {
    let q = |s: &str| csv_field(s).into_owned();
    let mut out = t.keys.iter().map(|k| q(k)).collect::<Vec<_>>().join(",");
    out.push('\n');
    for (i, (label, vals)) in t.rows.iter().enumerate() {
        out.push_str(&q(label));
        for v in vals {
            out.push(',');
            out.push_str(&v.map_or(HIDDEN.to_string(), |x| format!("{x}")));
        }
        if let Some(note) = t.notes.get(i) {
            out.push(',');
            out.push_str(&q(note));
        }
        out.push('\n');
    }
    out
}

/// The funnel plot: each operator's O/E against its expected number, with the 95 % and
/// 99.8 % limits of a ratio of 1 (only shown operators are drawn).
pub fn funnel_svg(
    title: &str,
    points: &[(String, f64, f64)],
    limits: &[(f64, [f64; 4])],
) -> String {
    ensure_font();
    let mut svg = String::new();
    let xmax = points.iter().map(|p| p.1).fold(1.0f64, f64::max) * 1.1;
    let ymax = points.iter().map(|p| p.2).fold(2.0f64, f64::max) * 1.1;
    {
        let root = SVGBackend::with_string(&mut svg, (720, 360)).into_drawing_area();
        let draw = || -> Result<(), Box<dyn std::error::Error + '_>> {
            root.fill(&WHITE)?;
            let mut chart = ChartBuilder::on(&root)
                .caption(title, ("sans-serif", 18))
                .margin(12)
                .margin_right(36)
                .x_label_area_size(36)
                .y_label_area_size(50)
                .build_cartesian_2d(0f64..xmax, 0f64..ymax)?;
            chart.configure_mesh().x_desc("E").y_desc("O / E").draw()?;
            let grey = RGBColor(150, 150, 150);
            for (k, style) in [
                (0usize, grey.stroke_width(1)),
                (1, grey.stroke_width(1)),
                (2, grey.stroke_width(2)),
                (3, grey.stroke_width(2)),
            ] {
                chart.draw_series(LineSeries::new(
                    limits
                        .iter()
                        .filter(|(e, _)| *e <= xmax)
                        .map(|(e, l)| (*e, l[k].max(0.0).min(ymax))),
                    style,
                ))?;
            }
            chart.draw_series(LineSeries::new(
                [(0.0, 1.0), (xmax, 1.0)],
                BLACK.stroke_width(1),
            ))?;
            let blue = RGBColor(31, 90, 160);
            chart.draw_series(
                points
                    .iter()
                    .map(|(_, e, r)| Circle::new((*e, r.min(ymax)), 4, blue.filled())),
            )?;
            root.present()?;
            Ok(())
        };
        if draw().is_err() {
            return String::new();
        }
    }
    svg
}

/// The report as one self-contained HTML page.
pub fn html(r: &Report) -> String {
    let mut out = String::new();
    let lang = if r.lang == Lang::It { "it" } else { "en" };
    let _ = write!(
        out,
        "<!doctype html><html lang=\"{lang}\"><head><meta charset=\"utf-8\"><title>{}</title><style>\
         body{{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}}\
         table{{border-collapse:collapse;margin:1rem 0 2rem;font-variant-numeric:tabular-nums}}\
         caption{{text-align:left;font-weight:600;margin-bottom:.4rem}}\
         th,td{{border-bottom:1px solid #ddd;padding:.3rem .6rem;text-align:right}}th[scope=row],thead th:first-child,td.note,th.note{{text-align:left}}\
         tr.total{{font-weight:600;border-top:2px solid #444}}td.hidden{{color:#999}}td.note,p.note{{font-size:.9rem;color:#555}}\
         figure{{margin:1rem 0}}figure svg{{max-width:100%;height:auto}}.wide{{overflow-x:auto}}.nw{{white-space:nowrap}}\
         @media print{{body{{max-width:none;margin:0;font-size:10pt}}nav{{display:none}}section{{break-before:page}}\
         table,figure{{break-inside:avoid}}a{{color:inherit;text-decoration:none}}}}\
         </style></head><body><h1>{}</h1><p>{}</p>",
        esc_html(&r.title),
        esc_html(&r.title),
        esc_html(&r.subtitle)
    );
    if r.sections.len() > 1 {
        let _ = write!(
            out,
            "<nav aria-label=\"{0}\"><h2>{0}</h2><ol>",
            if r.lang == Lang::It {
                "Indice"
            } else {
                "Contents"
            }
        );
        for (i, s) in r.sections.iter().enumerate() {
            let _ = write!(
                out,
                "<li><a href=\"#s{}\">{}</a></li>",
                i + 1,
                esc_html(&s.heading)
            );
        }
        out.push_str("</ol></nav>");
    }
    for (i, s) in r.sections.iter().enumerate() {
        let _ = write!(
            out,
            "<section id=\"s{}\"><h2>{}</h2>",
            i + 1,
            esc_html(&s.heading)
        );
        for p in &s.text {
            let _ = write!(out, "<p>{}</p>", esc_html(p));
        }
        for svg in &s.charts {
            out.push_str("<figure>");
            // The SVG comes from our own renderer: numbers and escaped labels only.
            out.push_str(svg);
            out.push_str("</figure>");
        }
        for t in &s.tables {
            table_html(t, r.lang, &mut out);
        }
        for f in &s.figures {
            figure_html(f, r.lang, &mut out);
        }
        out.push_str("</section>");
    }
    let _ = writeln!(
        out,
        "<p class=\"note\">{}</p></body></html>",
        esc_html(&r.privacy_note)
    );
    out
}

/// The report as Typst markup plus the in-memory assets (charts) it references.
pub fn markup(r: &Report) -> (String, Vec<Asset>) {
    let mut m = String::new();
    let mut assets = Vec::new();
    let lang = if r.lang == Lang::It { "it" } else { "en" };
    let _ = writeln!(m, "#set document(title: \"{}\")", r.title.replace('"', "'"));
    let _ = writeln!(
        m,
        "#set page(paper: \"a4\", margin: 2cm, numbering: \"1 / 1\")"
    );
    let _ = writeln!(m, "#set text(lang: \"{lang}\", size: 10pt)");
    let _ = writeln!(m, "#set table(stroke: 0.4pt + gray, inset: 4pt)");
    let _ = writeln!(m, "#set heading(numbering: \"1.\")");
    let _ = writeln!(
        m,
        "#text(size: 17pt, weight: \"bold\")[{}]\n",
        escape(&r.title)
    );
    let _ = writeln!(m, "{}\n", escape(&r.subtitle));
    if r.sections.len() > 1 {
        let contents = if r.lang == Lang::It {
            "Indice"
        } else {
            "Contents"
        };
        let _ = writeln!(m, "#outline(title: [{contents}], depth: 1)\n");
    }
    for (si, s) in r.sections.iter().enumerate() {
        let _ = writeln!(m, "= {}\n", escape(&s.heading));
        for p in &s.text {
            let _ = writeln!(m, "{}\n", escape(p));
        }
        for (ci, svg) in s.charts.iter().enumerate().filter(|(_, c)| !c.is_empty()) {
            let path = format!("chart-{si}-{ci}.svg");
            let _ = writeln!(m, "#figure(image(\"{path}\", width: 100%))\n");
            assets.push(Asset {
                path,
                bytes: svg.as_bytes().to_vec(),
            });
        }
        for t in &s.tables {
            let _ = writeln!(m, "*{}*\n", escape(&t.title));
            let ncols = t.columns.len() + 1;
            let small = ncols >= WIDE_TABLE;
            if small {
                m.push_str("#text(size: 8pt)[\n");
            }
            let mut heads = vec![t.label_header.clone()];
            heads.extend(t.columns.iter().cloned());
            let cells: Vec<Vec<String>> = t
                .rows
                .iter()
                .map(|(label, vals)| {
                    std::iter::once(label.clone())
                        .chain(vals.iter().map(|v| fmt_count(*v, r.lang)))
                        .collect()
                })
                .collect();
            let _ = writeln!(
                m,
                "#table(columns: {}, align: (left, {}),",
                pdf_columns(&heads, &cells),
                vec!["right"; t.columns.len()].join(", ")
            );
            let _ = write!(m, "  table.header([*{}*]", escape(&t.label_header));
            for c in &t.columns {
                let _ = write!(m, ", [*{}*]", escape(c));
            }
            m.push_str("),\n");
            let n = t.rows.len();
            for (i, (label, vals)) in t.rows.iter().enumerate() {
                let bold = t.has_total && i + 1 == n;
                let wrap = |s: String| {
                    if bold {
                        format!("[*{s}*]")
                    } else {
                        format!("[{s}]")
                    }
                };
                let _ = write!(m, "  {}", wrap(escape(label)));
                for v in vals {
                    let _ = write!(m, ", {}", wrap(escape(&fmt_count(*v, r.lang))));
                }
                m.push_str(",\n");
            }
            m.push_str(if small { ")\n]\n\n" } else { ")\n\n" });
        }
        for f in &s.figures {
            let _ = writeln!(m, "*{}*\n", escape(&f.title));
            let n = f.headers.len();
            // A note column (text) is left-aligned like the labels.
            let mut align = vec!["right"; n.saturating_sub(1).max(1)];
            if !f.notes.is_empty()
                && let Some(last) = align.last_mut()
            {
                *last = "left";
            }
            // A wide table in a smaller type, so that no header word runs into the next.
            let small = n >= WIDE_TABLE;
            if small {
                m.push_str("#text(size: 8pt)[\n");
            }
            let cells: Vec<Vec<String>> = f
                .rows
                .iter()
                .enumerate()
                .map(|(i, (label, vals))| {
                    std::iter::once(label.clone())
                        .chain(
                            vals.iter()
                                .zip(&f.decimals)
                                .map(|(v, d)| fmt_figure(*v, *d, r.lang)),
                        )
                        .chain(f.notes.get(i).cloned())
                        .collect()
                })
                .collect();
            let _ = writeln!(
                m,
                "#table(columns: {}, align: (left, {}),",
                pdf_columns(&f.headers, &cells),
                align.join(", ")
            );
            let heads: Vec<String> = f
                .headers
                .iter()
                .map(|h| format!("[*{}*]", escape(h)))
                .collect();
            let _ = writeln!(m, "  table.header({}),", heads.join(", "));
            for (i, (label, vals)) in f.rows.iter().enumerate() {
                let mut cells = vec![format!("[{}]", escape(label))];
                cells.extend(
                    vals.iter()
                        .zip(&f.decimals)
                        .map(|(v, d)| format!("[{}]", escape(&fmt_figure(*v, *d, r.lang)))),
                );
                if let Some(note) = f.notes.get(i) {
                    cells.push(format!("[#text(size: 7pt)[{}]]", escape(note)));
                }
                let _ = writeln!(m, "  {},", cells.join(", "));
            }
            m.push_str(if small { ")\n]\n\n" } else { ")\n\n" });
        }
    }
    let _ = writeln!(m, "#text(size: 8pt)[{}]", escape(&r.privacy_note));
    (m, assets)
}

/// The report as an XLSX workbook: one sheet per table, numbers as numbers, hidden
/// values as `x`, and a notes sheet.
pub fn xlsx(r: &Report) -> Result<Vec<u8>, rust_xlsxwriter::XlsxError> {
    use rust_xlsxwriter::{Format, Workbook};
    let safe = |s: &str| spreadsheet_safe(s).into_owned();
    let mut wb = Workbook::new();
    let bold = Format::new().set_bold();
    for s in &r.sections {
        for t in &s.tables {
            let ws = wb.add_worksheet();
            let name: String = t.id.chars().take(31).collect();
            ws.set_name(&name)?;
            ws.write_string_with_format(0, 0, safe(&t.title), &bold)?;
            ws.write_string_with_format(2, 0, safe(&t.label_header), &bold)?;
            for (c, h) in t.columns.iter().enumerate() {
                ws.write_string_with_format(2, c as u16 + 1, safe(h), &bold)?;
            }
            for (i, (label, vals)) in t.rows.iter().enumerate() {
                let row = i as u32 + 3;
                ws.write_string(row, 0, safe(label))?;
                for (c, v) in vals.iter().enumerate() {
                    match v {
                        Some(n) => ws.write_number(row, c as u16 + 1, *n as f64)?,
                        None => ws.write_string(row, c as u16 + 1, HIDDEN)?,
                    };
                }
            }
            ws.set_column_width(0, 48)?;
        }
        for f in &s.figures {
            let ws = wb.add_worksheet();
            let name: String = f.id.chars().take(31).collect();
            ws.set_name(&name)?;
            ws.write_string_with_format(0, 0, safe(&f.title), &bold)?;
            for (c, h) in f.headers.iter().enumerate() {
                ws.write_string_with_format(2, c as u16, safe(h), &bold)?;
            }
            for (i, (label, vals)) in f.rows.iter().enumerate() {
                let row = i as u32 + 3;
                ws.write_string(row, 0, safe(label))?;
                for (c, v) in vals.iter().enumerate() {
                    match v {
                        Some(x) => ws.write_number(row, c as u16 + 1, *x)?,
                        None => ws.write_string(row, c as u16 + 1, HIDDEN)?,
                    };
                }
                if let Some(note) = f.notes.get(i) {
                    ws.write_string(row, vals.len() as u16 + 1, safe(note))?;
                }
            }
            ws.set_column_width(0, 24)?;
        }
    }
    let ws = wb.add_worksheet();
    ws.set_name(if r.lang == Lang::It { "note" } else { "notes" })?;
    ws.write_string_with_format(0, 0, safe(&r.title), &bold)?;
    ws.write_string(1, 0, safe(&r.subtitle))?;
    ws.write_string(3, 0, safe(&r.privacy_note))?;
    wb.save_to_buffer()
}

/// One table as CSV (UTF-8, comma-separated, hidden values as `x`).
pub fn csv(t: &PubTable) -> String {
    let q = |s: &str| csv_field(s).into_owned();
    let mut out = String::new();
    out.push_str(&q(&t.label_header));
    for c in &t.columns {
        out.push(',');
        out.push_str(&q(c));
    }
    out.push('\n');
    for (label, vals) in &t.rows {
        out.push_str(&q(label));
        for v in vals {
            out.push(',');
            out.push_str(&v.map_or(HIDDEN.to_string(), |n| n.to_string()));
        }
        out.push('\n');
    }
    out
}

/// The report as JSON (DESIGN.md): period, language, every table with its columns and
/// rows (hidden values `null`), and the provenance: the publication's id and what its
/// protection established.
pub fn json(r: &Report) -> String {
    // Every table names the data, the engine and the spec it comes from.
    let provenance = |id: &str| -> serde_json::Value {
        use sha2::{Digest, Sha256};
        let name = crate::spec_of(id);
        let spec = r
            .provenance
            .specs
            .get(name)
            .cloned()
            .unwrap_or(serde_json::Value::Null);
        let text = serde_json::to_string(&spec).unwrap_or_default();
        let hash: String = Sha256::digest(text.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        serde_json::json!({
            "publication": r.id,
            "data_snapshot": r.provenance.data_snapshot,
            "engine": r.provenance.engine,
            "analysis": name,
            "spec": spec,
            "spec_sha256": hash,
        })
    };
    let table_json = |t: &PubTable| {
        let mut columns = vec![t.label_header.clone()];
        columns.extend(t.columns.iter().cloned());
        serde_json::json!({
            "id": t.id,
            "title": t.title,
            "provenance": provenance(&t.id),
            "columns": columns,
            "rows": t.rows.iter().map(|(label, vals)| {
                let mut row = vec![serde_json::Value::from(label.clone())];
                row.extend(vals.iter().map(|v| v.map_or(serde_json::Value::Null, serde_json::Value::from)));
                row
            }).collect::<Vec<_>>(),
        })
    };
    let figure_json = |f: &FigureTable| {
        serde_json::json!({
            "id": f.id,
            "title": f.title,
            "provenance": provenance(&f.id),
            "columns": f.keys,
            "rows": f.rows.iter().enumerate().map(|(i, (label, vals))| {
                let mut row = vec![serde_json::Value::from(label.clone())];
                // Counts as integers, other figures as numbers.
                row.extend(vals.iter().zip(&f.decimals).map(|(v, d)| match v {
                    None => serde_json::Value::Null,
                    Some(x) if *d == 0 && x.fract() == 0.0 && x.abs() < 9e15 => serde_json::Value::from(*x as i64),
                    Some(x) => serde_json::Value::from(*x),
                }));
                if let Some(note) = f.notes.get(i) {
                    row.push(serde_json::Value::from(note.clone()));
                }
                row
            }).collect::<Vec<_>>(),
        })
    };
    // In the report's order, section by section.
    let tables: Vec<serde_json::Value> = r
        .sections
        .iter()
        .flat_map(|s| {
            s.tables
                .iter()
                .map(table_json)
                .chain(s.figures.iter().map(figure_json))
        })
        .collect();
    let charts: Vec<serde_json::Value> = r
        .sections
        .iter()
        .filter_map(|s| s.chart_data.as_ref())
        .map(|(id, points)| {
            serde_json::json!({
                "id": id,
                "points": points.iter().map(|(l, v)| serde_json::json!([l, v])).collect::<Vec<_>>(),
            })
        })
        .collect();
    let v = serde_json::json!({
        "period": r.period,
        "lang": if r.lang == Lang::It { "it" } else { "en" },
        "title": r.title,
        "tables": tables,
        "charts": charts,
        "provenance": {
            "publication": r.id,
            "generated": r.subtitle,
            "data_snapshot": r.provenance.data_snapshot,
            "engine": r.provenance.engine,
            "specs": r.provenance.specs,
            "protection": r.protection,
        },
    });
    let mut s = serde_json::to_string_pretty(&v).unwrap_or_default();
    s.push('\n');
    s
}

/// Horizontal grouped bars as SVG: a group per category, a bar per series, the value at
/// each bar's end (`x` where hidden). Written by hand like the map: long Italian labels
/// need a label column that plotters' axis labels do not wrap.
pub fn bars_svg(
    title: &str,
    categories: &[String],
    series: &[(String, Vec<Option<f64>>)],
    lang: Lang,
) -> String {
    const COLOURS: [&str; 4] = ["#9ecae1", "#3182bd", "#fd8d3c", "#31a354"];
    let label_w = 300.0;
    let bar_w = 330.0;
    let bar_h = 13.0;
    let group_h = bar_h * series.len() as f64 + 10.0;
    let top = 46.0;
    let height = top + group_h * categories.len() as f64 + 10.0;
    let width = label_w + bar_w + 70.0;
    let max = series
        .iter()
        .flat_map(|(_, v)| v.iter().flatten())
        .fold(0.0_f64, |m, x| m.max(x.abs()))
        .max(1e-9);
    let decimals = if series
        .iter()
        .flat_map(|(_, v)| v.iter().flatten())
        .all(|x| x.fract() == 0.0)
    {
        0
    } else {
        1
    };
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" viewBox=\"0 0 {width:.0} {height:.0}\" role=\"img\" aria-labelledby=\"bt\" font-family=\"sans-serif\" font-size=\"11\"><title id=\"bt\">{}</title><rect width=\"100%\" height=\"100%\" fill=\"white\"/><text x=\"4\" y=\"16\" font-size=\"13\" font-weight=\"bold\">{}</text>",
        esc_html(title),
        esc_html(title)
    );
    // Legend.
    let mut lx = 4.0;
    for (k, (name, _)) in series.iter().enumerate() {
        let _ = write!(
            s,
            "<rect x=\"{lx:.0}\" y=\"24\" width=\"12\" height=\"10\" fill=\"{}\"/><text x=\"{:.0}\" y=\"33\">{}</text>",
            COLOURS[k % COLOURS.len()],
            lx + 16.0,
            esc_html(name)
        );
        lx += 24.0 + 6.5 * name.chars().count() as f64;
    }
    for (i, cat) in categories.iter().enumerate() {
        let y0 = top + group_h * i as f64;
        // Long labels are cut with an ellipsis; the table beside gives them whole.
        let shown: String = if cat.chars().count() > 46 {
            cat.chars().take(45).collect::<String>() + "…"
        } else {
            cat.clone()
        };
        let _ = write!(
            s,
            "<text x=\"{:.0}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            label_w - 8.0,
            y0 + group_h / 2.0,
            esc_html(&shown)
        );
        for (k, (name, values)) in series.iter().enumerate() {
            let y = y0 + bar_h * k as f64;
            let v = values.get(i).copied().flatten();
            let w = v.map_or(0.0, |x| x.abs() / max * bar_w);
            let _ = write!(
                s,
                "<rect x=\"{label_w:.0}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{:.1}\" fill=\"{}\"><title>{}: {}</title></rect><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\">{}</text>",
                bar_h - 2.0,
                COLOURS[k % COLOURS.len()],
                esc_html(name),
                fmt_figure(v, decimals, lang),
                label_w + w + 4.0,
                y + bar_h - 3.0,
                fmt_figure(v, decimals, lang)
            );
        }
    }
    let _ = write!(
        s,
        "<line x1=\"{label_w:.0}\" y1=\"{:.0}\" x2=\"{label_w:.0}\" y2=\"{:.0}\" stroke=\"#333\"/></svg>",
        top - 4.0,
        height - 6.0
    );
    s
}
