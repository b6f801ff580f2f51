//! PDF rendering of Typst markup, fully offline.
//!
//! Reports are typeset by the Typst compiler linked into the binary: the only
//! fonts are the ones bundled by `typst-assets`, the only files are the main
//! markup and the in-memory [`Asset`]s handed to [`render_pdf`], and package
//! imports are refused, so rendering never touches the network or the disk
//! and gives the same layout on every machine.

use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use typst::diag::{FileError, FileResult, PackageError, Severity, SourceDiagnostic};
use typst::foundations::{Bytes, Datetime, Duration};
use typst::syntax::{DiagSpan, FileId, RootedPath, Source, VirtualPath, VirtualRoot};
use typst::text::{Font, FontBook};
use typst::utils::LazyHash;
use typst::{Library, LibraryExt, World, WorldExt};
use typst_pdf::PdfOptions;

/// An in-memory file the document can reference, e.g. a chart: `#image("chart-1.svg")`.
///
/// The path is resolved like a path in a Typst project whose root holds the
/// main file, so `"chart-1.svg"`, `"./chart-1.svg"` and `"/chart-1.svg"` name
/// the same asset; `"charts/q1.svg"` is referenced as `#image("charts/q1.svg")`.
#[derive(Debug, Clone)]
pub struct Asset {
    /// Project-relative path, with `/` as separator.
    pub path: String,
    /// Raw file content (SVG, PNG, JPEG, CSV, ...).
    pub bytes: Vec<u8>,
}

/// A failed PDF rendering.
///
/// The text holds the Typst diagnostics, one per line, each with its message,
/// its location in the markup (line and column, 1-based) and any hints, so it
/// can be logged or shown as is.
#[derive(Debug)]
pub struct PdfError(pub String);

impl fmt::Display for PdfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PdfError {}

/// Compiles Typst markup to PDF bytes. Errors carry the Typst diagnostics as readable text (message + line).
///
/// `assets` are the only files the markup can read (`image`, `read`, `csv`,
/// `include`, ...); anything else, and every `@preview` or other package
/// import, is an error.
pub fn render_pdf(markup: &str, assets: &[Asset]) -> Result<Vec<u8>, PdfError> {
    let world = ReportWorld::new(markup, assets)?;
    // The document type is inferred from `typst_pdf::pdf`, which spares the
    // crate a direct dependency on `typst-layout` just to name `PagedDocument`.
    let compiled = typst::compile(&world).output;
    let result = compiled
        .map_err(|errors| PdfError(world.describe(&errors)))
        .and_then(|document| {
            typst_pdf::pdf(&document, &PdfOptions::default())
                .map_err(|errors| PdfError(world.describe(&errors)))
        });
    // Typst memoises every compilation in a process-wide cache; without
    // eviction a long batch of reports would keep all of them alive. Entries
    // unused for a few compilations go, so shared work (fonts, library)
    // stays warm between consecutive reports.
    typst::comemo::evict(10);
    result
}

/// Escapes user text (names of territories, labels) so it is shown literally inside Typst markup content.
///
/// Every ASCII punctuation character gets a backslash, which Typst turns
/// back into the bare character. That covers all markup starters
/// (`\ # $ * _ ` < > @ [ ] ~ / = - + " '`) and also the less obvious ones:
/// `.` and `:` (the `...` shorthand, `1.` enumerations, `https://` links),
/// and `(` `[` `.` right after an embedded `#expr`, which would otherwise
/// continue the expression as a call or field access. Line breaks of any kind
/// become spaces, because a newline can start a heading or list item and a
/// blank line would split the paragraph. The result is only meant for
/// content (markup) mode, not for Typst string literals.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 4);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\r' && chars.peek() == Some(&'\n') {
            // A Windows line ending is one break, not two spaces.
            continue;
        }
        if typst::syntax::is_newline(c) {
            out.push(' ');
        } else {
            if c.is_ascii_punctuation() {
                out.push('\\');
            }
            out.push(c);
        }
    }
    out
}

/// Fonts bundled with `typst-assets`, parsed once per process: parsing them
/// takes noticeable time and they never change.
struct FontStore {
    book: LazyHash<FontBook>,
    fonts: Vec<Font>,
}

fn font_store() -> &'static FontStore {
    static STORE: OnceLock<FontStore> = OnceLock::new();
    STORE.get_or_init(|| {
        let fonts: Vec<Font> = typst_assets::fonts()
            .flat_map(|data| Font::iter(Bytes::new(data)))
            .collect();
        FontStore {
            book: LazyHash::new(FontBook::from_fonts(&fonts)),
            fonts,
        }
    })
}

/// The standard library, built once: it is immutable, and sharing one
/// instance lets Typst's memoisation recognise it across reports.
fn library() -> &'static LazyHash<Library> {
    static LIBRARY: OnceLock<LazyHash<Library>> = OnceLock::new();
    LIBRARY.get_or_init(|| LazyHash::new(Library::default()))
}

/// Virtual path of the main markup. It is the same for every report because
/// Typst interns file ids for the life of the process (at most 2^16 of them),
/// so a fresh name per report would eventually run out.
const MAIN_PATH: &str = "/main.typ";

/// Everything one compilation can see: the markup and its assets, in memory.
struct ReportWorld {
    main: Source,
    assets: HashMap<VirtualPath, Bytes>,
}

impl ReportWorld {
    fn new(markup: &str, assets: &[Asset]) -> Result<Self, PdfError> {
        let main_path = project_path(MAIN_PATH)?;
        let main = Source::new(
            RootedPath::new(VirtualRoot::Project, main_path).intern(),
            markup.to_owned(),
        );
        let assets = assets
            .iter()
            .map(|asset| Ok((project_path(&asset.path)?, Bytes::new(asset.bytes.clone()))))
            .collect::<Result<_, PdfError>>()?;
        Ok(Self { main, assets })
    }

    /// Bytes of a project file other than the main one.
    fn asset(&self, id: FileId) -> FileResult<&Bytes> {
        match id.root() {
            VirtualRoot::Package(spec) => Err(FileError::Package(PackageError::Other(Some(
                format!("{spec} is unavailable: reports are rendered offline without packages")
                    .into(),
            )))),
            VirtualRoot::Project => self
                .assets
                .get(id.vpath())
                .ok_or_else(|| FileError::NotFound(PathBuf::from(id.vpath().get_with_slash()))),
        }
    }

    /// Renders diagnostics as plain text, one diagnostic per line (hints and
    /// call traces indented below it), since callers only log or display them.
    fn describe(&self, diagnostics: &[SourceDiagnostic]) -> String {
        let mut text = String::new();
        for diagnostic in diagnostics {
            if !text.is_empty() {
                text.push('\n');
            }
            let severity = match diagnostic.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            };
            let _ = write!(text, "{severity}: {}", diagnostic.message);
            if let Some(location) = self.locate(diagnostic.span) {
                let _ = write!(text, " ({location})");
            }
            for point in &diagnostic.trace {
                let _ = write!(text, "\n  {}", point.v);
                if let Some(location) = self.locate(point.span.into()) {
                    let _ = write!(text, " ({location})");
                }
            }
            for hint in &diagnostic.hints {
                let _ = write!(text, "\n  hint: {}", hint.v);
            }
        }
        text
    }

    /// "line L, column C" for the main markup, prefixed with the path for
    /// assets; `None` when the span points nowhere.
    fn locate(&self, span: DiagSpan) -> Option<String> {
        let id = span.id()?;
        let range = self.range(span);
        let position = range.and_then(|range| {
            let source = self.source(id).ok()?;
            let (line, column) = source.lines().byte_to_line_column(range.start)?;
            Some(format!("line {}, column {}", line + 1, column + 1))
        });
        if id == self.main.id() {
            position
        } else {
            let path = id.vpath().get_with_slash();
            Some(match position {
                Some(position) => format!("{path}, {position}"),
                None => path.to_owned(),
            })
        }
    }
}

impl World for ReportWorld {
    fn library(&self) -> &LazyHash<Library> {
        library()
    }

    fn book(&self) -> &LazyHash<FontBook> {
        &font_store().book
    }

    fn main(&self) -> FileId {
        self.main.id()
    }

    fn source(&self, id: FileId) -> FileResult<Source> {
        if id == self.main.id() {
            return Ok(self.main.clone());
        }
        // Lets the markup `#include` a Typst asset.
        let bytes = self.asset(id)?;
        let text = std::str::from_utf8(bytes.as_slice()).map_err(|_| FileError::InvalidUtf8)?;
        Ok(Source::new(id, text.to_owned()))
    }

    fn file(&self, id: FileId) -> FileResult<Bytes> {
        if id == self.main.id() {
            return Ok(Bytes::from_string(self.main.text().to_owned()));
        }
        self.asset(id).cloned()
    }

    fn font(&self, index: usize) -> Option<Font> {
        font_store().fonts.get(index).cloned()
    }

    /// Without a time-zone database there is no local date, so a request
    /// without offset gets the UTC date; an explicit offset is honoured.
    fn today(&self, offset: Option<Duration>) -> Option<Datetime> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?;
        let now = i64::try_from(now.as_secs()).ok()?;
        // `as` saturates on out-of-range floats, and the sum is checked.
        let shift = offset.map_or(0, |offset| offset.seconds() as i64);
        let days = now.checked_add(shift)?.div_euclid(86_400);
        let (year, month, day) = civil_from_days(days)?;
        Datetime::from_ymd(year, month, day)
    }
}

/// Parses a project path, turning Typst's path errors (backslashes, `..`
/// escaping the root) into a [`PdfError`] naming the offending path.
fn project_path(path: &str) -> Result<VirtualPath, PdfError> {
    VirtualPath::new(path).map_err(|err| PdfError(format!("invalid asset path {path:?}: {err}")))
}

/// Gregorian date of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`), so `today` needs no date crate.
fn civil_from_days(days: i64) -> Option<(i32, u8, u8)> {
    let z = days.checked_add(719_468)?;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era.checked_mul(400)? + i64::from(month <= 2);
    Some((
        i32::try_from(year).ok()?,
        u8::try_from(month).ok()?,
        u8::try_from(day).ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHART_SVG: &str = r##"<svg xmlns="http://www.w3.org/2000/svg" width="200" height="100" viewBox="0 0 200 100">
  <rect x="10" y="40" width="40" height="50" fill="#4477aa"/>
  <rect x="70" y="20" width="40" height="70" fill="#ee6677"/>
  <text x="10" y="15" font-family="Libertinus Serif" font-size="12">Occupati 2025</text>
</svg>"##;

    fn assert_pdf(bytes: &[u8]) {
        assert!(
            bytes.starts_with(b"%PDF"),
            "not a PDF: {:?}",
            &bytes[..bytes.len().min(16)]
        );
        assert!(
            bytes.len() > 1000,
            "suspiciously small PDF: {} bytes",
            bytes.len()
        );
    }

    #[test]
    fn renders_heading_table_accents_and_svg() {
        let markup = r#"#set page(paper: "a4")
#set text(lang: "it")

= Rapporto trimestrale

Attività, città, perché: più occupati nelle città.

#table(
  columns: 3,
  [Territorio], [Occupati], [Tasso],
  [Lombardia], [4.512], [68,2%],
  [Valle d'Aosta], [56], [70,1%],
)

#figure(image("chart-1.svg", width: 80%), caption: [Occupati per territorio])
"#;
        let assets = [Asset {
            path: "chart-1.svg".into(),
            bytes: CHART_SVG.as_bytes().to_vec(),
        }];
        let pdf = render_pdf(markup, &assets).expect("document should compile");
        assert_pdf(&pdf);
    }

    #[test]
    fn assets_resolve_in_subdirectories() {
        let assets = [Asset {
            path: "/charts/q1.svg".into(),
            bytes: CHART_SVG.as_bytes().to_vec(),
        }];
        let pdf = render_pdf("#image(\"charts/q1.svg\")", &assets).expect("asset should resolve");
        assert_pdf(&pdf);
    }

    #[test]
    fn unfinished_let_reports_the_problem_and_line() {
        let err = render_pdf("= Titolo\n#let x = \n", &[]).expect_err("markup is broken");
        assert!(err.0.contains("expected expression"), "{err}");
        assert!(err.0.contains("line 2"), "{err}");
    }

    #[test]
    fn unknown_function_reports_its_name() {
        let err =
            render_pdf("Testo\n\n#grafico_inesistente(1)\n", &[]).expect_err("unknown function");
        assert!(
            err.0.contains("unknown variable: grafico_inesistente"),
            "{err}"
        );
        assert!(err.0.contains("line 3, column 2"), "{err}");
        // The error type is meant to travel through `?` into anyhow/thiserror.
        let boxed: Box<dyn std::error::Error> = Box::new(err);
        assert!(boxed.to_string().starts_with("error: "));
    }

    #[test]
    fn missing_asset_is_not_found() {
        let err = render_pdf("#image(\"manca.svg\")", &[]).expect_err("asset is missing");
        assert!(err.0.contains("not found"), "{err}");
        assert!(err.0.contains("manca.svg"), "{err}");
    }

    #[test]
    fn package_imports_are_refused() {
        let err =
            render_pdf("#import \"@preview/cetz:0.3.4\": canvas\n", &[]).expect_err("no packages");
        assert!(err.0.contains("@preview/cetz:0.3.4"), "{err}");
        assert!(err.0.contains("offline"), "{err}");
    }

    #[test]
    fn invalid_asset_path_is_an_error() {
        let assets = [Asset {
            path: "../fuori.svg".into(),
            bytes: Vec::new(),
        }];
        let err = render_pdf("x", &assets).expect_err("path escapes the root");
        assert!(err.0.contains("../fuori.svg"), "{err}");
    }

    #[test]
    fn escaped_text_renders() {
        let markup = format!("#set page(width: 10cm)\n{}", escape("a*b_c#d[e]"));
        assert_pdf(&render_pdf(&markup, &[]).expect("escaped text should compile"));
    }

    #[test]
    fn escaped_text_is_literal() {
        // Typst itself checks that the content's plain text equals the input,
        // so a markup character that slipped through fails the compilation.
        let nasty = "a*b_c#d[e] \\ $x$ `raw` <lbl> @ref ~ // /* = - + \"q\" 'q' \
                     ... -- 1. -1 https://x.it #f(x).y {z} l'Aquila: Forlì–Cesena\n= non titolo\r\n- non lista";
        let expected = nasty.replace("\r\n", " ").replace('\n', " ");
        let markup = format!(
            "#let flat(c) = if c.has(\"text\") {{ c.text }} \
             else if c.has(\"children\") {{ c.children.map(flat).join() }} \
             else if c.func() == [ ].func() {{ \" \" }} \
             else {{ panic(repr(c)) }}\n\
             #let body = [{}]\n\
             #assert.eq(flat(body), {})\n\
             #body\n",
            escape(nasty),
            typst_string(&expected),
        );
        assert_pdf(&render_pdf(&markup, &[]).expect("escaped text should be literal"));
    }

    #[test]
    fn escape_turns_line_breaks_into_spaces() {
        assert_eq!(escape("a\nb\r\nc\rd\u{2028}e"), "a b c d e");
        assert_eq!(escape("Città di #1"), "Città di \\#1");
    }

    #[test]
    fn today_is_available() {
        let markup = "#datetime.today().display()\n#datetime.today(offset: 2).display()";
        assert_pdf(&render_pdf(markup, &[]).expect("today should be known"));
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), Some((1970, 1, 1)));
        assert_eq!(civil_from_days(59), Some((1970, 3, 1)));
        assert_eq!(civil_from_days(11_016), Some((2000, 2, 29)));
        assert_eq!(civil_from_days(19_723), Some((2024, 1, 1)));
        assert_eq!(civil_from_days(-1), Some((1969, 12, 31)));
        assert_eq!(civil_from_days(-719_468), Some((0, 3, 1)));
        assert_eq!(civil_from_days(2_932_896), Some((9999, 12, 31)));
        assert_eq!(civil_from_days(i64::MAX), None);
    }

    /// A Typst string literal, for comparing against escaped content.
    fn typst_string(text: &str) -> String {
        let mut out = String::from("\"");
        for c in text.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                _ => out.push(c),
            }
        }
        out.push('"');
        out
    }
}
