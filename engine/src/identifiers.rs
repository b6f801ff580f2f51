//! Identifiers hidden in text: what an operator types into a free-text column, a
//! misplaced cell, a value about to be echoed in an error.
//!
//! Four kinds are found, in every shape seen in real exports:
//! - **tax codes**: the 16-character pattern in any case, with spaces, dots or dashes
//!   between its groups (`RSS MRA 85T10 A562S`), glued to other words (`cfRSSMRA…ok`),
//!   with omocodic letters, with a wrong or missing check letter. A shape with at least
//!   one real digit is enough; a fully omocodic one must also carry its check letter,
//!   which keeps ordinary words from matching;
//! - **long numbers**: nine digits or more, spaces and dots allowed between them: the
//!   11-digit temporary codes and VAT numbers, phone numbers, the digits of an IBAN;
//! - **e-mail addresses**;
//! - **personal names**: the person's own name when the row carries it, the names a
//!   tenant has seen (its [`NameRegistry`], keyed hashes only), and the shipped lists of
//!   given names and surnames (`engine/data/names/`). A given name is removed on its own;
//!   a surname or a name that is also a common word (`Rosa`, `Franco`, `Assunta`) only
//!   next to another name or after a title (`sig.ra`, `dott.`), since a surname alone
//!   (`Ferrari`, `Costa`) is as often a firm or a place.
//!
//! ```
//! use occupa_engine::identifiers::{Redactions, Scanner};
//!
//! let mut n = Redactions::default();
//! let out = Scanner::new().redact("colloquio con Mario Rossi, cf rss mra 85t10 a562s", &[], &mut n);
//! assert_eq!(out, "colloquio con [nome rimosso], cf [codice fiscale rimosso]");
//! assert_eq!((n.names, n.tax_codes), (1, 1));
//! ```

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::OnceLock;

use serde::Serialize;

use crate::codice_fiscale::check_character;
use crate::pseudonym::Pseudonymiser;

/// What was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum IdKind {
    /// A tax code (personal shape).
    TaxCode,
    /// Nine digits or more: temporary codes, VAT and phone numbers, IBAN digits.
    Number,
    /// An e-mail address.
    Email,
    /// A personal name.
    Name,
}

impl IdKind {
    /// The text that replaces it.
    pub fn marker(self) -> &'static str {
        match self {
            IdKind::TaxCode => "[codice fiscale rimosso]",
            IdKind::Number => "[numero rimosso]",
            IdKind::Email => "[email rimossa]",
            IdKind::Name => "[nome rimosso]",
        }
    }
}

/// One identifier: a byte range of the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
    /// What it is.
    pub kind: IdKind,
}

/// How many identifiers of each kind were removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Redactions {
    /// Tax codes.
    pub tax_codes: usize,
    /// Long numbers.
    pub numbers: usize,
    /// E-mail addresses.
    pub emails: usize,
    /// Names.
    pub names: usize,
}

impl Redactions {
    fn add(&mut self, kind: IdKind) {
        match kind {
            IdKind::TaxCode => self.tax_codes += 1,
            IdKind::Number => self.numbers += 1,
            IdKind::Email => self.emails += 1,
            IdKind::Name => self.names += 1,
        }
    }
    /// Adds another count.
    pub fn merge(&mut self, other: &Redactions) {
        self.tax_codes += other.tax_codes;
        self.numbers += other.numbers;
        self.emails += other.emails;
        self.names += other.names;
    }
    /// All kinds together.
    pub fn total(&self) -> usize {
        self.tax_codes + self.numbers + self.emails + self.names
    }
}

struct NameLists {
    first: HashSet<&'static str>,
    surnames: HashSet<&'static str>,
    ambiguous: HashSet<&'static str>,
}

fn lists() -> &'static NameLists {
    static LISTS: OnceLock<NameLists> = OnceLock::new();
    LISTS.get_or_init(|| {
        let set = |s: &'static str| s.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        NameLists {
            first: set(include_str!("../data/names/first_names.txt")),
            surnames: set(include_str!("../data/names/surnames.txt")),
            ambiguous: set(include_str!("../data/names/ambiguous.txt")),
        }
    })
}

/// Particles that are never names on their own.
const PARTICLES: [&str; 24] = [
    "di", "de", "del", "della", "dei", "degli", "delle", "dello", "da", "dal", "dalla", "la", "le",
    "lo", "il", "al", "san", "santa", "santo", "van", "von", "ben", "bin", "abu",
];

/// Forms of address after which a capitalised word is a name.
const TITLES: [&str; 22] = [
    "sig",
    "sigra",
    "signor",
    "signora",
    "signore",
    "sigg",
    "dott",
    "dottssa",
    "dottor",
    "dottore",
    "dottoressa",
    "dr",
    "avv",
    "ing",
    "prof",
    "geom",
    "rag",
    "sr",
    "mr",
    "mrs",
    "ms",
    "mme",
];

/// A name token as the lists hold it: lower case, accents removed, letters only.
pub fn normalise_name(token: &str) -> String {
    let mut out = String::with_capacity(token.len());
    for ch in token.chars().flat_map(char::to_lowercase) {
        let base = match ch {
            'à' | 'á' | 'â' | 'ä' | 'ã' | 'å' | 'ă' | 'ā' => 'a',
            'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ę' => 'e',
            'ì' | 'í' | 'î' | 'ï' | 'ī' => 'i',
            'ò' | 'ó' | 'ô' | 'ö' | 'õ' | 'ø' | 'ō' => 'o',
            'ù' | 'ú' | 'û' | 'ü' | 'ū' => 'u',
            'ç' | 'ć' | 'č' => 'c',
            'ñ' | 'ń' => 'n',
            'ș' | 'ş' | 'š' | 'ś' => 's',
            'ț' | 'ţ' => 't',
            'ž' | 'ź' | 'ż' => 'z',
            'ł' => 'l',
            'ý' | 'ÿ' => 'y',
            c => c,
        };
        if base.is_ascii_lowercase() {
            out.push(base);
        } else if base.is_alphabetic() {
            // Letters of other scripts stay, so a name in them still matches itself.
            out.push(base);
        }
    }
    out
}

/// The name tokens of a text (a name field, a full name), normalised, each of at least
/// `min_len` letters and not a particle.
pub fn name_tokens(text: &str, min_len: usize) -> Vec<String> {
    words(text)
        .into_iter()
        .map(|w| w.norm)
        .filter(|t| t.chars().count() >= min_len && !PARTICLES.contains(&t.as_str()))
        .collect()
}

/// Names a tenant has seen in its own files (the `nome`/`cognome` columns it dropped),
/// kept as keyed 64-bit hashes: the store never holds the names themselves, and without
/// the key the hashes cannot be tested against a list of names.
#[derive(Debug, Clone)]
pub struct NameRegistry {
    hasher: Pseudonymiser,
    hashes: Vec<u64>,
}

impl NameRegistry {
    /// A registry from stored hashes (sorted or not).
    pub fn new(hasher: Pseudonymiser, mut hashes: Vec<u64>) -> Self {
        hashes.sort_unstable();
        hashes.dedup();
        NameRegistry { hasher, hashes }
    }

    /// The keyed hash of a normalised name token.
    pub fn hash(&self, normalised: &str) -> u64 {
        self.hasher.name_hash(normalised)
    }

    /// Whether a normalised token is a name of this tenant.
    pub fn contains(&self, normalised: &str) -> bool {
        !self.hashes.is_empty() && self.hashes.binary_search(&self.hash(normalised)).is_ok()
    }

    /// The hashes, sorted.
    pub fn hashes(&self) -> &[u64] {
        &self.hashes
    }

    /// Adds hashes (kept sorted and unique).
    pub fn extend(&mut self, more: impl IntoIterator<Item = u64>) {
        self.hashes.extend(more);
        self.hashes.sort_unstable();
        self.hashes.dedup();
    }

    /// Number of distinct names.
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    /// Whether it holds no name.
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }
}

/// Finds and removes identifiers in text.
#[derive(Debug, Clone, Copy, Default)]
pub struct Scanner<'a> {
    registry: Option<&'a NameRegistry>,
}

/// A word of the text: letters, with inner apostrophes (`D'Angelo`).
struct Word {
    start: usize,
    end: usize,
    norm: String,
    capitalised: bool,
}

fn words(text: &str) -> Vec<Word> {
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    let mut chars = text.char_indices().peekable();
    while let Some((i, ch)) = chars.next() {
        let next_alpha = chars.peek().is_some_and(|(_, c)| c.is_alphabetic());
        let inner_apostrophe = matches!(ch, '\'' | '’') && start.is_some() && next_alpha;
        if ch.is_alphabetic() || inner_apostrophe {
            start.get_or_insert(i);
        } else if let Some(s) = start.take() {
            out.push(word(text, s, i));
        }
    }
    if let Some(s) = start {
        out.push(word(text, s, text.len()));
    }
    out
}

fn word(text: &str, start: usize, end: usize) -> Word {
    let w = &text[start..end];
    Word {
        start,
        end,
        norm: normalise_name(w),
        capitalised: w.chars().next().is_some_and(char::is_uppercase),
    }
}

const BREAK: u8 = 0;
const OMOCODIC: &[u8] = b"LMNPQRSTUV";
const MONTHS: &[u8] = b"ABCDEHLMPRST";

/// One character of the compacted text.
#[derive(Clone, Copy)]
struct Ch {
    /// Upper-case ASCII letter or digit, or [`BREAK`].
    b: u8,
    start: usize,
    end: usize,
    /// A slash came before it: digits across a slash are a date, not one number.
    after_slash: bool,
}

/// Alphanumeric characters in upper case with their byte ranges, separators of up to two
/// characters skipped (so spaced and dotted codes read as one), anything else a break.
fn compact(text: &str) -> Vec<Ch> {
    let mut out: Vec<Ch> = Vec::with_capacity(text.len());
    let mut seps = 0usize;
    let mut slash = false;
    let brk = |i: usize| Ch {
        b: BREAK,
        start: i,
        end: i,
        after_slash: false,
    };
    for (i, ch) in text.char_indices() {
        if ch.is_ascii_alphanumeric() {
            if seps > 2 && out.last().is_some_and(|c| c.b != BREAK) {
                out.push(brk(i));
            }
            out.push(Ch {
                b: ch.to_ascii_uppercase() as u8,
                start: i,
                end: i + 1,
                after_slash: slash,
            });
            seps = 0;
            slash = false;
        } else if matches!(ch, ' ' | '\t' | '.' | '-' | '_' | '/' | '\u{a0}') {
            seps += 1;
            slash |= ch == '/';
        } else {
            if out.last().is_some_and(|c| c.b != BREAK) {
                out.push(brk(i));
            }
            seps = 0;
            slash = false;
        }
    }
    out
}

fn is_digit_slot(b: u8) -> bool {
    b.is_ascii_digit() || OMOCODIC.contains(&b)
}

/// Length of the tax-code shape starting at `w[0]` (16, or 15 when the check letter is
/// missing), if any, and how many real digits it has.
fn tax_code_shape(w: &[Ch]) -> Option<(usize, usize)> {
    const DIGITS: [usize; 7] = [6, 7, 9, 10, 12, 13, 14];
    const LETTERS: [usize; 7] = [0, 1, 2, 3, 4, 5, 11];
    if w.len() < 15 {
        return None;
    }
    let b: Vec<u8> = w[..w.len().min(16)].iter().map(|c| c.b).collect();
    if b[..15].contains(&BREAK)
        || !LETTERS.iter().all(|&p| b[p].is_ascii_uppercase())
        || !MONTHS.contains(&b[8])
        || !DIGITS.iter().all(|&p| is_digit_slot(b[p]))
    {
        return None;
    }
    // Omocodia replaces digits from the right: once a digit position holds a letter, so
    // do all those after it. Ordinary words running into a code fail this.
    if DIGITS
        .windows(2)
        .any(|w| !b[w[0]].is_ascii_digit() && b[w[1]].is_ascii_digit())
    {
        return None;
    }
    let digits = DIGITS.iter().filter(|&&p| b[p].is_ascii_digit()).count();
    if b.len() == 16 && b[15] != BREAK {
        let first15: String = b[..15].iter().map(|&x| x as char).collect();
        if digits >= 1 || check_character(&first15) == Some(b[15] as char) {
            return Some((16, digits));
        }
        return None;
    }
    // Fifteen characters then a break or the end: the check letter was dropped. (A fully
    // omocodic code without its check letter cannot be told from a word, and is missed.)
    (digits >= 1).then_some((15, digits))
}

impl<'a> Scanner<'a> {
    /// A scanner with the shipped name lists only.
    pub fn new() -> Scanner<'static> {
        Scanner { registry: None }
    }

    /// A scanner that also knows a tenant's names.
    pub fn with_registry(registry: &'a NameRegistry) -> Scanner<'a> {
        Scanner {
            registry: Some(registry),
        }
    }

    /// Every identifier in `text`, in order, merged where they touch. `row_names` are the
    /// normalised name tokens of the person the row is about (see [`name_tokens`]).
    pub fn find(&self, text: &str, row_names: &[String]) -> Vec<Span> {
        let mut spans = Vec::new();
        if text.is_empty() {
            return spans;
        }
        // Tax codes and long numbers, on the compacted characters.
        let c = compact(text);
        let mut i = 0;
        while i < c.len() {
            // A shape with no real digit is letters only: it must also stand as a word of
            // its own (omocodic letters are common ones: `PNRR` runs into such shapes).
            let alone = |start: usize, end: usize| {
                let before = text[..start].chars().next_back();
                let after = text[end..].chars().next();
                !before.is_some_and(char::is_alphanumeric)
                    && !after.is_some_and(char::is_alphanumeric)
            };
            if c[i].b != BREAK
                && let Some((n, digits)) = tax_code_shape(&c[i..(i + 16).min(c.len())])
                && (digits > 0 || alone(c[i].start, c[i + n - 1].end))
            {
                spans.push(Span {
                    start: c[i].start,
                    end: c[i + n - 1].end,
                    kind: IdKind::TaxCode,
                });
                i += n;
                continue;
            }
            if c[i].b.is_ascii_digit() {
                let run = 1 + c[i + 1..]
                    .iter()
                    .take_while(|x| x.b.is_ascii_digit() && !x.after_slash)
                    .count();
                if run >= 9 {
                    spans.push(Span {
                        start: c[i].start,
                        end: c[i + run - 1].end,
                        kind: IdKind::Number,
                    });
                }
                i += run;
                continue;
            }
            i += 1;
        }
        // E-mail addresses.
        let bytes = text.as_bytes();
        for (at, _) in text.match_indices('@') {
            let local = |b: u8| b.is_ascii_alphanumeric() || b"._%+-".contains(&b);
            let domain = |b: u8| b.is_ascii_alphanumeric() || b".-".contains(&b);
            let mut s = at;
            while s > 0 && local(bytes[s - 1]) {
                s -= 1;
            }
            let mut e = at + 1;
            while e < bytes.len() && domain(bytes[e]) {
                e += 1;
            }
            while e > at + 1 && !bytes[e - 1].is_ascii_alphanumeric() {
                e -= 1;
            }
            if s < at && text[at + 1..e].contains('.') {
                spans.push(Span {
                    start: s,
                    end: e,
                    kind: IdKind::Email,
                });
            }
        }
        self.find_names(text, row_names, &mut spans);
        merge(text, spans)
    }

    fn find_names(&self, text: &str, row_names: &[String], spans: &mut Vec<Span>) {
        #[derive(Clone, Copy, PartialEq)]
        enum Class {
            Other,
            Title,
            Particle,
            /// Removed on its own: the row's name, the tenant's names, a given name.
            Strong {
                given: bool,
            },
            /// Removed next to another name: a surname, a name that is also a word.
            Weak,
        }
        let w = words(text);
        if w.is_empty() {
            return;
        }
        let l = lists();
        let class: Vec<Class> = w
            .iter()
            .map(|t| {
                let n = t.norm.as_str();
                if n.is_empty() {
                    return Class::Other;
                }
                if TITLES.contains(&n) {
                    return Class::Title;
                }
                if PARTICLES.contains(&n) {
                    return Class::Particle;
                }
                if row_names.iter().any(|r| r == n) {
                    return Class::Strong { given: false };
                }
                if n.chars().count() < 3 {
                    return Class::Other;
                }
                if self.registry.is_some_and(|r| r.contains(n)) {
                    return Class::Strong { given: false };
                }
                let ambiguous = l.ambiguous.contains(n);
                if l.first.contains(n) && !ambiguous {
                    Class::Strong { given: true }
                } else if l.first.contains(n) || l.surnames.contains(n) || ambiguous {
                    Class::Weak
                } else {
                    Class::Other
                }
            })
            .collect();
        let is_name = |c: Class| matches!(c, Class::Strong { .. } | Class::Weak);
        let after_title = |i: usize| {
            (i >= 1 && class[i - 1] == Class::Title)
                || (i >= 2
                    && class[i - 2] == Class::Title
                    && matches!(w[i - 1].norm.as_str(), "ra" | "ssa" | "re"))
        };
        for i in 0..w.len() {
            let prev = (i > 0).then(|| class[i - 1]);
            let next = class.get(i + 1).copied();
            let mark = match class[i] {
                Class::Strong { .. } => true,
                Class::Weak => {
                    prev.is_some_and(is_name) || next.is_some_and(is_name) || after_title(i)
                }
                Class::Other => {
                    // A capitalised word after a title or next to a given name: `Dott.
                    // Bianchetti`, `Mario Bianchetti`.
                    w[i].capitalised
                        && (after_title(i)
                            || matches!(prev, Some(Class::Strong { given: true }))
                            || matches!(next, Some(Class::Strong { given: true })))
                }
                Class::Title | Class::Particle => false,
            };
            if mark {
                spans.push(Span {
                    start: w[i].start,
                    end: w[i].end,
                    kind: IdKind::Name,
                });
            }
        }
    }

    /// `text` with every identifier replaced by its marker (see [`IdKind::marker`]); the
    /// text itself when there is none. Adds what it removed to `counts`.
    pub fn redact<'t>(
        &self,
        text: &'t str,
        row_names: &[String],
        counts: &mut Redactions,
    ) -> Cow<'t, str> {
        let spans = self.find(text, row_names);
        if spans.is_empty() {
            return Cow::Borrowed(text);
        }
        let mut out = String::with_capacity(text.len() + 16);
        let mut at = 0;
        for s in spans {
            out.push_str(&text[at..s.start]);
            out.push_str(s.kind.marker());
            counts.add(s.kind);
            at = s.end;
        }
        out.push_str(&text[at..]);
        Cow::Owned(out)
    }

    /// Whether a value may be quoted back in an error or a quarantine file: short, with
    /// no identifier, and no word that any list or the registry knows as a name (a
    /// surname alone in the wrong column is still a surname).
    pub fn may_echo(&self, value: &str) -> bool {
        if value.chars().count() > 24 || !self.find(value, &[]).is_empty() {
            return false;
        }
        let l = lists();
        !words(value).iter().any(|t| {
            let n = t.norm.as_str();
            n.chars().count() >= 3
                && (l.first.contains(n)
                    || l.surnames.contains(n)
                    || l.ambiguous.contains(n)
                    || self.registry.is_some_and(|r| r.contains(n)))
        })
    }
}

/// Sorts spans and merges overlapping ones, and neighbouring names separated only by
/// spaces or punctuation (`Rossi, Mario` is one name).
fn merge(text: &str, mut spans: Vec<Span>) -> Vec<Span> {
    spans.sort_by_key(|s| (s.start, std::cmp::Reverse(s.end)));
    let mut out: Vec<Span> = Vec::with_capacity(spans.len());
    for s in spans {
        if let Some(last) = out.last_mut() {
            let gap = text.get(last.end..s.start).unwrap_or("");
            let joined = s.start < last.end
                || (last.kind == IdKind::Name
                    && s.kind == IdKind::Name
                    && gap
                        .chars()
                        .all(|c| c.is_whitespace() || matches!(c, ',' | '.')));
            if joined {
                last.end = last.end.max(s.end);
                if s.kind < last.kind {
                    last.kind = s.kind;
                }
                continue;
            }
        }
        out.push(s);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codice_fiscale::{make_personal, make_temporary};
    use crate::pseudonym::Key;

    fn redact(s: &str) -> String {
        Scanner::new()
            .redact(s, &[], &mut Redactions::default())
            .into_owned()
    }

    #[test]
    fn tax_codes_in_every_shape_are_found() {
        for s in [
            "RSSMRA85T10A562S",
            "rssmra85t10a562s",
            "CF RSS MRA 85T10 A562S",
            "cf: RSS-MRA-85T10-A562S.",
            "RSS.MRA.85.T.10.A562S",
            "cfRSSMRA85T10A562Sok",
            "RSSMRA85T10A562X", // wrong check letter
            "RSSMRA85T10A562",  // check letter missing
            "RSSMRA85T10A56NS", // omocodic
        ] {
            let out = redact(&format!("nota {s} fine"));
            assert!(out.contains("[codice fiscale rimosso]"), "{s} → {out}");
            assert!(!out.to_uppercase().contains("MRA"), "{s} → {out}");
        }
    }

    #[test]
    fn generated_codes_are_all_found() {
        let code = make_personal("RSS", "MRA", 85, 12, 10, false, "A562", 0);
        assert!(redact(&code).contains("codice fiscale"));
        // Up to the fully omocodic code (level 7): no digit left, the check letter decides.
        for level in 1..=7 {
            let c = make_personal("BNC", "LRA", 90, 3, 4, true, "F205", level);
            assert_eq!(
                redact(&c),
                "[codice fiscale rimosso]",
                "omocodia level {level}"
            );
        }
        let t = make_temporary(1234567890);
        assert_eq!(redact(&format!("provv. {t}")), "provv. [numero rimosso]");
    }

    #[test]
    fn long_numbers_emails_and_ibans_are_found() {
        assert_eq!(redact("tel 333 123 4567"), "tel [numero rimosso]");
        assert_eq!(redact("+39 011.555.12.34"), "+[numero rimosso]");
        assert_eq!(
            redact("scrivere a mario.rossi@example.it subito"),
            "scrivere a [email rimossa] subito"
        );
        assert!(redact("IT60X0542811101000000123456").contains("[numero rimosso]"));
        // Dates and small amounts are not identifiers.
        assert_eq!(
            redact("dal 15/03/2024, 1.250 euro"),
            "dal 15/03/2024, 1.250 euro"
        );
    }

    #[test]
    fn names_are_found_and_ordinary_words_are_not() {
        assert_eq!(redact("Mario Rossi"), "[nome rimosso]");
        assert_eq!(redact("ROSSI MARIO"), "[nome rimosso]");
        assert_eq!(redact("rossi, mario"), "[nome rimosso]");
        assert_eq!(redact("sig.ra Bianchi"), "sig.ra [nome rimosso]");
        assert_eq!(redact("Dott. Bianchetti"), "Dott. [nome rimosso]");
        assert_eq!(redact("Giuseppe Bianchetti"), "[nome rimosso]");
        assert_eq!(redact("seguita da Francesca"), "seguita da [nome rimosso]");
        // Surnames and names that are words, alone: firms, places, adjectives.
        for ok in [
            "Centro per l'impiego Torino",
            "Costa Crociere",
            "assunta a tempo determinato",
            "Cooperativa Sole",
            "Franco fabbrica",
            "Fondo sociale europeo",
            "Garanzia Giovani",
        ] {
            assert_eq!(redact(ok), ok);
        }
    }

    #[test]
    fn the_rows_own_name_and_the_tenants_names_are_found() {
        let row = name_tokens("Zanfrini Ottorino", 2);
        let mut n = Redactions::default();
        let out = Scanner::new().redact("visto zanfrini oggi", &row, &mut n);
        assert_eq!(out, "visto [nome rimosso] oggi");
        let key = Key::from_bytes([3; 32]);
        let p = Pseudonymiser::new(&key);
        let mut reg = NameRegistry::new(p.clone(), vec![]);
        reg.extend(["quaglierini"].map(|t| p.name_hash(t)));
        assert_eq!(
            Scanner::with_registry(&reg).redact("pratica Quaglierini ok", &[], &mut n),
            "pratica [nome rimosso] ok"
        );
        assert_eq!(
            Scanner::new().redact("pratica Quaglierini ok", &[], &mut n),
            "pratica Quaglierini ok"
        );
    }

    #[test]
    fn echo_is_refused_for_anything_name_like_or_long() {
        let s = Scanner::new();
        assert!(s.may_echo("XYZ"));
        assert!(s.may_echo("2024-13-01"));
        assert!(!s.may_echo("RSSMRA85T10A562S"));
        assert!(!s.may_echo("Rossi"));
        assert!(!s.may_echo("mario"));
        assert!(!s.may_echo("a very long value that goes on"));
    }

    proptest::proptest! {
        // A tax code planted in text, in any of the shapes operators type, never survives:
        // neither whole nor its first eleven characters (surname, name, birth date).
        #[test]
        fn a_planted_tax_code_never_survives(
            sur in "[A-Z]{3}", name in "[A-Z]{3}", year in 0u8..100, month in 1u8..13,
            day in 1u8..29, female: bool, place in "[A-Z][0-9]{3}", omo in 0u8..8,
            shape in 0usize..6, before in "[a-z ,.]{0,12}", after in "[a-z ,.]{0,12}",
        ) {
            // A fully omocodic code is letters only: it is found standing as a word of its
            // own, with its check letter; glued to other letters it is a word like any other.
            let alone = before.chars().last().is_none_or(|c| !c.is_alphanumeric())
                && after.chars().next().is_none_or(|c| !c.is_alphanumeric());
            proptest::prop_assume!(omo < 7 || (alone && shape != 4 && shape != 5));
            let code = make_personal(&sur, &name, year, month, day, female, &place, omo);
            let typed = match shape {
                0 => code.clone(),
                1 => code.to_lowercase(),
                2 => format!("{} {} {} {}", &code[..3], &code[3..6], &code[6..11], &code[11..]),
                3 => format!("{}-{}", &code[..8], &code[8..]),
                4 => format!("x{code}y"),
                _ => code[..15].to_string(),
            };
            let out = redact(&format!("{before}{typed}{after}")).to_uppercase();
            let compact: String = out.chars().filter(char::is_ascii_alphanumeric).collect();
            proptest::prop_assert!(!compact.contains(&code[..11]), "{typed:?} → {out:?}");
        }

        // Ordinary service text (words of the domain, dates, amounts) passes unchanged.
        #[test]
        fn ordinary_text_is_left_alone(words in proptest::collection::vec(0usize..24, 1..12)) {
            const W: [&str; 24] = [
                "centro", "per", "l'impiego", "Torino", "colloquio", "orientamento",
                "tirocinio", "avviato", "il", "15/03/2024", "ore", "12,5", "FSE+", "GOL",
                "PNRR", "azienda", "cooperativa", "servizi", "lavoro", "Cuneo", "patto",
                "firmato", "regione", "Piemonte",
            ];
            let text: Vec<&str> = words.iter().map(|&i| W[i]).collect();
            let text = text.join(" ");
            proptest::prop_assert_eq!(redact(&text), text);
        }
    }

    #[test]
    fn normalisation_folds_case_and_accents() {
        assert_eq!(normalise_name("NICCOLÒ"), "niccolo");
        assert_eq!(normalise_name("D'Angelo"), "dangelo");
        assert_eq!(name_tokens("Maria Del Monte", 3), vec!["maria", "monte"]);
    }
}
