//! The ledger: what has been published from a store, kept in the store (`ledger/`), so
//! that every later publication is protected against the earlier ones.
//!
//! One folder per publication: `cells.json` (its id, rule, and every count with its key,
//! value, whether it was shown and whether it was small) and `units.bin` (every unit the
//! publication counted, with its local atom: the set of counts it is in, listed in
//! `atoms.json`). Units are the 64-bit keys of [`occupa_engine::indicators::unit_key`];
//! no name, code or pseudonym is written. An entry is staged and renamed into place, and
//! is committed *before* the report files are written: a crash in between leaves the
//! ledger claiming a publication that did not happen, never the reverse.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Draft, Prior, PriorCell, Protection, Rule};
use crate::{Error, Result, Status};

/// The ledger of a store.
#[derive(Debug, Clone)]
pub struct Ledger {
    dir: PathBuf,
}

/// An entry written but not yet committed.
#[derive(Debug)]
pub struct Staged {
    /// The entry's name (unique: time and random bits).
    pub name: String,
    /// Where it will be.
    pub path: PathBuf,
    staging: PathBuf,
}

#[derive(Serialize, Deserialize)]
struct Meta {
    id: String,
    created: String,
    rule: Rule,
    cells: Vec<CellMeta>,
}

#[derive(Serialize, Deserialize)]
struct CellMeta {
    key: String,
    value: u64,
    published: bool,
    primary: bool,
}

fn err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Input(format!("ledger {}: {e}", path.display()))
}

fn engine(e: occupa_engine::Error) -> Error {
    Error::Input(e.to_string())
}

impl Ledger {
    /// The ledger of the store at `root`.
    pub fn open(root: &Path) -> Result<Ledger> {
        let dir = root.join("ledger");
        occupa_engine::store::no_link(&dir).map_err(engine)?;
        occupa_engine::store::private_dir_all(&dir).map_err(engine)?;
        Ok(Ledger { dir })
    }

    /// Every publication recorded, oldest first.
    pub fn priors(&self) -> Result<Vec<Prior>> {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .map_err(|e| err(&self.dir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.is_dir()
                    && !p
                        .file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            })
            .collect();
        entries.sort();
        entries.iter().map(|p| read_entry(p)).collect()
    }

    /// Records a protected publication: stages it, then commits it; returns the entry's
    /// folder. Call it before the publication's files are written.
    pub fn record(&self, draft: &Draft, protection: &Protection, rule: Rule) -> Result<PathBuf> {
        let staged = self.stage(draft, protection, rule)?;
        self.commit(staged)
    }

    /// Commits a staged entry (an atomic rename); returns its folder.
    pub fn commit(&self, staged: Staged) -> Result<PathBuf> {
        occupa_engine::store::commit(&staged.staging, &staged.path).map_err(engine)?;
        Ok(staged.path)
    }

    /// Writes an entry into a hidden staging folder, for [`Ledger::commit`].
    pub fn stage(&self, draft: &Draft, protection: &Protection, rule: Rule) -> Result<Staged> {
        let now = chrono::Utc::now();
        let mut salt = [0u8; 4];
        getrandom::fill(&mut salt).map_err(|e| err(&self.dir, e))?;
        let name = format!(
            "{}-{}",
            now.format("%Y%m%dT%H%M%S%6f"),
            salt.iter().map(|b| format!("{b:02x}")).collect::<String>()
        );
        let staging = self.dir.join(format!(".staging-{name}"));
        occupa_engine::store::private_dir_all(&staging).map_err(engine)?;
        // Every printed count, and the derived ones that are small: a later publication
        // must keep those protected. A large derived count says nothing the printed ones
        // do not, and kept as hidden it would make a later publication hide the same set.
        let kept: Vec<usize> = (0..draft.counts.len())
            .filter(|&i| draft.counts[i].printed || protection.status[i] == Status::Primary)
            .collect();
        let meta = Meta {
            id: draft.id.clone(),
            created: now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            rule,
            cells: kept
                .iter()
                .map(|&i| CellMeta {
                    key: draft.counts[i].key.clone(),
                    value: draft.counts[i].value(),
                    published: protection.shown(draft, i).is_some(),
                    primary: protection.status[i] == Status::Primary,
                })
                .collect(),
        };
        // Local atoms: each unit with the set of counts it is in.
        let mut pairs: Vec<(u64, u32)> = kept
            .iter()
            .enumerate()
            .flat_map(|(k, &i)| draft.counts[i].units.iter().map(move |&u| (u, k as u32)))
            .collect();
        pairs.sort_unstable();
        let mut atoms: Vec<Vec<u32>> = Vec::new();
        let mut atom_of: HashMap<Vec<u32>, u32> = HashMap::new();
        let mut units: Vec<u64> = Vec::new();
        let mut unit_atom: Vec<u32> = Vec::new();
        let mut i = 0;
        while i < pairs.len() {
            let mut j = i;
            let mut sig = Vec::new();
            while j < pairs.len() && pairs[j].0 == pairs[i].0 {
                sig.push(pairs[j].1);
                j += 1;
            }
            sig.dedup();
            let a = match atom_of.get(&sig) {
                Some(&a) => a,
                None => {
                    let a = atoms.len() as u32;
                    atom_of.insert(sig.clone(), a);
                    atoms.push(sig);
                    a
                }
            };
            units.push(pairs[i].0);
            unit_atom.push(a);
            i = j;
        }
        let write = |name: &str, bytes: &[u8]| -> Result<()> {
            let path = staging.join(name);
            let mut f = occupa_engine::store::create_private(&path).map_err(engine)?;
            f.write_all(bytes)
                .and_then(|_| f.sync_all())
                .map_err(|e| err(&path, e))
        };
        write(
            "cells.json",
            &serde_json::to_vec(&meta).map_err(|e| err(&staging, e))?,
        )?;
        write(
            "atoms.json",
            &serde_json::to_vec(&atoms).map_err(|e| err(&staging, e))?,
        )?;
        let mut bin = Vec::with_capacity(units.len() * 12 + 8);
        bin.extend_from_slice(&(units.len() as u64).to_le_bytes());
        for u in &units {
            bin.extend_from_slice(&u.to_le_bytes());
        }
        for a in &unit_atom {
            bin.extend_from_slice(&a.to_le_bytes());
        }
        write("units.bin", &bin)?;
        Ok(Staged {
            path: self.dir.join(&name),
            name,
            staging,
        })
    }
}

fn read_entry(path: &Path) -> Result<Prior> {
    let meta: Meta =
        serde_json::from_slice(&std::fs::read(path.join("cells.json")).map_err(|e| err(path, e))?)
            .map_err(|e| err(path, e))?;
    let atoms: Vec<Vec<u32>> =
        serde_json::from_slice(&std::fs::read(path.join("atoms.json")).map_err(|e| err(path, e))?)
            .map_err(|e| err(path, e))?;
    let bin = std::fs::read(path.join("units.bin")).map_err(|e| err(path, e))?;
    let bad = || err(path, "units.bin is damaged");
    let n = u64::from_le_bytes(
        bin.get(..8)
            .ok_or_else(bad)?
            .try_into()
            .map_err(|_| bad())?,
    ) as usize;
    if bin.len() != 8 + 12 * n {
        return Err(bad());
    }
    let mut cells: Vec<PriorCell> = meta
        .cells
        .iter()
        .map(|c| PriorCell {
            key: c.key.clone(),
            units: Vec::new(),
            published: c.published,
            primary: c.primary,
        })
        .collect();
    for k in 0..n {
        let u = u64::from_le_bytes(bin[8 + 8 * k..16 + 8 * k].try_into().map_err(|_| bad())?);
        let off = 8 + 8 * n + 4 * k;
        let a = u32::from_le_bytes(bin[off..off + 4].try_into().map_err(|_| bad())?) as usize;
        for &c in atoms.get(a).ok_or_else(bad)? {
            cells.get_mut(c as usize).ok_or_else(bad)?.units.push(u);
        }
    }
    for (c, m) in cells.iter().zip(&meta.cells) {
        if c.units.len() as u64 != m.value {
            return Err(err(
                path,
                format!("count {} does not match its units", m.key),
            ));
        }
    }
    Ok(Prior {
        id: meta.id,
        rule: meta.rule,
        cells,
    })
}
