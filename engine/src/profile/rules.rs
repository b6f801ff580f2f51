//! Versioned scoring rules: each fitted profiling model is kept as a numbered version with
//! the day it takes effect and the versions of the instruments whose scores it reads, so
//! that every score says which model and which instrument made it. A recalibration adds a
//! version (with a drift report of the previous version on the new validation persons);
//! nothing is ever overwritten: a version file is created with `O_EXCL` semantics (a
//! hard link of a synced staging file), so two recalibrations at once cannot both take
//! the same number.
//!
//! In a store the book of an outcome lives in `tenants/<t>/profile/<outcome>/`, owner-only
//! like the rest of the tenant's folder; outside a store, in any folder the user names.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::model::{FittedProfile, ProfileReport, Validation};
use crate::store::{TenantScope, create_private, no_link, private_dir_all};
use crate::{Error, Result};

/// The headline of a validation, as a rule records it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RuleValidation {
    /// Persons.
    pub n: usize,
    /// AUC.
    pub auc: f64,
    /// DeLong's 95 % interval.
    pub auc_ci95: (f64, f64),
    /// Brier score.
    pub brier: f64,
    /// Calibration slope.
    pub calibration_slope: f64,
    /// Calibration-in-the-large.
    pub calibration_intercept: f64,
    /// Share with the outcome.
    pub observed: f64,
    /// Mean prediction.
    pub predicted: f64,
}

impl From<&Validation> for RuleValidation {
    fn from(v: &Validation) -> Self {
        RuleValidation {
            n: v.n,
            auc: v.discrimination.auc,
            auc_ci95: v.discrimination.ci95,
            brier: v.brier,
            calibration_slope: v.calibration.slope,
            calibration_intercept: v.calibration.intercept,
            observed: v.calibration.observed,
            predicted: v.calibration.expected,
        }
    }
}

/// What the previous version does on the new version's validation persons: the reason to
/// recalibrate, or not.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DriftReport {
    /// The version compared.
    pub previous_version: u32,
    /// The previous version on the new validation persons.
    pub previous: RuleValidation,
    /// The new version on the same persons.
    pub current: RuleValidation,
    /// Population stability index of the previous version's scores, its own validation
    /// persons against the new ones.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub psi: Option<f64>,
    /// Persons the previous version could not score (a level it did not know).
    pub unscored_by_previous: usize,
}

/// One version of a scoring rule.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScoringRule {
    /// The rule's name (the outcome it predicts, e.g. `employed_12m`).
    pub name: String,
    /// 1, 2, …
    pub version: u32,
    /// First day (`YYYY-MM-DD`) on which the rule scores persons taken in charge.
    pub effective_from: String,
    /// When it was fitted (UTC, RFC 3339).
    pub created: String,
    /// Instrument → version whose scores the model reads (`gol` → `2022.1`).
    pub instruments: BTreeMap<String, String>,
    /// Training and validation periods.
    pub periods: BTreeMap<String, String>,
    /// Persons the model was fitted on.
    pub n_train: usize,
    /// The validation on the later period.
    pub validation: RuleValidation,
    /// The previous version on the same later period, if there was one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drift: Option<DriftReport>,
    /// The model.
    pub profile: FittedProfile,
}

/// The versions of one rule, in a folder.
#[derive(Debug, Clone)]
pub struct RuleBook {
    dir: PathBuf,
    name: String,
}

fn check_name(name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(Error::Param {
            name: "rule",
            reason: format!(
                "'{name}' cannot name a rule: use letters, digits, '_' or '-' (up to 64)"
            ),
        });
    }
    Ok(())
}

fn parse_day(name: &'static str, s: &str) -> Result<chrono::NaiveDate> {
    chrono::NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").map_err(|_| Error::Param {
        name,
        reason: format!("'{s}' is not a day: write YYYY-MM-DD"),
    })
}

impl RuleBook {
    /// The book of rule `name` in a tenant's store.
    pub fn in_store(scope: &TenantScope, name: &str) -> Result<Self> {
        check_name(name)?;
        Ok(RuleBook {
            dir: scope.dir().join("profile").join(name),
            name: name.to_string(),
        })
    }

    /// The book of rule `name` in `dir` (outside a store).
    pub fn in_dir(dir: &Path, name: &str) -> Result<Self> {
        check_name(name)?;
        Ok(RuleBook {
            dir: dir.to_path_buf(),
            name: name.to_string(),
        })
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every version, oldest first.
    pub fn versions(&self) -> Result<Vec<ScoringRule>> {
        no_link(&self.dir)?;
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(&self.dir, e)),
        };
        let mut out = Vec::new();
        for e in entries {
            let e = e.map_err(|e| Error::io(&self.dir, e))?;
            let file = e.file_name();
            let Some(v) = file
                .to_str()
                .and_then(|f| f.strip_prefix('v'))
                .and_then(|f| f.strip_suffix(".json"))
                .and_then(|f| f.parse::<u32>().ok())
            else {
                continue;
            };
            let path = e.path();
            no_link(&path)?;
            let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
            let rule: ScoringRule = serde_json::from_str(&text).map_err(|e| Error::BadFile {
                path: path.clone(),
                reason: format!("not a scoring rule: {e}"),
            })?;
            if rule.version != v || rule.name != self.name {
                return Err(Error::BadFile {
                    path,
                    reason: format!(
                        "holds version {} of '{}', not version {v} of '{}': the book was \
                         edited by hand; restore the file",
                        rule.version, rule.name, self.name
                    ),
                });
            }
            out.push(rule);
        }
        out.sort_by_key(|r| r.version);
        Ok(out)
    }

    /// The version in effect for a person taken in charge on `day`: the latest whose
    /// `effective_from` is on or before it.
    pub fn effective_on(rules: &[ScoringRule], day: chrono::NaiveDate) -> Option<&ScoringRule> {
        rules
            .iter()
            .filter(|r| parse_day("effective_from", &r.effective_from).is_ok_and(|d| d <= day))
            .max_by(|a, b| {
                (a.effective_from.as_str(), a.version).cmp(&(b.effective_from.as_str(), b.version))
            })
    }

    /// Adds a version fitted as `profile` with `report`, effective from `effective_from`,
    /// which must be later than every earlier version's. Returns the rule written.
    #[allow(clippy::too_many_arguments)]
    pub fn add(
        &self,
        profile: FittedProfile,
        report: &ProfileReport,
        effective_from: &str,
        instruments: BTreeMap<String, String>,
        periods: BTreeMap<String, String>,
        drift: Option<DriftReport>,
    ) -> Result<ScoringRule> {
        let day = parse_day("effective_from", effective_from)?;
        let existing = self.versions()?;
        if let Some(last) = existing.last() {
            let last_day = parse_day("effective_from", &last.effective_from)?;
            if day <= last_day {
                return Err(Error::Param {
                    name: "effective_from",
                    reason: format!(
                        "version {} of '{}' takes effect on {last_day}: a new version must take \
                         effect later (versions are never replaced)",
                        last.version, self.name
                    ),
                });
            }
        }
        let version = existing.last().map_or(1, |r| r.version + 1);
        let rule = ScoringRule {
            name: self.name.clone(),
            version,
            effective_from: day.to_string(),
            created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            instruments,
            periods,
            n_train: report.n_train,
            validation: RuleValidation::from(&report.validation),
            drift,
            profile,
        };
        private_dir_all(&self.dir)?;
        let path = self.dir.join(format!("v{version:04}.json"));
        let staging = self.dir.join(format!(
            ".staging-v{version:04}-{}.json",
            std::process::id()
        ));
        {
            use std::io::Write;
            let mut f = create_private(&staging)?;
            f.write_all(&serde_json::to_vec_pretty(&rule)?)
                .and_then(|()| f.sync_all())
                .map_err(|e| Error::io(&staging, e))?;
        }
        // A hard link fails if the version exists: never an overwrite, even in a race.
        let linked = std::fs::hard_link(&staging, &path);
        let _ = std::fs::remove_file(&staging);
        match linked {
            Ok(()) => Ok(rule),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(Error::Store {
                path,
                reason: "another recalibration wrote this version at the same time: run again"
                    .into(),
            }),
            Err(e) => Err(Error::io(&path, e)),
        }
    }
}
