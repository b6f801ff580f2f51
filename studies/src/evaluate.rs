//! `occupa evaluate`: counterfactual impact evaluation of a CSV file.

use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use occupa_engine::causal::Estimand;
use occupa_engine::causal::evaluate::{Evaluation, Grade};
use occupa_engine::causal::runner::{
    Design, DidOutput, EvaluationOutput, EvaluationSpec, Outcome, RdOutput,
};

#[derive(Args)]
pub struct EvaluateArgs {
    /// Input with a header line, one row per unit: CSV (any separator and encoding,
    /// decimal commas), XLSX/ODS or Parquet.
    #[arg(long)]
    input: PathBuf,
    /// The sheet of a workbook input (name or number from 1; the first by default).
    #[arg(long)]
    sheet: Option<String>,
    /// Treatment column (0/1 or false/true). Not needed by a sharp regression
    /// discontinuity, whose treatment is the side of the cut-off.
    #[arg(long)]
    treatment: Option<String>,
    /// Outcome column.
    #[arg(long)]
    outcome: String,
    /// Covariate terms, comma-separated: a column, COL^2 (up to ^4), or a product A*B;
    /// a text column enters as dummies.
    #[arg(long, value_delimiter = ',')]
    covariates: Vec<String>,
    /// psm (matching), ipw, aipw (doubly robust), ra (regression adjustment), ols, or did
    /// (difference-in-differences on a panel: needs --time and --unit; the treatment
    /// column says whether the unit is treated in that period).
    #[arg(long)]
    method: String,
    /// did: the period column (whole numbers).
    #[arg(long)]
    time: Option<String>,
    /// did: the unit column (standard errors are clustered by unit).
    #[arg(long)]
    unit: Option<String>,
    /// rdd: the running variable (e.g. a GOL score).
    #[arg(long)]
    running: Option<String>,
    /// rdd: the cut-off; units at or above it are on the treated side.
    #[arg(long)]
    cutoff: Option<f64>,
    /// rdd: a fuzzy design, with this take-up column (0/1); --treatment is then unused.
    #[arg(long)]
    fuzzy: Option<String>,
    /// rdd: a fixed bandwidth instead of the MSE-optimal one.
    #[arg(long)]
    bandwidth: Option<f64>,
    /// rdd: variance, nn (3 neighbours, default) or hc0..hc3.
    #[arg(long, default_value = "nn")]
    vce: String,
    /// att, atc or ate (default: att for psm, ate otherwise); psm matches in both
    /// directions for the ATE, ipw and ra reweight for any of the three, aipw is for the ATE.
    #[arg(long)]
    estimand: Option<String>,
    /// When a covariate separates treated from controls (the propensity likelihood has no
    /// maximum): auto (maximum likelihood where it exists, else Firth's penalised
    /// likelihood, and say so), firth (always), merge (pool the levels fewer than
    /// --merge-below treated or controls hold, then auto), trim (drop the units outside the
    /// overlap: Crump et al.'s optimal bounds for the ATE, the common support for the ATT
    /// and ATC, or the --trim bounds; refit on the rest), or refuse.
    #[arg(long, default_value = "auto")]
    separation: String,
    /// With --separation merge: a level held by fewer treated or fewer controls than this
    /// is rare.
    #[arg(long, default_value_t = 5)]
    merge_below: usize,
    /// Cluster column for cluster-robust standard errors (e.g. tenant or job centre).
    #[arg(long)]
    cluster: Option<String>,
    /// Matching: columns to match exactly on (e.g. tenant,sex), comma-separated.
    #[arg(long, value_delimiter = ',')]
    exact: Vec<String>,
    /// Matching: controls per treated unit.
    #[arg(long, default_value_t = 1)]
    ratio: usize,
    /// Matching: each control serves at most one treated unit.
    #[arg(long)]
    no_replacement: bool,
    /// Matching: caliper in standard deviations of the logit of the propensity score.
    #[arg(long, default_value_t = 0.2)]
    caliper: f64,
    /// Matching: no caliper.
    #[arg(long, conflicts_with = "caliper")]
    no_caliper: bool,
    /// Matching: Mahalanobis distance on the covariates (within the caliper on the score).
    #[arg(long)]
    mahalanobis: bool,
    /// Weighting: drop units with a propensity outside LO,HI (e.g. 0.05,0.95).
    #[arg(long, value_delimiter = ',', num_args = 1..=2)]
    trim: Option<Vec<f64>>,
    /// OLS covariance: classical, hc0, hc1, hc2, hc3 (cluster-robust with --cluster).
    #[arg(long, default_value = "hc1")]
    se: String,
    /// Largest |standardised mean difference| after adjustment that passes.
    #[arg(long, default_value_t = 0.1)]
    smd_bound: f64,
    /// Bootstrap replicates (seeded, parallel): adds a bootstrap SE with percentile and
    /// normal intervals.
    #[arg(long)]
    bootstrap: Option<usize>,
    /// Seed of the bootstrap.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Also evaluate within each value of this column (e.g. sex, citizenship, GOL path).
    #[arg(long)]
    by: Option<String>,
    /// Write love.svg (balance before/after) and overlap.svg (propensity scores by group,
    /// bins under --min-count units hidden) into this folder.
    #[arg(long)]
    plots: Option<PathBuf>,
    /// Smallest count shown in a plot bin.
    #[arg(long, default_value_t = 5)]
    min_count: u64,
    /// Refuse to print an estimate whose diagnostics fail.
    #[arg(long)]
    require_pass: bool,
    /// Print the full JSON (otherwise a summary).
    #[arg(long)]
    json: bool,
}

/// The flags as an evaluation spec: the one mapping from the command line to the engine.
fn spec_of(a: &EvaluateArgs) -> Result<EvaluationSpec> {
    let mut spec = EvaluationSpec::new(
        Design::parse(&a.method)?,
        a.treatment.as_deref(),
        &a.outcome,
    );
    spec.covariates = a.covariates.clone();
    spec.estimand = a.estimand.clone();
    spec.separation = a.separation.clone();
    spec.merge_below = a.merge_below;
    spec.cluster = a.cluster.clone();
    spec.exact = a.exact.clone();
    spec.ratio = a.ratio;
    spec.replace = !a.no_replacement;
    spec.caliper = if a.no_caliper { 0.0 } else { a.caliper };
    spec.mahalanobis = a.mahalanobis;
    spec.trim = match a.trim.as_deref() {
        Some([lo, hi]) => Some([*lo, *hi]),
        Some(_) => bail!("--trim takes two numbers, LO,HI"),
        None => None,
    };
    spec.se = a.se.clone();
    spec.smd_bound = a.smd_bound;
    spec.bootstrap = a.bootstrap;
    spec.seed = a.seed;
    spec.by = a.by.clone();
    spec.time = a.time.clone();
    spec.unit = a.unit.clone();
    spec.running = a.running.clone();
    spec.cutoff = a.cutoff;
    spec.fuzzy = a.fuzzy.clone();
    spec.bandwidth = a.bandwidth;
    spec.vce = a.vce.clone();
    spec.sheet = a.sheet.clone();
    Ok(spec)
}

pub fn run(a: EvaluateArgs) -> Result<()> {
    if a.method.eq_ignore_ascii_case("did") && (a.time.is_none() || a.unit.is_none()) {
        bail!("--method did needs --time COL and --unit COL");
    }
    if a.method.eq_ignore_ascii_case("rdd") && (a.running.is_none() || a.cutoff.is_none()) {
        bail!("--method rdd needs --running COL and --cutoff X");
    }
    let spec = spec_of(&a)?;
    let valid = spec.check().map_err(|e| match e {
        occupa_engine::Error::Param { name, reason } => {
            anyhow!("--{}: {reason}", name.replace('_', "-"))
        }
        other => other.into(),
    })?;
    match valid.run_file(&a.input)? {
        EvaluationOutput::Adjusted(ev) => adjusted(&a, &ev),
        EvaluationOutput::Did(d) => {
            if a.json {
                println!("{}", serde_json::to_string_pretty(&d)?);
            } else {
                print_did(&d);
            }
            Ok(())
        }
        EvaluationOutput::Rdd(r) => {
            if a.json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                print_rdd(&a, &r);
            }
            Ok(())
        }
    }
}

fn adjusted(a: &EvaluateArgs, ev: &Evaluation) -> Result<()> {
    if a.require_pass && ev.diagnostics.overall == Grade::Fail {
        bail!(
            "diagnostics fail (balance {:?} at max |SMD| {:.3}, overlap {}, effective sample \
             size {:?} at {:.1}, kept share {:?} at {:.0}%); the estimate is withheld: improve the model or the sample, \
             or run without --require-pass to see it with its diagnostics",
            ev.diagnostics.balance.grade,
            ev.diagnostics.balance.value,
            ev.diagnostics
                .overlap
                .as_ref()
                .map_or("n/a".to_string(), |c| format!(
                    "{:?} at {:.2}",
                    c.grade, c.value
                )),
            ev.diagnostics.effective_sample_size.grade,
            ev.diagnostics.effective_sample_size.value,
            ev.diagnostics.kept.grade,
            100.0 * ev.diagnostics.kept.value,
        );
    }
    if let Some(dir) = &a.plots {
        use occupa_reports::causal_plots::{love_plot_svg, overlap_svg};
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let write = |name: &str, svg: String| -> Result<()> {
            let path = dir.join(name);
            let tmp = dir.join(format!(".{name}.tmp"));
            std::fs::write(&tmp, svg).with_context(|| format!("writing {}", tmp.display()))?;
            std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
            Ok(())
        };
        write("love.svg", love_plot_svg(&ev.balance, a.smd_bound))?;
        if let Some(ps) = &ev.propensity {
            let min = occupa_anonymiser::MinCount::new(a.min_count)?;
            write("overlap.svg", overlap_svg(&ps.histogram, min))?;
        }
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(ev)?);
    } else {
        print_summary(ev);
    }
    Ok(())
}

fn print_summary(ev: &Evaluation) {
    let est = match ev.effect.estimand {
        Estimand::Att => "ATT",
        Estimand::Atc => "ATC",
        Estimand::Ate => "ATE",
    };
    if let Some(input) = &ev.input {
        println!("input: {input}");
    }
    if !ev.aliased.is_empty() {
        println!(
            "left out, aliased with the intercept and the terms before them (R's lm gives NA): {}",
            ev.aliased.join(", ")
        );
    }
    for m in &ev.merged {
        let rare: Vec<String> = m
            .rare
            .iter()
            .map(|(l, c)| format!("{l} ({} treated, {} controls)", c[0], c[1]))
            .collect();
        match &m.into {
            Some(into) => println!(
                "merged rare levels of {}: {} became {into}",
                m.covariate,
                rare.join(", ")
            ),
            None => println!(
                "left out {}: merging its rare levels ({}) leaves a single level",
                m.covariate,
                rare.join(", ")
            ),
        }
    }
    if let Some(t) = &ev.trimmed {
        println!(
            "trimmed to the overlap: {} treated and {} controls dropped; {}; the estimate is for {}",
            t.treated, t.controls, t.rule, t.population
        );
    }
    if let Some(why) = &ev.firth_propensity {
        println!("propensity score by Firth's penalised likelihood: {why}");
    }
    if !ev.aliased_in_outcome_models.is_empty() {
        println!(
            "left out of an outcome regression, aliased there: {}",
            ev.aliased_in_outcome_models.join(", ")
        );
    }
    println!(
        "{} {est}: {:.4} (SE {:.4}, 95% CI {:.4} to {:.4}, p = {:.4})",
        ev.effect.method,
        ev.effect.estimate,
        ev.effect.se,
        ev.effect.ci95[0],
        ev.effect.ci95[1],
        ev.effect.p_value
    );
    println!("  SE: {}", ev.effect.se_kind);
    println!(
        "  units: {} treated, {} controls compared; {} rows read, {} left out for missing values",
        ev.effect.n_treated, ev.effect.n_control, ev.rows, ev.dropped_missing
    );
    if let Some(r) = &ev.dropped_reason {
        println!("  dropped: {r}");
    }
    if let Some(c) = &ev.caliper {
        println!(
            "  caliper: {} SD of the logit of the propensity score = {:.4} on the logit scale",
            c.sds, c.width
        );
    }
    let d = &ev.diagnostics;
    println!(
        "  diagnostics: {:?} (balance {:?}, max |SMD| {:.3}; overlap {}; effective sample size {:?}, {:.1}; kept {:?}, {:.0}% of the {})",
        d.overall,
        d.balance.grade,
        d.balance.value,
        d.overlap.as_ref().map_or("n/a".to_string(), |c| format!(
            "{:?}, equipoise {:.2}",
            c.grade, c.value
        )),
        d.effective_sample_size.grade,
        d.effective_sample_size.value,
        d.kept.grade,
        100.0 * d.kept.value,
        match ev.effect.estimand {
            Estimand::Att => "treated",
            Estimand::Atc => "controls",
            Estimand::Ate => "units",
        }
    );
    println!(
        "  power: minimum detectable effect {:.4} at 80% power (design-stage {:.4}); power at the estimate {:.2}",
        ev.power.mde, ev.power.mde_design, ev.power.power_at_estimate
    );
    let s = &ev.sensitivity;
    print!(
        "  sensitivity: E-value {:.2} (confidence limit {:.2})",
        s.e_value.estimate, s.e_value.ci_limit
    );
    if let Some(g) = s.critical_gamma {
        print!("; Rosenbaum: significant up to Gamma = {g:.2}");
    }
    println!();
    if let Some(b) = &ev.bootstrap {
        println!(
            "  bootstrap ({} replicates, {} failed, seed {}): SE {:.4}, percentile CI {:.4} to {:.4}",
            b.replicates, b.failed, b.seed, b.se, b.percentile[0], b.percentile[1]
        );
        if let Some(c) = &b.caution {
            println!("    caution: {c}");
        }
    }
    for g in &ev.subgroups {
        match &g.result {
            Ok(e) => println!(
                "  {}: {:.4} (SE {:.4}, {} treated, {} controls, diagnostics {:?})",
                g.group,
                e.effect.estimate,
                e.effect.se,
                e.effect.n_treated,
                e.effect.n_control,
                e.diagnostics.overall
            ),
            Err(why) => println!("  {}: not estimated ({why})", g.group),
        }
    }
    println!("  (--json for balance per covariate and the full diagnostics)");
}

fn print_did(d: &DidOutput) {
    let fit = &d.fit;
    let e = &fit.effect;
    println!(
        "did ({}): {:.4} (SE {:.4} clustered by unit, 95% CI {:.4} to {:.4})",
        e.design, e.estimate, e.se, e.ci95[0], e.ci95[1]
    );
    println!(
        "  panel: {} units, {} periods, {} rows ({} left out for missing values); cohorts {:?}",
        fit.units, fit.periods, d.rows, d.dropped_missing, fit.cohorts
    );
    for c in &fit.event_study {
        println!("  k = {:>3}: {:>10.4} (SE {:.4})", c.k, c.estimate, c.se);
    }
    if !fit.event_study_aliased.is_empty() {
        println!(
            "  left out, collinear with the fixed effects and the periods before them (R's lm gives NA): {}",
            fit.event_study_aliased
                .iter()
                .map(|k| format!("k = {k}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    match &d.callaway_santanna {
        Some(Outcome::Done(c)) => {
            println!(
                "Callaway-Sant'Anna (never-treated controls): overall ATT {:.4} (SE {:.4}); \
                 by event time, e >= 0: {:.4} (SE {:.4})",
                c.simple.estimate, c.simple.se, c.dynamic_overall.estimate, c.dynamic_overall.se
            );
            for d in &c.dynamic {
                println!(
                    "  e = {:>3}: {:>10.4} (SE {:.4})",
                    d.at.unwrap_or_default(),
                    d.estimate,
                    d.se
                );
            }
        }
        Some(Outcome::Failed { error }) => println!("Callaway-Sant'Anna not run: {error}"),
        None => {}
    }
}

fn print_rdd(a: &EvaluateArgs, r: &RdOutput) {
    let fit = &r.fit;
    let running = a.running.as_deref().unwrap_or("the running variable");
    let cutoff = a.cutoff.unwrap_or_default();
    let rb = &fit.robust;
    println!(
        "rdd ({}) at {cutoff}: {:.4} (conventional SE {:.4}); robust bias-corrected 95% CI {:.4} to {:.4}, p = {:.4}",
        if a.fuzzy.is_some() { "fuzzy" } else { "sharp" },
        fit.conventional.estimate,
        fit.conventional.se,
        rb.ci95[0],
        rb.ci95[1],
        rb.p_value
    );
    println!(
        "  bandwidth h = {:.4}, b = {:.4}; observations within h: {} left, {} right",
        fit.h[0], fit.b[0], fit.n_h[0], fit.n_h[1]
    );
    if fit.mass_points {
        println!(
            "  mass points: {running} takes {} distinct values left of the cut-off and {} right; \
             the pilot bandwidths reach at least 10 of them per side, or all where fewer (rdrobust's masspoints = adjust)",
            fit.distinct[0], fit.distinct[1]
        );
    }
    match &r.density_test {
        Outcome::Done(d) => println!(
            "  manipulation test (density of {running} at the cut-off): T = {:.3}, p = {:.4}{}",
            d.t,
            d.p_value,
            if d.p_value < 0.05 {
                " -- the density jumps: units may sort around the threshold"
            } else {
                ""
            }
        ),
        Outcome::Failed { error } => println!("  manipulation test not run: {error}"),
    }
}
