//! Italian tax codes (*codice fiscale*): validation, decoding and generation.
//!
//! Two shapes are accepted:
//!
//! * the 16-character personal code (`RSSMRA85T10A562S`), including its
//!   *omocodic* variants, where the Agenzia delle Entrate replaces digits
//!   with letters to tell apart people who would otherwise share a code;
//! * the 11-digit temporary code (*codice fiscale provvisorio*), which uses
//!   the same check digit as the partita IVA.
//!
//! Error values deliberately never carry the code itself: they end up in
//! logs and quarantine files, and a tax code is personal data. They carry
//! 1-based positions and single characters only.
//!
//! Validation allocates exactly once (the normalised `String` kept inside
//! [`TaxCode`]); everything else works on a fixed-size byte array.

use std::fmt;
use std::str::FromStr;

/// The shape of a validated tax code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaxCodeKind {
    /// A 16-character code derived from a person's name, birth date and
    /// birthplace.
    Personal {
        /// True when at least one digit position holds a substitution letter,
        /// i.e. this code was issued to resolve a collision with another person.
        omocodic: bool,
    },
    /// An 11-digit temporary code (*codice fiscale provvisorio*).
    Temporary,
}

/// Why a string is not a valid tax code.
///
/// Positions are 1-based and refer to the normalised code (surrounding and
/// inner whitespace removed), so they match what a clerk sees on the card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaxCodeError {
    /// Nothing left after removing whitespace.
    Empty,
    /// Neither 16 (personal) nor 11 (temporary) characters long.
    BadLength {
        /// Number of characters after normalisation.
        len: usize,
    },
    /// A character that is not allowed at its position.
    BadCharacter {
        /// 1-based position in the normalised code.
        position: usize,
        /// The offending character.
        found: char,
        /// Human-readable description of what is allowed there.
        expected: &'static str,
    },
    /// The 9th character is not one of the twelve month letters.
    BadMonth {
        /// The offending character.
        found: char,
    },
    /// The decoded day field is outside 01–31 (male) and 41–71 (female).
    BadDay {
        /// The decoded two-digit day field.
        day: u8,
    },
    /// A digit position holds a substitution letter while a digit position
    /// to its right still holds a plain digit.
    OmocodiaOrder {
        /// 1-based position of the substituted character that is out of order.
        position: usize,
    },
    /// The 16th character does not match the computed check letter.
    CheckCharacter {
        /// The check letter computed from the first 15 characters.
        expected: char,
        /// The check letter actually present.
        found: char,
    },
    /// The 11th digit of a temporary code does not match the computed one.
    TemporaryCheckDigit {
        /// The check digit computed from the first 10 digits.
        expected: u8,
        /// The check digit actually present.
        found: u8,
    },
}

impl fmt::Display for TaxCodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("tax code is empty"),
            Self::BadLength { len } => write!(
                f,
                "tax code has {len} characters; expected 16 (personal) or 11 (temporary)"
            ),
            Self::BadCharacter {
                position,
                found,
                expected,
            } => write!(
                f,
                "character {found:?} at position {position} is not allowed; expected {expected}"
            ),
            Self::BadMonth { found } => write!(
                f,
                "month character {found:?} is not one of A B C D E H L M P R S T"
            ),
            Self::BadDay { day } => write!(
                f,
                "day field {day:02} is not in 01-31 (male) or 41-71 (female)"
            ),
            Self::OmocodiaOrder { position } => write!(
                f,
                "substitution letter at position {position} is followed by a plain digit; \
                 omocodic substitutions must start from the rightmost digit"
            ),
            Self::CheckCharacter { expected, found } => {
                write!(f, "check character is '{found}' but should be '{expected}'")
            }
            Self::TemporaryCheckDigit { expected, found } => {
                write!(f, "check digit is '{found}' but should be '{expected}'")
            }
        }
    }
}

impl std::error::Error for TaxCodeError {}

/// A validated, normalised Italian tax code.
///
/// The stored form is uppercase ASCII with no whitespace. Omocodic letters
/// are kept as they are: mapping them back to digits would yield the code of
/// a *different* person.
///
/// `Debug` is redacted on purpose so that a stray `{:?}` does not leak the
/// code into logs; use [`TaxCode::as_str`] when the code itself is needed.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaxCode(String);

const PERSONAL_LEN: usize = 16;
const TEMPORARY_LEN: usize = 11;

/// 0-based indices of the seven characters that are digits in a regular
/// personal code and may be replaced by letters under omocodia, listed left
/// to right.
const DIGIT_POSITIONS: [usize; 7] = [6, 7, 9, 10, 12, 13, 14];

/// Letters standing for 0–9 under omocodia (note: no `O`, which would be
/// confused with zero).
const OMOCODIA_LETTERS: &[u8; 10] = b"LMNPQRSTUV";

/// Month letters for January..December; the gaps avoid letters that look
/// like digits or each other.
const MONTH_LETTERS: &[u8; 12] = b"ABCDEHLMPRST";

/// Values for characters at odd (1-based) positions, indexed by digit value
/// or by letter offset from `A` — the official table maps `0` and `A` alike,
/// `1` and `B` alike, and so on up to `9`/`J`.
const ODD_VALUES: [u8; 26] = [
    1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24, 23,
];

const EXPECT_LETTER: &str = "a letter A-Z";
const EXPECT_DIGIT_OR_OMO: &str = "a digit 0-9 or one of L M N P Q R S T U V";
const EXPECT_CHECK_LETTER: &str = "a check letter A-Z";
const EXPECT_DIGIT: &str = "a digit 0-9";

/// Decodes a digit position: plain digit or omocodic substitution letter.
#[inline]
fn decode_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'L' => Some(0),
        b'M' => Some(1),
        b'N' => Some(2),
        b'P' => Some(3),
        b'Q' => Some(4),
        b'R' => Some(5),
        b'S' => Some(6),
        b'T' => Some(7),
        b'U' => Some(8),
        b'V' => Some(9),
        _ => None,
    }
}

#[inline]
fn month_number(b: u8) -> Option<u8> {
    MONTH_LETTERS
        .iter()
        .position(|&m| m == b)
        .map(|i| i as u8 + 1)
}

/// Check letter over 15 uppercase alphanumeric bytes; the caller guarantees
/// the character set.
#[inline]
fn check_char_of(first15: &[u8]) -> u8 {
    let mut sum: u32 = 0;
    for (i, &b) in first15.iter().enumerate() {
        let idx = if b.is_ascii_digit() {
            b - b'0'
        } else {
            b - b'A'
        } as usize;
        // Index 0 is the 1st character, which the official tables call "odd".
        sum += if i % 2 == 0 {
            u32::from(ODD_VALUES[idx])
        } else {
            idx as u32
        };
    }
    b'A' + (sum % 26) as u8
}

/// Partita IVA style check digit over 10 digit bytes; the caller guarantees
/// the character set.
#[inline]
fn temporary_check_of(first10: &[u8]) -> u8 {
    let mut sum: u32 = 0;
    for (i, &b) in first10.iter().enumerate() {
        let d = u32::from(b - b'0');
        sum += if i % 2 == 0 {
            d
        } else {
            let x = d * 2;
            if x > 9 { x - 9 } else { x }
        };
    }
    ((10 - sum % 10) % 10) as u8
}

/// Trims, drops inner whitespace and uppercases ASCII; returns the string and
/// its length in characters (which differs from the byte length only when
/// non-ASCII input sneaks in).
fn normalise(raw: &str) -> (String, usize) {
    let trimmed = raw.trim();
    // Registers almost always hold the code already clean: copy it in one go.
    if trimmed
        .bytes()
        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    {
        return (trimmed.to_string(), trimmed.len());
    }
    let mut out = String::with_capacity(trimmed.len());
    let mut chars = 0;
    for c in trimmed.chars() {
        if !c.is_whitespace() {
            out.push(c.to_ascii_uppercase());
            chars += 1;
        }
    }
    (out, chars)
}

fn validate_personal(code: &str) -> Result<(), TaxCodeError> {
    let mut b = [0u8; PERSONAL_LEN];
    // Walk chars rather than bytes so that a non-ASCII character is reported
    // as itself, at its true position, and errors come out left to right.
    for (i, c) in code.chars().enumerate() {
        let ok = c.is_ascii()
            && match i {
                0..=5 | 11 => c.is_ascii_uppercase(),
                8 => month_number(c as u8).is_some(),
                15 => c.is_ascii_uppercase(),
                _ => decode_digit(c as u8).is_some(),
            };
        if !ok {
            if i == 8 {
                return Err(TaxCodeError::BadMonth { found: c });
            }
            let expected = match i {
                0..=5 | 11 => EXPECT_LETTER,
                15 => EXPECT_CHECK_LETTER,
                _ => EXPECT_DIGIT_OR_OMO,
            };
            return Err(TaxCodeError::BadCharacter {
                position: i + 1,
                found: c,
                expected,
            });
        }
        b[i] = c as u8;
    }

    let day = day_field(&b);
    if !matches!(day, 1..=31 | 41..=71) {
        return Err(TaxCodeError::BadDay { day });
    }

    // Substitution runs right to left, so once we meet a plain digit while
    // scanning from the right, everything further left must be plain too.
    let mut seen_plain_digit = false;
    for &p in DIGIT_POSITIONS.iter().rev() {
        if b[p].is_ascii_digit() {
            seen_plain_digit = true;
        } else if seen_plain_digit {
            return Err(TaxCodeError::OmocodiaOrder { position: p + 1 });
        }
    }

    let expected = check_char_of(&b[..15]);
    if expected != b[15] {
        return Err(TaxCodeError::CheckCharacter {
            expected: expected as char,
            found: b[15] as char,
        });
    }
    Ok(())
}

fn validate_temporary(code: &str) -> Result<(), TaxCodeError> {
    let mut b = [0u8; TEMPORARY_LEN];
    for (i, c) in code.chars().enumerate() {
        if !c.is_ascii_digit() {
            return Err(TaxCodeError::BadCharacter {
                position: i + 1,
                found: c,
                expected: EXPECT_DIGIT,
            });
        }
        b[i] = c as u8;
    }
    let expected = temporary_check_of(&b[..10]);
    let found = b[10] - b'0';
    if expected != found {
        return Err(TaxCodeError::TemporaryCheckDigit { expected, found });
    }
    Ok(())
}

/// Decoded two-digit day field (female days still carry the +40).
/// Only called on bytes already known to be digits or omocodic letters.
#[inline]
fn day_field(b: &[u8]) -> u8 {
    let tens = decode_digit(b[9]).unwrap_or(0);
    let units = decode_digit(b[10]).unwrap_or(0);
    tens * 10 + units
}

impl TaxCode {
    /// Normalises and validates `raw`.
    ///
    /// Normalisation trims surrounding whitespace, removes inner whitespace
    /// and uppercases ASCII letters; omocodic letters are preserved.
    ///
    /// # Errors
    ///
    /// Returns a [`TaxCodeError`] describing the first problem found. The
    /// error never contains the code itself.
    pub fn parse(raw: &str) -> Result<TaxCode, TaxCodeError> {
        let (code, len) = normalise(raw);
        match len {
            0 => Err(TaxCodeError::Empty),
            PERSONAL_LEN => validate_personal(&code).map(|()| TaxCode(code)),
            TEMPORARY_LEN => validate_temporary(&code).map(|()| TaxCode(code)),
            _ => Err(TaxCodeError::BadLength { len }),
        }
    }

    /// The normalised code.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is a personal (possibly omocodic) or temporary code.
    pub fn kind(&self) -> TaxCodeKind {
        match self.personal_bytes() {
            Some(b) => TaxCodeKind::Personal {
                omocodic: DIGIT_POSITIONS.iter().any(|&p| !b[p].is_ascii_digit()),
            },
            None => TaxCodeKind::Temporary,
        }
    }

    /// Last two digits of the birth year (0..=99); `None` for temporary codes.
    ///
    /// The century is not encoded in the code, so callers must infer it.
    pub fn birth_year_2digits(&self) -> Option<u8> {
        let b = self.personal_bytes()?;
        Some(decode_digit(b[6])? * 10 + decode_digit(b[7])?)
    }

    /// Whether the holder is registered as female (day field above 40);
    /// `None` for temporary codes.
    pub fn is_female(&self) -> Option<bool> {
        self.personal_bytes().map(|b| day_field(b) > 40)
    }

    /// Birth month (1..=12); `None` for temporary codes.
    pub fn birth_month(&self) -> Option<u8> {
        month_number(self.personal_bytes()?[8])
    }

    /// Birth day of month (1..=31) with the female +40 offset removed;
    /// `None` for temporary codes.
    pub fn birth_day(&self) -> Option<u8> {
        let day = day_field(self.personal_bytes()?);
        Some(if day > 40 { day - 40 } else { day })
    }

    /// Validation guarantees ASCII, so byte indexing is position indexing.
    #[inline]
    fn personal_bytes(&self) -> Option<&[u8]> {
        let b = self.0.as_bytes();
        (b.len() == PERSONAL_LEN).then_some(b)
    }
}

impl fmt::Debug for TaxCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaxCode")
            .field("kind", &self.kind())
            .finish_non_exhaustive()
    }
}

impl FromStr for TaxCode {
    type Err = TaxCodeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TaxCode::parse(s)
    }
}

impl AsRef<str> for TaxCode {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

/// Computes the check letter for the first 15 characters of a personal code.
///
/// Only the character set is checked (ASCII letters, either case, and
/// digits), not the field structure. Returns `None` unless `first15` is
/// exactly 15 such characters.
pub fn check_character(first15: &str) -> Option<char> {
    let src = first15.as_bytes();
    if src.len() != 15 {
        return None;
    }
    let mut b = [0u8; 15];
    for (dst, &c) in b.iter_mut().zip(src) {
        if !c.is_ascii_alphanumeric() {
            return None;
        }
        *dst = c.to_ascii_uppercase();
    }
    Some(check_char_of(&b) as char)
}

/// Computes the check digit (0..=9) of a temporary code from its first 10
/// digits. Returns `None` unless `first10` is exactly 10 ASCII digits.
pub fn temporary_check_digit(first10: &str) -> Option<u8> {
    let b = first10.as_bytes();
    if b.len() != 10 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(temporary_check_of(b))
}

/// Builds a valid 16-character personal code for simulated data.
///
/// `surname_letters` and `name_letters` are the already-derived 3-letter
/// blocks; non-letters are skipped, letters are uppercased, extra letters are
/// ignored and short blocks are padded with `X` (as the official rules do for
/// short names). `omocodia_level` is how many of the seven digit positions,
/// counted from the right, get substituted by letters.
///
/// # Panics
///
/// Panics if `year2 > 99`, `month` is not 1..=12, `day` is not 1..=31,
/// `omocodia_level > 7`, or `belfiore` is not one ASCII letter followed by
/// three ASCII digits — these are generator bugs, not data problems.
#[allow(clippy::too_many_arguments)]
pub fn make_personal(
    surname_letters: &str,
    name_letters: &str,
    year2: u8,
    month: u8,
    day: u8,
    female: bool,
    belfiore: &str,
    omocodia_level: u8,
) -> String {
    assert!(year2 <= 99, "year2 must be 0..=99");
    assert!((1..=12).contains(&month), "month must be 1..=12");
    assert!((1..=31).contains(&day), "day must be 1..=31");
    assert!(omocodia_level <= 7, "omocodia_level must be 0..=7");
    let bf = belfiore.as_bytes();
    assert!(
        bf.len() == 4 && bf[0].is_ascii_alphabetic() && bf[1..].iter().all(u8::is_ascii_digit),
        "belfiore must be a letter followed by three digits"
    );

    let mut b = [0u8; PERSONAL_LEN];
    fill_letters(&mut b[0..3], surname_letters);
    fill_letters(&mut b[3..6], name_letters);
    b[6] = b'0' + year2 / 10;
    b[7] = b'0' + year2 % 10;
    b[8] = MONTH_LETTERS[usize::from(month - 1)];
    let day_field = if female { day + 40 } else { day };
    b[9] = b'0' + day_field / 10;
    b[10] = b'0' + day_field % 10;
    b[11] = bf[0].to_ascii_uppercase();
    b[12..15].copy_from_slice(&bf[1..]);
    for &p in DIGIT_POSITIONS
        .iter()
        .rev()
        .take(usize::from(omocodia_level))
    {
        b[p] = OMOCODIA_LETTERS[usize::from(b[p] - b'0')];
    }
    b[15] = check_char_of(&b[..15]);
    b.iter().map(|&c| c as char).collect()
}

fn fill_letters(dst: &mut [u8], src: &str) {
    let mut letters = src
        .bytes()
        .filter(u8::is_ascii_alphabetic)
        .map(|c| c.to_ascii_uppercase());
    for slot in dst {
        *slot = letters.next().unwrap_or(b'X');
    }
}

/// Builds a valid 11-digit temporary code from a number below 10^10
/// (zero-padded to 10 digits) plus its check digit.
///
/// # Panics
///
/// Panics if `first10_digits >= 10_000_000_000`.
pub fn make_temporary(first10_digits: u64) -> String {
    assert!(
        first10_digits < 10_000_000_000,
        "temporary code body must be below 10^10"
    );
    let mut s = format!("{first10_digits:010}");
    let check = temporary_check_of(s.as_bytes());
    s.push(char::from(b'0' + check));
    s
}

/// Returns `code` with its final character replaced by a wrong one of the
/// same class (a letter for personal codes, a digit for temporary codes), so
/// that simulated dirty data fails only the check.
///
/// The replacement differs from the *correct* check character (not merely
/// from the current one) and varies with the rest of the code, so the
/// simulated typos are not all off-by-one. Input that does not have the
/// shape of a 16-character or 11-digit code is returned unchanged.
pub fn corrupt_check_character(code: &str) -> String {
    // Non-ASCII input cannot be a code, and slicing it by byte could split
    // a character.
    if !code.is_ascii() {
        return code.to_owned();
    }
    let b = code.as_bytes();
    let spread: u32 = b.iter().map(|&c| u32::from(c)).sum();
    match b.len() {
        PERSONAL_LEN => match check_character(&code[..15]) {
            Some(correct) => {
                let offset = (spread % 25 + 1) as u8;
                let wrong = b'A' + (correct as u8 - b'A' + offset) % 26;
                let mut out = String::with_capacity(PERSONAL_LEN);
                out.push_str(&code[..15]);
                out.push(wrong as char);
                out
            }
            None => code.to_owned(),
        },
        TEMPORARY_LEN => match temporary_check_digit(&code[..10]) {
            Some(correct) => {
                let offset = (spread % 9 + 1) as u8;
                let wrong = b'0' + (correct + offset) % 10;
                let mut out = String::with_capacity(TEMPORARY_LEN);
                out.push_str(&code[..10]);
                out.push(wrong as char);
                out
            }
            None => code.to_owned(),
        },
        _ => code.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(raw: &str) -> TaxCodeError {
        TaxCode::parse(raw).expect_err("expected a validation error")
    }

    /// Small deterministic generator so tests need no external crates.
    struct XorShift(u64);
    impl XorShift {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    #[test]
    fn check_algorithm_gives_s_for_mario_rossi() {
        // Odd positions:  R=8 S=12 R=8 8=19 T=14 0=1 5=13 2=5 -> 80
        // Even positions: S=18 M=12 A=0 5=5 1=1 A=0 6=6      -> 42
        // 122 mod 26 = 18 -> 'S'
        assert_eq!(check_character("RSSMRA85T10A562"), Some('S'));
        let tc = TaxCode::parse("RSSMRA85T10A562S").unwrap();
        assert_eq!(tc.as_str(), "RSSMRA85T10A562S");
        assert_eq!(tc.kind(), TaxCodeKind::Personal { omocodic: false });
    }

    #[test]
    fn personal_fields_are_decoded() {
        let tc = TaxCode::parse("RSSMRA85T10A562S").unwrap();
        assert_eq!(tc.birth_year_2digits(), Some(85));
        assert_eq!(tc.birth_month(), Some(12));
        assert_eq!(tc.birth_day(), Some(10));
        assert_eq!(tc.is_female(), Some(false));
    }

    #[test]
    fn hand_derived_codes_match_generator() {
        // Laura Bianchi, female, 1 Jan 1990, Milano (F205): BNCLRA90A41F205
        // Odd:  B=0 C=5 R=8 9=21 A=1 1=0 2=5 5=13 -> 53
        // Even: N=13 L=11 A=0 0=0 4=4 F=5 0=0     -> 33
        // 86 mod 26 = 8 -> 'I'
        let laura = make_personal("BNC", "LRA", 90, 1, 1, true, "F205", 0);
        assert_eq!(laura, "BNCLRA90A41F205I");
        assert_eq!(check_character("BNCLRA90A41F205"), Some('I'));

        // Giuseppe Verdi, male, 10 Oct 1813, Busseto (B293): VRDGPP13R10B293
        // Odd:  V=10 D=7 P=3 1=0 R=8 0=1 2=5 3=7 -> 41
        // Even: R=17 G=6 P=15 3=3 1=1 B=1 9=9    -> 52
        // 93 mod 26 = 15 -> 'P'
        let verdi = make_personal("VRD", "GPP", 13, 10, 10, false, "B293", 0);
        assert_eq!(verdi, "VRDGPP13R10B293P");

        let mario = make_personal("RSS", "MRA", 85, 12, 10, false, "A562", 0);
        assert_eq!(mario, "RSSMRA85T10A562S");

        for code in [laura, verdi, mario] {
            assert!(TaxCode::parse(&code).is_ok());
        }
    }

    #[test]
    fn omocodic_variant_accepted() {
        // Last digit 2 -> N. Odd sum grows from 80 to 95 (N=20 instead of
        // 2=5), 137 mod 26 = 7 -> 'H'.
        let tc = TaxCode::parse("RSSMRA85T10A56NH").unwrap();
        assert_eq!(tc.kind(), TaxCodeKind::Personal { omocodic: true });
        assert_eq!(tc.as_str(), "RSSMRA85T10A56NH");
        assert_eq!(
            make_personal("RSS", "MRA", 85, 12, 10, false, "A562", 1),
            "RSSMRA85T10A56NH"
        );

        // Fully substituted: all seven digit positions are letters, yet the
        // date still decodes.
        let full = make_personal("RSS", "MRA", 85, 12, 10, false, "A562", 7);
        let tc = TaxCode::parse(&full).unwrap();
        assert_eq!(&full[6..8], "UR");
        assert_eq!(tc.birth_year_2digits(), Some(85));
        assert_eq!(tc.birth_day(), Some(10));
    }

    #[test]
    fn omocodia_wrong_order_rejected() {
        // Day units (position 11) substituted while positions 13-15 are digits.
        let body = "RSSMRA85T1LA562";
        let code = format!("{body}{}", check_character(body).unwrap());
        assert_eq!(err(&code), TaxCodeError::OmocodiaOrder { position: 11 });

        // Year tens substituted, everything else plain.
        let body = "RSSMRAU5T10A562";
        let code = format!("{body}{}", check_character(body).unwrap());
        assert_eq!(err(&code), TaxCodeError::OmocodiaOrder { position: 7 });
    }

    #[test]
    fn bad_check_character_rejected() {
        assert_eq!(
            err("RSSMRA85T10A562T"),
            TaxCodeError::CheckCharacter {
                expected: 'S',
                found: 'T'
            }
        );
        assert_eq!(
            err("RSSMRA85T10A5621"),
            TaxCodeError::BadCharacter {
                position: 16,
                found: '1',
                expected: EXPECT_CHECK_LETTER
            }
        );
    }

    #[test]
    fn lowercase_and_spaced_input_normalised() {
        let tc = TaxCode::parse("  rssmra 85t10 a562s\t").unwrap();
        assert_eq!(tc.as_str(), "RSSMRA85T10A562S");
        let tc = TaxCode::parse(" 007 4311 0157 ").unwrap();
        assert_eq!(tc.as_str(), "00743110157");
    }

    #[test]
    fn normalisation_keeps_omocodic_letters() {
        let tc = TaxCode::parse("rssmra85t10a56nh").unwrap();
        assert_eq!(tc.as_str(), "RSSMRA85T10A56NH");
    }

    #[test]
    fn bad_month_letter_rejected() {
        assert_eq!(
            err("RSSMRA85F10A562S"),
            TaxCodeError::BadMonth { found: 'F' }
        );
        assert_eq!(
            err("RSSMRA85110A562S"),
            TaxCodeError::BadMonth { found: '1' }
        );
    }

    #[test]
    fn day_out_of_range_rejected() {
        for day in ["00", "32", "40", "72", "99"] {
            let body = format!("RSSMRA85T{day}A562");
            let code = format!("{body}{}", check_character(&body).unwrap());
            assert_eq!(
                err(&code),
                TaxCodeError::BadDay {
                    day: day.parse().unwrap()
                },
                "day {day}"
            );
        }
        // Omocodic day letters decode before the range check: "QL" = 40.
        let body = "RSSMRA85TQLA562";
        let code = format!("{body}{}", check_character(body).unwrap());
        assert_eq!(err(&code), TaxCodeError::BadDay { day: 40 });
    }

    #[test]
    fn female_day_41_to_71_accepted() {
        for day in 1..=31u8 {
            let code = make_personal("BNC", "LRA", 90, 1, day, true, "F205", 0);
            let tc = TaxCode::parse(&code).unwrap();
            assert_eq!(tc.is_female(), Some(true));
            assert_eq!(tc.birth_day(), Some(day));
            assert_eq!(code[9..11].parse::<u8>().unwrap(), day + 40);
        }
    }

    #[test]
    fn temporary_code_round_trip() {
        // Well-known partita IVA 00743110157:
        // odd positions 0+7+3+1+1 = 12; even 0,4,1,0,5 doubled -> 0+8+2+0+1 = 11
        // 23 -> (10 - 3) % 10 = 7.
        assert_eq!(temporary_check_digit("0074311015"), Some(7));
        let tc = TaxCode::parse("00743110157").unwrap();
        assert_eq!(tc.kind(), TaxCodeKind::Temporary);
        assert_eq!(tc.birth_year_2digits(), None);
        assert_eq!(tc.is_female(), None);
        assert_eq!(tc.birth_month(), None);
        assert_eq!(tc.birth_day(), None);
        assert_eq!(make_temporary(74_311_015), "00743110157");
    }

    #[test]
    fn wrong_temporary_check_digit_rejected() {
        assert_eq!(
            err("00743110158"),
            TaxCodeError::TemporaryCheckDigit {
                expected: 7,
                found: 8
            }
        );
        assert_eq!(
            err("0074311015A"),
            TaxCodeError::BadCharacter {
                position: 11,
                found: 'A',
                expected: EXPECT_DIGIT
            }
        );
    }

    #[test]
    fn empty_and_bad_length_rejected() {
        assert_eq!(err(""), TaxCodeError::Empty);
        assert_eq!(err("  \t "), TaxCodeError::Empty);
        assert_eq!(err("RSSMRA85T10A562"), TaxCodeError::BadLength { len: 15 });
        assert_eq!(
            err("RSSMRA85T10A562SS"),
            TaxCodeError::BadLength { len: 17 }
        );
        // Length counts characters, not bytes.
        assert_eq!(
            err("ÀÀÀÀÀÀÀÀÀÀÀ"),
            TaxCodeError::BadCharacter {
                position: 1,
                found: 'À',
                expected: EXPECT_DIGIT,
            }
        );
    }

    #[test]
    fn bad_character_rejected_with_position() {
        assert_eq!(
            err("R5SMRA85T10A562S"),
            TaxCodeError::BadCharacter {
                position: 2,
                found: '5',
                expected: EXPECT_LETTER
            }
        );
        assert_eq!(
            err("RSSMRA8OT10A562S"),
            TaxCodeError::BadCharacter {
                position: 8,
                found: 'O',
                expected: EXPECT_DIGIT_OR_OMO
            }
        );
        assert_eq!(
            err("RSSMRA85T109562S"),
            TaxCodeError::BadCharacter {
                position: 12,
                found: '9',
                expected: EXPECT_LETTER
            }
        );
        assert_eq!(
            err("RSSMRA85T10A5é2S"),
            TaxCodeError::BadCharacter {
                position: 14,
                found: 'é',
                expected: EXPECT_DIGIT_OR_OMO
            }
        );
    }

    #[test]
    fn generator_round_trips() {
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        let letter = |r: &mut XorShift| (b'A' + r.below(26) as u8) as char;
        for _ in 0..20_000 {
            let surname: String = (0..3).map(|_| letter(&mut rng)).collect();
            let name: String = (0..3).map(|_| letter(&mut rng)).collect();
            let year2 = rng.below(100) as u8;
            let month = rng.below(12) as u8 + 1;
            let day = rng.below(31) as u8 + 1;
            let female = rng.below(2) == 1;
            let belfiore = format!("{}{:03}", letter(&mut rng), rng.below(1000));
            let level = rng.below(8) as u8;

            let code = make_personal(&surname, &name, year2, month, day, female, &belfiore, level);
            let tc = TaxCode::parse(&code).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(tc.as_str(), code);
            assert_eq!(
                tc.kind(),
                TaxCodeKind::Personal {
                    omocodic: level > 0
                }
            );
            assert_eq!(tc.birth_year_2digits(), Some(year2));
            assert_eq!(tc.birth_month(), Some(month));
            assert_eq!(tc.birth_day(), Some(day));
            assert_eq!(tc.is_female(), Some(female));
            assert!(matches!(
                TaxCode::parse(&corrupt_check_character(&code)),
                Err(TaxCodeError::CheckCharacter { .. })
            ));

            let body = rng.below(10_000_000_000);
            let tmp = make_temporary(body);
            assert_eq!(TaxCode::parse(&tmp).unwrap().kind(), TaxCodeKind::Temporary);
            assert!(matches!(
                TaxCode::parse(&corrupt_check_character(&tmp)),
                Err(TaxCodeError::TemporaryCheckDigit { .. })
            ));
        }
    }

    #[test]
    fn generator_pads_short_name_blocks() {
        let code = make_personal("fo", "", 1, 2, 3, false, "z404", 0);
        assert_eq!(&code[..6], "FOXXXX");
        assert_eq!(&code[11..15], "Z404");
        assert!(TaxCode::parse(&code).is_ok());
    }

    #[test]
    fn corrupt_check_character_keeps_class_and_body() {
        let bad = corrupt_check_character("RSSMRA85T10A562S");
        assert_eq!(&bad[..15], "RSSMRA85T10A562");
        assert!(bad.as_bytes()[15].is_ascii_uppercase());
        assert_ne!(bad, "RSSMRA85T10A562S");

        let bad = corrupt_check_character("00743110157");
        assert_eq!(&bad[..10], "0074311015");
        assert!(bad.as_bytes()[10].is_ascii_digit());
        assert_ne!(bad, "00743110157");

        // Already-wrong input still ends up wrong.
        let bad = corrupt_check_character("RSSMRA85T10A562T");
        assert!(matches!(
            TaxCode::parse(&bad),
            Err(TaxCodeError::CheckCharacter { .. })
        ));

        assert_eq!(corrupt_check_character("short"), "short");
        assert_eq!(
            corrupt_check_character("RSSMRA85T10A56é"),
            "RSSMRA85T10A56é"
        );
    }

    #[test]
    fn helpers_reject_malformed_input() {
        assert_eq!(check_character("RSSMRA85T10A56"), None);
        assert_eq!(check_character("RSSMRA85T10A56-"), None);
        assert_eq!(check_character("rssmra85t10a562"), Some('S'));
        assert_eq!(temporary_check_digit("007431101"), None);
        assert_eq!(temporary_check_digit("007431101X"), None);
    }

    #[test]
    fn error_display_never_contains_code() {
        let inputs = [
            "RSSMRA85T10A562T",
            "RSSMRA85F10A562S",
            "RSSMRA85T32A562S",
            "RSSMRA85T1LA562S",
            "R5SMRA85T10A562S",
            "RSSMRA85T10A562",
            "00743110158",
            "0074311015A",
            "",
        ];
        for raw in inputs {
            let e = err(raw);
            let msg = e.to_string();
            assert!(!msg.is_empty());
            if raw.len() > 1 {
                assert!(!msg.contains(raw), "message {msg:?} leaks input");
                // Nor any long run of it: 5 consecutive characters would
                // already be enough to narrow down a person.
                for w in raw.as_bytes().windows(5) {
                    let w = std::str::from_utf8(w).unwrap();
                    assert!(!msg.contains(w), "message {msg:?} leaks {w:?}");
                }
            }
            let debug = format!("{e:?}");
            assert!(raw.len() <= 1 || !debug.contains(raw));
        }
    }

    #[test]
    fn debug_of_tax_code_is_redacted() {
        let tc = TaxCode::parse("RSSMRA85T10A562S").unwrap();
        let dbg = format!("{tc:?}");
        assert!(!dbg.contains("RSSMRA"), "{dbg}");
        assert!(dbg.contains("Personal"));
    }

    #[test]
    fn error_is_std_error_and_from_str_works() {
        let e: Box<dyn std::error::Error> = Box::new(TaxCodeError::Empty);
        assert_eq!(e.to_string(), "tax code is empty");
        let tc: TaxCode = "RSSMRA85T10A562S".parse().unwrap();
        assert_eq!(tc.as_ref(), "RSSMRA85T10A562S");
    }
}
