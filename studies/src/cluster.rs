//! `occupa cluster`: profiles of the people in a CSV file by k-means, Gaussian mixtures,
//! latent class analysis or k-prototypes.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use occupa_engine::cluster::model::SavedModel;
use occupa_engine::cluster::run::{
    ClusterReport, ClusteringSpec, Method, assign_file, cluster_csv,
};
use occupa_engine::read::ReadOptions;

#[derive(Args)]
pub struct ClusterArgs {
    /// Input with a header line, one row per person: CSV (any separator and encoding,
    /// decimal commas), XLSX/ODS or Parquet.
    #[arg(long)]
    input: PathBuf,
    /// The sheet of a workbook input (name or number from 1; the first by default).
    #[arg(long)]
    sheet: Option<String>,
    /// Columns to cluster on, comma-separated.
    #[arg(long, value_delimiter = ',', required_unless_present = "model")]
    columns: Vec<String>,
    /// kmeans (numeric scores), gmm (Gaussian mixture), lca (latent classes of
    /// categorical answers; missing answers kept) or kprototypes (numeric and
    /// categorical columns together).
    #[arg(long, required_unless_present = "model")]
    method: Option<String>,
    /// Save the chosen model (JSON) to assign new people later with --model.
    #[arg(long)]
    save_model: Option<PathBuf>,
    /// Assign the rows of --input to the clusters of a model saved with --save-model
    /// (e.g. the next quarter's intake to this year's profiles); nothing is refitted.
    #[arg(long, conflicts_with_all = ["method", "k", "k_range", "save_model"])]
    model: Option<PathBuf>,
    /// The number of clusters.
    #[arg(long, conflicts_with = "k_range")]
    k: Option<usize>,
    /// A range of numbers of clusters, A..B: the lowest BIC (gmm, lca) or the highest
    /// silhouette (kmeans, kprototypes) chooses.
    #[arg(long)]
    k_range: Option<String>,
    /// Seed of every random choice (the same seed gives the same result).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Random starts per k (default 10; 20 for lca).
    #[arg(long)]
    starts: Option<usize>,
    /// kmeans, gmm: cluster z-scores instead of raw values.
    #[arg(long)]
    standardise: bool,
    /// gmm: covariance of each component, full or diag.
    #[arg(long, default_value = "full")]
    covariance: String,
    /// kprototypes: which of the columns are categorical, comma-separated.
    #[arg(long, value_delimiter = ',')]
    categorical: Vec<String>,
    /// Bootstrap samples to measure each cluster's stability (e.g. 50).
    #[arg(long)]
    stability: Option<usize>,
    /// lca: skip the standard errors (they cost time with many items).
    #[arg(long)]
    no_se: bool,
    /// Write each row's cluster (and posterior probabilities for gmm and lca) to this CSV.
    #[arg(long)]
    labels_out: Option<PathBuf>,
    /// A column to copy into --labels-out to identify rows (e.g. a pseudonym).
    #[arg(long)]
    id: Option<String>,
    /// Write the profile chart (profiles.svg) into this folder.
    #[arg(long)]
    plots: Option<PathBuf>,
    /// Clusters with fewer people than this are not shown in the chart.
    #[arg(long, default_value_t = 5)]
    min_count: u64,
    /// Language of the chart: it or en.
    #[arg(long, default_value = "it")]
    lang: String,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(a: ClusterArgs) -> Result<()> {
    if let Some(path) = &a.model {
        return assign(&a, path);
    }
    // The flags as a clustering spec: the one mapping from the command line to the engine.
    let spec = ClusteringSpec {
        method: Method::parse(a.method.as_deref().unwrap_or_default())?,
        columns: a.columns.clone(),
        categorical: a.categorical.clone(),
        k: a.k,
        k_range: a.k_range.clone(),
        seed: a.seed,
        starts: a.starts,
        standardise: a.standardise,
        covariance: a.covariance.clone(),
        stability: a.stability,
        standard_errors: !a.no_se,
        sheet: a.sheet.clone(),
    }
    .check()
    .map_err(|e| match e {
        occupa_engine::Error::Param { name, reason } => {
            anyhow::anyhow!("--{}: {reason}", name.replace('_', "-"))
        }
        other => other.into(),
    })?;
    let report = cluster_csv(&a.input, &spec)?;
    if let Some(out) = &a.labels_out {
        write_labels(
            &a.input,
            &ReadOptions {
                sheet: a.sheet.clone(),
            },
            a.id.as_deref(),
            &report.labels,
            report.posterior.as_ref(),
            report.k,
            out,
        )?;
    }
    if let Some(out) = &a.save_model {
        let json = serde_json::to_vec_pretty(&report.model)?;
        occupa_engine::store::write_atomic(out, |f| {
            f.write_all(&json)
                .map_err(|e| occupa_engine::Error::io(out, e))
        })?;
    }
    if let Some(dir) = &a.plots {
        let english = match a.lang.as_str() {
            "it" => false,
            "en" => true,
            other => bail!("--lang {other}: use it or en"),
        };
        let min = occupa_anonymiser::MinCount::new(a.min_count)?;
        let svg = occupa_reports::cluster_plots::profile_svg(
            &report.profiles,
            &report.profile_columns,
            min,
            english,
        );
        let path = dir.join("profiles.svg");
        occupa_engine::store::write_atomic(&path, |f| {
            f.write_all(svg.as_bytes())
                .map_err(|e| occupa_engine::Error::io(&path, e))
        })?;
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_summary(&report);
    }
    Ok(())
}

/// `occupa cluster --model`: new rows assigned to a saved model's clusters.
fn assign(a: &ClusterArgs, path: &std::path::Path) -> Result<()> {
    let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let model: SavedModel = serde_json::from_slice(&text).with_context(|| {
        format!(
            "{}: not a model saved by occupa cluster --save-model",
            path.display()
        )
    })?;
    let got = assign_file(
        &a.input,
        &model,
        &ReadOptions {
            sheet: a.sheet.clone(),
        },
    )?;
    if let Some(out) = &a.labels_out {
        write_labels(
            &a.input,
            &ReadOptions {
                sheet: a.sheet.clone(),
            },
            a.id.as_deref(),
            &got.labels,
            got.posterior.as_ref(),
            got.k,
            out,
        )?;
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&got)?);
    } else {
        println!(
            "{}: {} of {} rows assigned to {} clusters (sizes {:?}); the others miss a value \
             the model needs",
            got.method, got.assigned, got.rows, got.k, got.sizes
        );
    }
    Ok(())
}

/// row (the line in the input), the id if asked, cluster (from 1; empty if left out),
/// and p1..pk for gmm and lca.
fn write_labels(
    input: &std::path::Path,
    options: &ReadOptions,
    id: Option<&str>,
    labels: &[Option<usize>],
    posterior: Option<&ndarray::Array2<f64>>,
    k: usize,
    out: &std::path::Path,
) -> Result<()> {
    let ids: Option<Vec<String>> = match id {
        Some(col) => {
            let t = occupa_engine::columns::Table::read_with(input, &[col], options)?;
            let (labels, codes) = t.categories(col)?;
            Some(
                codes
                    .iter()
                    .map(|c| c.map_or(String::new(), |c| labels[c as usize].clone()))
                    .collect(),
            )
        }
        None => None,
    };
    occupa_engine::store::write_atomic(out, |f| {
        let mut w = std::io::BufWriter::new(f);
        let io = |e: std::io::Error| occupa_engine::Error::io(out, e);
        let mut header = String::from("row");
        if let Some(c) = id {
            header.push(',');
            header.push_str(&occupa_engine::export::csv_field(c));
        }
        header.push_str(",cluster");
        if posterior.is_some() {
            for c in 1..=k {
                header.push_str(&format!(",p{c}"));
            }
        }
        writeln!(w, "{header}").map_err(io)?;
        let mut used = 0;
        for (i, l) in labels.iter().enumerate() {
            let mut line = format!("{}", i + 2);
            if let Some(ids) = &ids {
                line.push(',');
                line.push_str(&occupa_engine::export::csv_field(&ids[i]));
            }
            line.push(',');
            if let Some(l) = l {
                line.push_str(&(l + 1).to_string());
            }
            if let Some(p) = posterior {
                for c in 0..k {
                    line.push(',');
                    if l.is_some() {
                        line.push_str(&format!("{:.6}", p[[used, c]]));
                    }
                }
            }
            if l.is_some() {
                used += 1;
            }
            writeln!(w, "{line}").map_err(io)?;
        }
        w.flush().map_err(io)
    })?;
    Ok(())
}

fn print_summary(r: &ClusterReport) {
    println!("input: {}", r.input);
    if !r.left_out.is_empty() {
        println!("left out: {}", r.left_out.join(", "));
    }
    println!(
        "{:?}: k = {} ({}), {} of {} rows clustered ({} left out for missing values)",
        r.method, r.k, r.chosen_by, r.used, r.rows, r.dropped_missing
    );
    let c = &r.chosen;
    if let (Some(ll), Some(bic)) = (c.loglik, c.bic) {
        print!("  log-likelihood {ll:.3}, BIC {bic:.2}");
        if let Some(e) = c.entropy {
            print!(", entropy {e:.3}");
        }
        println!();
    }
    if let Some(i) = c.inertia {
        print!("  within-cluster {i:.4}");
        if let Some(s) = c.silhouette {
            print!(", silhouette {s:.3}");
        }
        println!();
    }
    if r.selection.len() > 1 {
        for s in &r.selection {
            println!(
                "  k = {}: {}",
                s.k,
                match (s.bic, s.silhouette, s.inertia) {
                    (Some(b), _, _) => format!("BIC {b:.2}"),
                    (None, Some(sil), Some(i)) => format!("silhouette {sil:.3}, within {i:.4}"),
                    _ => "-".into(),
                }
            );
        }
    }
    for p in &r.profiles {
        print!(
            "  {}. {} people ({:.1} %): {}",
            p.cluster,
            p.size,
            100.0 * p.share,
            p.label_en
        );
        if let Some(s) = &r.stability {
            print!(" [stability {:.2}]", s.jaccard[p.cluster - 1]);
        }
        println!();
    }
    if let Some(s) = &r.stability {
        println!(
            "  stability over {} bootstrap samples ({} failed): adjusted Rand {:.3}",
            s.replicates, s.failed, s.adjusted_rand
        );
    }
}
