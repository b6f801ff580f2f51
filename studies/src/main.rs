//! `occupa`: the command-line tool. See `occupa --help` and DESIGN.md's contract.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use occupa_anonymiser::MinCount;
use occupa_engine::indicators::{Quarter, tenant_quarter};
use occupa_engine::ingest::{self, IngestSummary, Progress};
use occupa_engine::instruments::Instruments;
use occupa_engine::pseudonym::Key;
use occupa_engine::schema::Table;
use occupa_engine::simulate::{SimConfig, simulate};
use occupa_engine::store::{Store, TenantId};
use occupa_reports::{Lang, Report};

// Ingestion allocates millions of small strings across threads; mimalloc halves the time
// glibc's allocator spends there (benches/RESULTS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "occupa",
    version,
    about = "Research analytics for Italian public employment and social services"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Simulate a pooled population, ingest it for every tenant and write the quarterly report.
    Demo(DemoArgs),
    /// Write CSV files as authorities would export them, plus truth.json.
    Simulate(SimulateArgs),
    /// Validate, pseudonymise and store files for one tenant; prints a JSON summary.
    Ingest(IngestArgs),
    /// Render a report from the store.
    #[command(subcommand)]
    Report(ReportCommand),
    /// Manage the pseudonymisation key.
    #[command(subcommand)]
    Key(KeyCommand),
}

#[derive(Args)]
struct KeyArg {
    /// Pseudonymisation key file (64 hex characters); also OCCUPA_KEY_FILE.
    #[arg(long, env = "OCCUPA_KEY_FILE")]
    key_file: Option<PathBuf>,
}

#[derive(Args)]
struct PopulationArgs {
    /// Persons to simulate.
    #[arg(long, default_value_t = 20_000)]
    persons: usize,
    /// Authorities to simulate.
    #[arg(long, default_value_t = 6)]
    tenants: usize,
    /// Random seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

impl PopulationArgs {
    fn config(&self, dirty_rate: f64) -> SimConfig {
        SimConfig {
            persons: self.persons,
            tenants: self.tenants,
            seed: self.seed,
            dirty_rate,
            ..SimConfig::default()
        }
    }
}

#[derive(Args)]
struct DemoArgs {
    /// Store folder.
    #[arg(long, default_value = "occupa-data")]
    data: PathBuf,
    /// Output folder for the report.
    #[arg(long, default_value = "occupa-out")]
    out: PathBuf,
    #[command(flatten)]
    population: PopulationArgs,
    /// Share of dirty rows in the simulated exports.
    #[arg(long, default_value_t = 0.01)]
    dirty: f64,
    /// Report language: it or en.
    #[arg(long, default_value = "it")]
    lang: String,
    #[command(flatten)]
    key: KeyArg,
}

#[derive(Args)]
struct SimulateArgs {
    /// Output folder.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    population: PopulationArgs,
    /// Share of rows made dirty (bad tax codes, dates, answers, duplicates, encodings).
    #[arg(long, default_value_t = 0.0)]
    dirty: f64,
}

#[derive(Args)]
struct IngestArgs {
    /// Store folder.
    #[arg(long)]
    data: PathBuf,
    /// Tenant (authority) identifier.
    #[arg(long)]
    tenant: String,
    /// Table: persons, asso, isa, gol, services, employment, vacancies.
    #[arg(long)]
    table: String,
    /// Files: CSV, XLSX or Parquet.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Folder with instrument definitions overriding the shipped ones.
    #[arg(long)]
    instruments: Option<PathBuf>,
    #[command(flatten)]
    key: KeyArg,
}

#[derive(Subcommand)]
enum ReportCommand {
    /// The quarterly report (HTML, PDF, XLSX, CSV tables).
    Quarterly {
        /// Store folder.
        #[arg(long)]
        data: PathBuf,
        /// Quarter, e.g. 2026Q3.
        #[arg(long)]
        period: String,
        /// Only this tenant (default: every tenant, each read through its own scope).
        #[arg(long)]
        tenant: Option<String>,
        /// it or en.
        #[arg(long, default_value = "it")]
        lang: String,
        /// Smallest count published.
        #[arg(long, default_value_t = 5)]
        min_count: u64,
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Create a new random key file (mode 0600); refuses to overwrite.
    New {
        /// Where to write it.
        #[arg(long)]
        out: PathBuf,
    },
}

struct Bar(ProgressBar);

impl Progress for Bar {
    fn start(&self, total: u64) {
        self.0.set_length(total);
    }
    fn advance(&self, n: u64) {
        self.0.inc(n);
    }
}

fn bar(msg: String) -> ProgressBar {
    let pb = ProgressBar::new(0);
    pb.set_style(
        ProgressStyle::with_template("{msg:>28} [{bar:30}] {pos}/{len} ({eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    pb.set_message(msg);
    pb
}

fn load_key(arg: &KeyArg) -> Result<Key> {
    let path = arg.key_file.as_ref().ok_or_else(|| anyhow!("no pseudonymisation key: pass --key-file FILE or set OCCUPA_KEY_FILE (create one with `occupa key new --out FILE`)"))?;
    Ok(Key::load(path)?)
}

fn parse_lang(s: &str) -> Result<Lang> {
    Lang::parse(s).ok_or_else(|| anyhow!("--lang {s:?}: use it or en"))
}

fn run_ingest(
    store: &Store,
    inst: &Instruments,
    key: &Key,
    tenant: &TenantId,
    table: Table,
    files: &[PathBuf],
    quiet: bool,
) -> Result<IngestSummary> {
    let pb = bar(format!("{tenant}/{}", table.name()));
    if quiet {
        pb.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let s = ingest::ingest(store, inst, key, tenant, table, files, &Bar(pb.clone()))?;
    pb.finish_and_clear();
    Ok(s)
}

fn write_report(
    store: &Store,
    q: Quarter,
    tenant: Option<&str>,
    lang: Lang,
    min: MinCount,
    out: &Path,
) -> Result<Vec<PathBuf>> {
    let tenants = match tenant {
        Some(t) => vec![TenantId::new(t)?],
        None => store.tenants()?,
    };
    if tenants.is_empty() {
        bail!(
            "the store {} holds no tenant: ingest data first (occupa ingest …) or run occupa demo",
            store.root().display()
        );
    }
    let mut tq = Vec::new();
    for t in &tenants {
        tq.push(tenant_quarter(&store.scope(t), q, 8)?);
    }
    let report = Report::quarterly(q, &tq, lang, min);
    let written = report.write_all(out)?;
    store.audit(serde_json::json!({"command": "report quarterly", "period": q.to_string(), "tenants": tenants.iter().map(|t| t.as_str()).collect::<Vec<_>>(), "out": out}))?;
    Ok(written)
}

fn demo(a: DemoArgs) -> Result<()> {
    let t0 = Instant::now();
    let lang = parse_lang(&a.lang)?;
    let inst = Instruments::builtin()?;
    let key_path = match &a.key.key_file {
        Some(p) => p.clone(),
        None => {
            let name = a
                .data
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_else(|| "occupa-data".into());
            a.data.with_file_name(format!("{name}.key"))
        }
    };
    let key = if key_path.exists() {
        Key::load(&key_path)?
    } else {
        let k = Key::generate()?;
        if let Some(dir) = key_path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        k.save_new(&key_path)?;
        eprintln!(
            "created pseudonymisation key {} (mode 0600; keep it outside the store)",
            key_path.display()
        );
        k
    };
    let exports = a.out.join("simulated-exports");
    let cfg = a.population.config(a.dirty);
    let spin = ProgressBar::new_spinner();
    spin.set_message(format!(
        "simulating {} persons in {} authorities",
        a.population.persons, a.population.tenants
    ));
    spin.enable_steady_tick(std::time::Duration::from_millis(120));
    let sim = simulate(&cfg, &inst, &exports)?;
    spin.finish_and_clear();
    eprintln!(
        "simulated {} persons in {} authorities → {}",
        sim.persons,
        sim.tenants.len(),
        exports.display()
    );

    let store = Store::open(&a.data)?;
    let (mut read, mut stored, mut quarantined) = (0, 0, 0);
    for t in &sim.tenants {
        let tenant = TenantId::new(t)?;
        for table in Table::ALL {
            let file = exports.join(t).join(format!("{}.csv", table.name()));
            let s = run_ingest(&store, &inst, &key, &tenant, table, &[file], false)?;
            read += s.read;
            stored += s.stored;
            quarantined += s.quarantined;
        }
    }
    eprintln!(
        "ingested {read} rows: {stored} stored, {quarantined} quarantined (see {}/quarantine/)",
        a.data.display()
    );

    let q = Quarter::of(cfg.end);
    let written = write_report(&store, q, None, lang, MinCount::default(), &a.out)?;
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::json!({
            "store": a.data,
            "key_file": key_path,
            "period": q.to_string(),
            "rows": {"read": read, "stored": stored, "quarantined": quarantined},
            "written": written,
            "seconds": (t0.elapsed().as_secs_f64() * 10.0).round() / 10.0,
        }))?
    );
    Ok(())
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo(a) => demo(a),
        Command::Simulate(a) => (|| {
            let inst = Instruments::builtin()?;
            let cfg = a.population.config(a.dirty);
            let s = simulate(&cfg, &inst, &a.out)?;
            println!("{}", serde_json::to_string_pretty(&s)?);
            Ok(())
        })(),
        Command::Ingest(a) => (|| {
            let inst = match &a.instruments {
                Some(d) => Instruments::from_dir(d)?,
                None => Instruments::builtin()?,
            };
            let key = load_key(&a.key)?;
            let table = Table::parse(&a.table).ok_or_else(|| anyhow!("--table {:?}: use one of persons, asso, isa, gol, services, employment, vacancies", a.table))?;
            let tenant = TenantId::new(&a.tenant)?;
            let store = Store::open(&a.data)?;
            let s = run_ingest(&store, &inst, &key, &tenant, table, &a.files, false)?;
            println!("{}", serde_json::to_string(&s)?);
            Ok(())
        })(),
        Command::Report(ReportCommand::Quarterly {
            data,
            period,
            tenant,
            lang,
            min_count,
            out,
        }) => (|| {
            let q = Quarter::parse(&period)?;
            let store = Store::open(&data)?;
            let written = write_report(
                &store,
                q,
                tenant.as_deref(),
                parse_lang(&lang)?,
                MinCount::new(min_count)?,
                &out,
            )?;
            println!(
                "{}",
                serde_json::to_string_pretty(
                    &serde_json::json!({"period": q.to_string(), "written": written})
                )?
            );
            Ok(())
        })(),
        Command::Key(KeyCommand::New { out }) => (|| {
            Key::generate()?.save_new(&out)?;
            println!("{}", out.display());
            Ok(())
        })(),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
