//! Keyed pseudonymisation: the tax code becomes HMAC-SHA256(key, normalised code).
//!
//! The key never lives inside the store (DESIGN.md): it is read from `--key-file` or
//! `OCCUPA_KEY_FILE`. Without the key a pseudonym cannot be recomputed from a tax code,
//! so a stolen store cannot be joined back to people by brute force over the (small)
//! space of plausible codes — the reason a plain hash would not do.

use std::io::Write;
use std::path::Path;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::{Error, Result};

/// Length of the secret key in bytes.
pub const KEY_BYTES: usize = 32;

/// Domain separation: the same key pseudonymises persons and employers, but a person's
/// tax code and an employer's identifier never map to the same pseudonym space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Domain {
    /// Persons (tax code of the jobseeker).
    Person,
    /// Employers (VAT number or tax code of the employer).
    Employer,
}

impl Domain {
    fn tag(self) -> &'static [u8] {
        match self {
            Domain::Person => b"occupa/person/v1\0",
            Domain::Employer => b"occupa/employer/v1\0",
        }
    }
}

/// A pseudonymisation key. Its `Debug` does not print the secret.
#[derive(Clone)]
pub struct Key([u8; KEY_BYTES]);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(<secret>)")
    }
}

impl Key {
    /// A new random key from the operating system's generator.
    pub fn generate() -> Result<Self> {
        let mut k = [0u8; KEY_BYTES];
        getrandom::fill(&mut k).map_err(|e| Error::Key(format!("no system randomness: {e}")))?;
        Ok(Key(k))
    }

    /// From raw bytes (tests, key management systems).
    pub fn from_bytes(bytes: [u8; KEY_BYTES]) -> Self {
        Key(bytes)
    }

    /// Reads a key file: 64 hexadecimal characters (whitespace around them is ignored).
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::Key(format!(
                "cannot read {}: {e}; create one with `occupa key new --out FILE`",
                path.display()
            ))
        })?;
        let hex = text.trim();
        if hex.len() != 2 * KEY_BYTES || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::Key(format!(
                "{} must hold {} hexadecimal characters",
                path.display(),
                2 * KEY_BYTES
            )));
        }
        let mut k = [0u8; KEY_BYTES];
        for (i, byte) in k.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
                .map_err(|e| Error::Key(e.to_string()))?;
        }
        Ok(Key(k))
    }

    /// Writes the key as hex to a new file readable only by its owner (0600 on Unix);
    /// refuses to overwrite an existing key, since that would orphan every pseudonym.
    pub fn save_new(&self, path: &Path) -> Result<()> {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(path).map_err(|e| Error::io(path, e))?;
        let hex: String = self.0.iter().map(|b| format!("{b:02x}")).collect();
        f.write_all(hex.as_bytes())
            .and_then(|_| f.write_all(b"\n"))
            .and_then(|_| f.sync_all())
            .map_err(|e| Error::io(path, e))
    }
}

/// Computes pseudonyms with a prepared HMAC state (cloning it skips rekeying per row).
#[derive(Clone)]
pub struct Pseudonymiser {
    person: Hmac<Sha256>,
    employer: Hmac<Sha256>,
}

impl std::fmt::Debug for Pseudonymiser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pseudonymiser(<keyed>)")
    }
}

/// Hex characters kept from the MAC: 128 bits, ample against collisions among the
/// millions of people of a region and half the storage of the full digest.
pub const PSEUDONYM_HEX: usize = 32;

impl Pseudonymiser {
    /// Prepares the MAC states for both domains.
    pub fn new(key: &Key) -> Self {
        let mk = |d: Domain| {
            let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(&key.0)
                .expect("HMAC accepts any key length");
            m.update(d.tag());
            m
        };
        Pseudonymiser {
            person: mk(Domain::Person),
            employer: mk(Domain::Employer),
        }
    }

    /// The pseudonym of an already normalised identifier (see [`crate::codice_fiscale::TaxCode`]).
    pub fn pseudonym(&self, domain: Domain, normalised: &str) -> String {
        let mut m = match domain {
            Domain::Person => self.person.clone(),
            Domain::Employer => self.employer.clone(),
        };
        m.update(normalised.as_bytes());
        let digest = m.finalize().into_bytes();
        let mut out = String::with_capacity(PSEUDONYM_HEX);
        const HEX: &[u8; 16] = b"0123456789abcdef";
        for b in digest.iter().take(PSEUDONYM_HEX / 2) {
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 15) as usize] as char);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudonym_matches_an_independent_hmac_sha256() {
        // Reference computed with Python: hmac.new(bytes(range(32)),
        // b"occupa/person/v1\x00RSSMRA85T10A562S", hashlib.sha256).hexdigest()[:32]
        let key = Key::from_bytes(std::array::from_fn(|i| i as u8));
        let p = Pseudonymiser::new(&key).pseudonym(Domain::Person, "RSSMRA85T10A562S");
        assert_eq!(
            p,
            include_str!("../tests/fixtures/pseudonym_reference.txt").trim()
        );
    }

    #[test]
    fn domains_do_not_collide() {
        let p = Pseudonymiser::new(&Key::from_bytes([7; 32]));
        assert_ne!(
            p.pseudonym(Domain::Person, "00743110157"),
            p.pseudonym(Domain::Employer, "00743110157")
        );
    }

    #[test]
    fn different_keys_give_unlinkable_pseudonyms() {
        let a = Pseudonymiser::new(&Key::from_bytes([1; 32])).pseudonym(Domain::Person, "X");
        let b = Pseudonymiser::new(&Key::from_bytes([2; 32])).pseudonym(Domain::Person, "X");
        assert_ne!(a, b);
        assert_eq!(a.len(), PSEUDONYM_HEX);
    }

    #[test]
    fn key_round_trips_through_a_0600_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        let k = Key::generate().unwrap();
        k.save_new(&path).unwrap();
        assert_eq!(Key::load(&path).unwrap().0, k.0);
        assert!(k.save_new(&path).is_err(), "must not overwrite a key");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        assert!(format!("{k:?}").contains("secret"));
    }

    #[test]
    fn malformed_key_file_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, "abc").unwrap();
        assert!(
            Key::load(&path)
                .unwrap_err()
                .to_string()
                .contains("64 hexadecimal")
        );
    }
}
