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
    /// Name tokens, for a tenant's name registry (64-bit hashes only).
    Name,
}

impl Domain {
    fn tag(self) -> &'static [u8] {
        match self {
            Domain::Person => b"occupa/person/v1\0",
            Domain::Employer => b"occupa/employer/v1\0",
            Domain::Name => b"occupa/name/v1\0",
        }
    }
}

/// A pseudonymisation key. Its `Debug` does not print the secret.
#[derive(Clone)]
pub struct Key {
    bytes: [u8; KEY_BYTES],
    /// The file it was read from, so a store can refuse a key kept inside it.
    source: Option<std::path::PathBuf>,
}

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
        Ok(Key::from_bytes(k))
    }

    /// From raw bytes (tests, key management systems). Not checked for weakness: a key
    /// from a file goes through [`Key::load`].
    pub fn from_bytes(bytes: [u8; KEY_BYTES]) -> Self {
        Key {
            bytes,
            source: None,
        }
    }

    /// The file the key was read from, if any.
    pub fn source(&self) -> Option<&Path> {
        self.source.as_deref()
    }

    /// A public fingerprint of the key (64 bits of HMAC(key, a fixed label), hex): what a
    /// store records to refuse a second key, and what audit lines carry. It reveals
    /// nothing that would help recompute a pseudonym.
    pub fn fingerprint(&self) -> String {
        let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.bytes)
            .expect("HMAC accepts any key length");
        m.update(b"occupa/key-fingerprint/v1\0");
        m.finalize().into_bytes()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Reads a key file: 64 hexadecimal characters (whitespace around them is ignored).
    /// Refused when others can read the file (on Unix: any group or world permission) or
    /// when the bytes are evidently not random (see [`weakness`]).
    pub fn load(path: &Path) -> Result<Self> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            if let Ok(meta) = std::fs::metadata(path) {
                let mode = meta.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    return Err(Error::Key(format!(
                        "{} can be read by others (mode {mode:o}); a key must be private: \
                         run `chmod 600 {}`",
                        path.display(),
                        path.display()
                    )));
                }
            }
        }
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
        if let Some(why) = weakness(&k) {
            return Err(Error::Key(format!(
                "{}: the key {why}, so anyone could guess it; create a random one with \
                 `occupa key new --out FILE`",
                path.display()
            )));
        }
        Ok(Key {
            bytes: k,
            source: Some(path.to_path_buf()),
        })
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
        let hex: String = self.bytes.iter().map(|b| format!("{b:02x}")).collect();
        f.write_all(hex.as_bytes())
            .and_then(|_| f.write_all(b"\n"))
            .and_then(|_| f.sync_all())
            .map_err(|e| Error::io(path, e))
    }
}

/// Why 32 bytes are evidently not a random key, if they are not: too few distinct values
/// (all zeros, a repeated pattern), a counting sequence, or only printable characters (a
/// password typed into the file). A random key fails any of these with probability below
/// 10⁻¹³.
pub fn weakness(k: &[u8; KEY_BYTES]) -> Option<&'static str> {
    let mut seen = [false; 256];
    for &b in k {
        seen[b as usize] = true;
    }
    if seen.iter().filter(|&&s| s).count() < 16 {
        return Some("has fewer than 16 distinct bytes (all zeros or a repeated pattern)");
    }
    let step = k[1].wrapping_sub(k[0]);
    if k.windows(2).all(|w| w[1].wrapping_sub(w[0]) == step) {
        return Some("is a counting sequence");
    }
    if k.iter().all(|b| (0x20..0x7f).contains(b)) {
        return Some("is printable text (a password?), not random bytes");
    }
    None
}

/// Computes pseudonyms with a prepared HMAC state (cloning it skips rekeying per row).
#[derive(Clone)]
pub struct Pseudonymiser {
    person: Hmac<Sha256>,
    employer: Hmac<Sha256>,
    name: Hmac<Sha256>,
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
            let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(&key.bytes)
                .expect("HMAC accepts any key length");
            m.update(d.tag());
            m
        };
        Pseudonymiser {
            person: mk(Domain::Person),
            employer: mk(Domain::Employer),
            name: mk(Domain::Name),
        }
    }

    /// The keyed 64-bit hash of a normalised name token (see
    /// [`crate::identifiers::NameRegistry`]).
    pub fn name_hash(&self, normalised: &str) -> u64 {
        let mut m = self.name.clone();
        m.update(normalised.as_bytes());
        let d = m.finalize().into_bytes();
        u64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
    }

    /// The pseudonym of an already normalised identifier (see [`crate::codice_fiscale::TaxCode`]).
    pub fn pseudonym(&self, domain: Domain, normalised: &str) -> String {
        let mut m = match domain {
            Domain::Person => self.person.clone(),
            Domain::Employer => self.employer.clone(),
            Domain::Name => self.name.clone(),
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
        assert_eq!(Key::load(&path).unwrap().bytes, k.bytes);
        assert_eq!(Key::load(&path).unwrap().fingerprint(), k.fingerprint());
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
    fn a_world_readable_or_weak_key_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        Key::generate().unwrap().save_new(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = Key::load(&path).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
        for (name, bytes) in [
            ("zeros", [0u8; 32]),
            ("counting", std::array::from_fn(|i| i as u8)),
            ("pattern", std::array::from_fn(|i| [1u8, 2, 3, 4][i % 4])),
            ("text", *b"correct horse battery staple!!!!"),
        ] {
            let p = dir.path().join(name);
            Key::from_bytes(bytes).save_new(&p).unwrap();
            let err = Key::load(&p).unwrap_err().to_string();
            assert!(err.contains("guess"), "{name}: {err}");
        }
        assert!(weakness(&Key::generate().unwrap().bytes).is_none());
    }

    #[test]
    fn malformed_key_file_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, "abc").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        assert!(
            Key::load(&path)
                .unwrap_err()
                .to_string()
                .contains("64 hexadecimal")
        );
    }
}
